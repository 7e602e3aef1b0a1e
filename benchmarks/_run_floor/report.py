"""The report: per broker, every part's CPU per run, the floor, the budget and the highest ratio."""

from __future__ import annotations

import os

from _run_overhead.measure import RATIO_TARGET
from _support import (
    md_table,
    medians_of,
)

from .measure import Repetition


def report(results: dict[str, list[Repetition]]) -> str:
    cores = os.cpu_count() or 1
    header = [
        "broker",
        "raw runs/s",
        "CPU ms per run: SDK streamed (run)",
        "HTTP floor: /healthz (authenticated DRF 404)",
        "queue floor",
        "SQL floor",
        "floor total (with the authenticated request)",
        "budget at the target",
        "max ratio (with the authenticated request)",
        "target",
    ]
    rows = []
    for broker, reps in results.items():
        m = medians_of(reps)
        target = RATIO_TARGET[broker]
        if m["api_max_ratio"] >= target:
            reach = "reachable"
        elif m["max_ratio"] >= target:
            reach = "only without authenticating the API"
        else:
            reach = "OUT OF REACH"
        rows.append(
            (
                broker,
                f"{m['raw_runs_per_s']:.0f}",
                f"{m['raw_streamed_cpu_ms']:.2f} ({m['raw_cpu_ms']:.2f})",
                f"{m['http_cpu_ms']:.2f} ({m['api_cpu_ms']:.2f})",
                f"{m['queue_cpu_ms']:.2f} ({m['queue_enqueue_cpu_ms']:.2f} + "
                f"{m['queue_worker_cpu_ms']:.2f} + {m['queue_postgres_cpu_ms']:.2f})",
                f"{m['sql_cpu_ms']:.2f} ({m['sql_client_cpu_ms']:.2f} + "
                f"{m['sql_postgres_cpu_ms']:.2f})",
                f"{m['floor_cpu_ms']:.1f} ({m['api_floor_cpu_ms']:.1f})",
                f"{m['budget_cpu_ms']:.1f}",
                f"{m['max_ratio']:.2f} ({m['api_max_ratio']:.2f})",
                f"{target:.2f}: {reach}",
            )
        )
    lines = [md_table(header, rows)]
    lines.append("")
    lines.append(
        f"budget = {cores} cores x 1000 / (target x raw runs/s); max ratio = {cores} x 1000 / "
        "floor / raw runs/s (medians of the repetitions; each repetition's own ratio is logged)"
    )
    return "\n".join(lines)
