"""One side's figures for one repetition, from what its senders and receivers reported."""

from __future__ import annotations

from dataclasses import dataclass

from _support import percentile


@dataclass
class Phase:
    """One side's figures for one repetition."""

    side: str
    events_sent: int
    expected: int
    received: int
    lost: int
    duplicates: int
    out_of_order: int
    incomplete: int
    reconnects: int
    close_codes: dict[str, int]
    receive_timeouts: int  # baseline: redis TimeoutError from an idle layer.receive, retried
    events_per_s: float  # deliveries per second
    p50_ms: float
    p99_ms: float
    max_ms: float
    send_lateness_p99_ms: float  # how far behind its schedule the producer/sender fell
    append_p50_ms: float  # one run_event_append (or group_send) call, as the producer saw it
    append_p99_ms: float
    publish_p50_ms: float  # agentdeck: the publish step alone (group_send after commit)
    publish_p99_ms: float
    backlog_max: int  # the most messages seen waiting in a receiving process's layer queue
    layer_drops: int  # group_send calls the layer reported over capacity (message dropped)
    p50_by_decile_ms: list[float]  # latency p50 of seqs in each tenth of the run, first to last
    load_before: float  # 1-minute load average when the phase started (the machine is shared)
    duration_s: float
    cpu: dict[str, float]


def phase_of(
    side: str,
    senders: list[dict],
    followers: list[dict],
    expected: int,
    cpu: dict,
    backlog_max: int,
) -> Phase:
    latencies = [x for f in followers for x in f["latency_ms"]]
    received = sum(f["received"] for f in followers)
    first = min(s["first_start"] for s in senders)
    last = max(f["last_receive"] for f in followers)
    codes: dict[str, int] = {}
    for f in followers:
        for code, count in f["close_codes"].items():
            codes[code] = codes.get(code, 0) + count
    return Phase(
        side=side,
        events_sent=sum(s["events"] for s in senders),
        expected=expected,
        received=received,
        lost=expected - received,
        duplicates=sum(f["duplicates"] for f in followers),
        out_of_order=sum(f["out_of_order"] for f in followers),
        incomplete=sum(f["incomplete"] for f in followers),
        reconnects=sum(f["reconnects"] for f in followers),
        close_codes=codes,
        receive_timeouts=sum(f.get("receive_timeouts", 0) for f in followers),
        events_per_s=received / (last - first) if last > first else 0.0,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=float("nan")),
        send_lateness_p99_ms=percentile([x for s in senders for x in s["lateness_ms"]], 99),
        append_p50_ms=percentile([x for s in senders for x in s["append_ms"]], 50),
        append_p99_ms=percentile([x for s in senders for x in s["append_ms"]], 99),
        publish_p50_ms=percentile([x for s in senders for x in s.get("publish_ms", [])], 50),
        publish_p99_ms=percentile([x for s in senders for x in s.get("publish_ms", [])], 99),
        backlog_max=backlog_max,
        layer_drops=sum(s.get("layer_drops", 0) for s in senders),
        p50_by_decile_ms=by_decile(followers),
        load_before=cpu.pop("load_before", float("nan")),
        duration_s=last - first,
        cpu=cpu,
    )


def by_decile(followers: list[dict]) -> list[float]:
    """Latency p50 for the events in each tenth of the runs' sequence (seq 1..N): flat when
    delivery keeps up, rising when a backlog builds."""
    n = max((seq for f in followers for seq in f["latency_seq"]), default=0)
    buckets: list[list[float]] = [[] for _ in range(10)]
    for f in followers:
        for seq, ms in zip(f["latency_seq"], f["latency_ms"], strict=True):
            buckets[min((seq - 1) * 10 // max(n, 1), 9)].append(ms)
    return [round(percentile(b, 50), 1) for b in buckets]
