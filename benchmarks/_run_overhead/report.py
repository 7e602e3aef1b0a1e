"""The report: the targets table and the details table."""

from __future__ import annotations

from _support import (
    md_table,
    verdict,
)

from .measure import BrokerResult


def table(results: list[BrokerResult]) -> str:
    header = [
        "broker",
        "N",
        "K",
        "W",
        "raw SDK runs/s",
        "agentdeck runs/s",
        "ratio",
        "target",
        "q->start idle p50 / p99 ms",
        "q->start burst p50 / p99 ms",
        "latency target",
    ]
    rows = []
    for r in results:
        m, t = r.medians, r.targets
        if "idle_q2s_p50_ok" in t:
            latency_cell = (
                f"p50 < {t['idle_q2s_p50_target_ms']:.0f} ms: {verdict(t['idle_q2s_p50_ok'])}"
            )
        else:
            latency_cell = "none"
        rows.append(
            (
                r.broker,
                r.runs,
                r.concurrency,
                r.workers,
                f"{m['raw_runs_per_s']:.1f}",
                f"{m['agentdeck_runs_per_s']:.1f}",
                f"{m['ratio']:.3f}",
                f"{t['ratio_target']:.0%}: {verdict(t['ratio_ok'])}",
                f"{m['idle_q2s_p50_ms']:.1f} / {m['idle_q2s_p99_ms']:.1f}",
                f"{m['burst_q2s_p50_ms']:.0f} / {m['burst_q2s_p99_ms']:.0f}",
                latency_cell,
            )
        )
    return md_table(header, rows)


def details(results: list[BrokerResult]) -> str:
    header = [
        "broker",
        "raw streamed runs/s",
        "agentdeck runs/s (client-observed)",
        "run exec p50 ms (started->finished)",
        "POST p50 ms",
        "CPU ms/run raw",
        "CPU ms/run agentdeck (web + worker + postgres)",
        "load avg (1 min)",
        "CPU busy before",
    ]
    rows = (
        (
            r.broker,
            f"{m['raw_streamed_runs_per_s']:.1f}",
            f"{m['agentdeck_client_runs_per_s']:.1f}",
            f"{m['exec_p50_ms']:.1f}",
            f"{m['post_p50_ms']:.1f}",
            f"{m['raw_cpu_ms']:.2f}",
            f"{m['agentdeck_cpu_ms']:.1f} ({m['web_cpu_ms']:.1f} + {m['worker_cpu_ms']:.1f} "
            f"+ {m['postgres_cpu_ms']:.1f})",
            f"{m['load_1min']:.2f}",
            f"{m['busy_before']:.0%}",
        )
        for r in results
        for m in [r.medians]
    )
    return md_table(header, rows)
