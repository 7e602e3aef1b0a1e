"""The report: medians over the repetitions against the issue's targets."""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass

from _support import md_row, md_rule, md_table, verdict

from .phase import Phase
from .protocol import LOST_TARGET, P99_TARGET_MS, RATIO_TARGET


@dataclass
class Repetition:
    agentdeck: Phase
    baseline: Phase

    @property
    def ratio(self) -> float:
        base = self.baseline.events_per_s
        return self.agentdeck.events_per_s / base if base else float("nan")


def median_of(reps: list[Repetition], side: str, key: str) -> float:
    return statistics.median(getattr(getattr(r, side), key) for r in reps)


def cpu_median(reps: list[Repetition], side: str, key: str) -> float:
    values = [getattr(r, side).cpu.get(key) for r in reps]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def report(args: argparse.Namespace, reps: list[Repetition]) -> tuple[str, bool]:
    def m(side: str, key: str) -> float:
        return median_of(reps, side, key)

    ratio = statistics.median(r.ratio for r in reps)
    lost_worst = max(r.agentdeck.lost for r in reps)
    p99 = m("agentdeck", "p99_ms")
    ok_lost, ok_p99, ok_ratio = (
        lost_worst <= LOST_TARGET,
        p99 < P99_TARGET_MS,
        ratio >= RATIO_TARGET,
    )
    rate = f"{args.rate:g} events/s per run" if args.rate > 0 else "unpaced (as fast as possible)"

    def both(key: str, spec: str) -> tuple[str, str]:
        return format(m("agentdeck", key), spec), format(m("baseline", key), spec)

    def cpu(agentdeck_key: str, baseline_key: str, spec: str = ".1f") -> tuple[str, str]:
        return (
            format(cpu_median(reps, "agentdeck", agentdeck_key), spec),
            format(cpu_median(reps, "baseline", baseline_key), spec),
        )

    def worst(side: str, *keys: str) -> str:
        return " / ".join(str(max(getattr(getattr(r, side), k) for r in reps)) for k in keys)

    p50s, p99s = both("append_p50_ms", ".1f"), both("append_p99_ms", ".1f")
    sides = [
        ("events sent", *both("events_sent", ".0f")),
        ("deliveries expected", *both("expected", ".0f")),
        ("deliveries received", *both("received", ".0f")),
        ("lost (worst repetition)", lost_worst, worst("baseline", "lost")),
        (
            "duplicates / out of order / reconnects (worst)",
            worst("agentdeck", "duplicates", "out_of_order", "reconnects"),
            worst("baseline", "duplicates", "out_of_order") + " / -",
        ),
        ("events/s (deliveries/s)", *both("events_per_s", ".0f")),
        ("latency p50 ms", *both("p50_ms", ".1f")),
        ("latency p99 ms", f"{p99:.1f}", format(m("baseline", "p99_ms"), ".1f")),
        ("latency max ms", *both("max_ms", ".1f")),
        ("sender behind schedule p99 ms", *both("send_lateness_p99_ms", ".1f")),
        (
            "one append (persist+publish) / group_send p50 / p99 ms",
            f"{p50s[0]} / {p99s[0]}",
            f"{p50s[1]} / {p99s[1]}",
        ),
        (
            "publish step alone p50 / p99 ms",
            f"{m('agentdeck', 'publish_p50_ms'):.1f} / {m('agentdeck', 'publish_p99_ms'):.1f}",
            "(= group_send)",
        ),
        ("layer drops (group_send over capacity)", *both("layer_drops", ".0f")),
        ("largest layer backlog in the receiving process", *both("backlog_max", ".0f")),
        ("first send -> last delivery s", *both("duration_s", ".2f")),
        ("CPU s: receiving side (daphne / receiver)", *cpu("daphne", "followers")),
        ("CPU s: senders (producers / group_send)", *cpu("senders", "senders")),
        ("CPU s: WebSocket clients", cpu("followers", "followers")[0], "-"),
        ("machine busy during the phase %", *cpu("machine_busy_pct", "machine_busy_pct", ".0f")),
    ]
    targets = [
        (f"events lost = {LOST_TARGET} (every repetition)", lost_worst, verdict(ok_lost)),
        (f"p99 < {P99_TARGET_MS:.0f} ms", f"{p99:.1f} ms", verdict(ok_p99)),
        (f"events/s >= {RATIO_TARGET:.0%} of baseline", f"{ratio:.2f}", verdict(ok_ratio)),
    ]
    lines = [
        f"{args.runs} runs x {args.clients_per_run} clients = "
        f"{args.runs * args.clients_per_run} receivers, {args.events} events per run, {rate}; "
        f"medians of {len(reps)} repetitions",
        "",
        "| | agentdeck (daphne + Redis layer) | baseline (raw group_send) |",
        md_rule(3),
        *(md_row(*row) for row in sides),
        "",
        md_table(["target", "measured", "verdict"], targets),
        "",
        "Per repetition (agentdeck | baseline): events/s, p50/p99 ms, lost, layer drops, "
        "latency p50 per tenth of the runs",
    ]
    for i, r in enumerate(reps, 1):
        a, b = r.agentdeck, r.baseline
        lines.append(
            f"- {i}: {a.events_per_s:.0f} ev/s, {a.p50_ms:.1f}/{a.p99_ms:.1f} ms, lost {a.lost}, "
            f"drops {a.layer_drops}, {a.p50_by_decile_ms} | {b.events_per_s:.0f} ev/s, "
            f"{b.p50_ms:.1f}/{b.p99_ms:.1f} ms, lost {b.lost}, drops {b.layer_drops}, "
            f"{b.p50_by_decile_ms} | ratio {r.ratio:.2f}"
        )
    return "\n".join(lines), ok_lost and ok_p99 and ok_ratio


def phase_summary(side: str, p: Phase) -> str:
    """One phase in a log line, as it finishes."""
    return (
        f"  {side}: {p.received}/{p.expected} delivered (lost {p.lost}), "
        f"{p.events_per_s:.0f} ev/s, p50 {p.p50_ms:.1f} ms, p99 {p.p99_ms:.1f} ms, "
        f"max {p.max_ms:.1f} ms, reconnects {p.reconnects}, "
        f"close codes {p.close_codes}, receive timeouts {p.receive_timeouts}, "
        f"behind schedule p99 {p.send_lateness_p99_ms:.0f} ms, append p50/p99 "
        f"{p.append_p50_ms:.1f}/{p.append_p99_ms:.1f} ms, publish p50/p99 "
        f"{p.publish_p50_ms:.1f}/{p.publish_p99_ms:.1f} ms, "
        f"layer backlog max {p.backlog_max}, layer drops {p.layer_drops}, "
        f"p50 by tenth of the run {p.p50_by_decile_ms}, "
        f"load before {p.load_before:.1f}, cpu {p.cpu}"
    )
