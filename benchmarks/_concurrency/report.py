"""The report: one table per scenario against its targets."""

from __future__ import annotations

import argparse

from _support import (
    md_row,
    md_rule,
    verdict,
)

from .config import (
    CPU_RATIO_MAX,
    CREATE_P50_MAX_MS,
    IN_FLIGHT_MIN,
    START_P50_MAX_MS,
    WALL_RATIO_MAX,
    WORKER_RSS_MAX_MB,
    scenario_latency,
)


def targets(scenario: str, m: dict[str, float]) -> dict[str, tuple[str, bool]]:
    """{what: (the target in words, met)} for one scenario's medians."""
    if scenario == "latency":
        in_flight_min = min(IN_FLIGHT_MIN, int(0.8 * m["runs"]))
        return {
            "wall": (f"<= {WALL_RATIO_MAX} x raw", m["wall_ratio"] <= WALL_RATIO_MAX),
            "in_flight": (f">= {in_flight_min}", m["in_flight"] >= in_flight_min),
            "memory": (
                f"<= {WORKER_RSS_MAX_MB} MB",
                m["worker_memory_peak_mb"] <= WORKER_RSS_MAX_MB,
            ),
        }
    if scenario == "cpu":
        return {"cpu": (f"<= {CPU_RATIO_MAX} x raw", m["cpu_ratio"] <= CPU_RATIO_MAX)}
    if scenario == "create":
        return {"post": (f"p50 <= {CREATE_P50_MAX_MS} ms", m["post_p50_ms"] <= CREATE_P50_MAX_MS)}
    return {"start": (f"p50 < {START_P50_MAX_MS} ms", m["q2s_p50_ms"] < START_P50_MAX_MS)}


def _cpu_cell(ms_per_run: float, runs: float) -> str:
    return f"{ms_per_run:.1f} ({ms_per_run * runs / 1000:.2f} s)"


def _target_cells(t: dict[str, tuple[str, bool]], key: str) -> tuple[str, str]:
    if key not in t:
        return "", ""
    words, ok = t[key]
    return words, verdict(ok)


def report(scenario: str, m: dict[str, float], args: argparse.Namespace) -> str:
    t = targets(scenario, m)
    lat = scenario_latency(args, scenario)
    lines = [md_row("metric", "raw SDK", "agentdeck", "ratio", "target", "verdict")]
    lines.append(md_rule(6))
    if scenario in ("latency", "cpu"):
        title = f"{scenario}: {m['runs']:.0f} runs, {lat:g} s per model call"
        lines += [
            md_row(
                "wall time, s",
                f"{m['raw_wall_s']:.2f}",
                f"{m['wall_s']:.2f}",
                f"{m['wall_ratio']:.2f}",
                *_target_cells(t, "wall"),
            ),
            md_row("runs/s", f"{m['raw_runs_per_s']:.1f}", f"{m['runs_per_s']:.1f}", "", "", ""),
            md_row(
                "most runs in flight",
                f"{m['raw_in_flight']:.0f}",
                f"{m['in_flight']:.0f}",
                "",
                *_target_cells(t, "in_flight"),
            ),
            md_row(
                "most model calls at once (stub)",
                f"{m['raw_stub_calls_at_once']:.0f}",
                f"{m['stub_calls_at_once']:.0f}",
                "",
                "",
                "",
            ),
            md_row(
                "CPU ms per run, all processes (CPU s)",
                _cpu_cell(m["raw_cpu_ms_per_run"], m["runs"]),
                _cpu_cell(m["cpu_ms_per_run"], m["runs"]),
                f"{m['cpu_ratio']:.2f}",
                *_target_cells(t, "cpu"),
            ),
        ]
        groups = sorted(
            k.removeprefix("cpu_ms_per_run_") for k in m if k.startswith("cpu_ms_per_run_")
        )
        lines += [
            md_row(f"  {g}", "", _cpu_cell(m["cpu_ms_per_run_" + g], m["runs"]), "", "", "")
            for g in groups
        ]
        lines += [
            md_row(
                "  model stub (apart, not in the above)",
                _cpu_cell(m["raw_stub_cpu_ms_per_run"], m["runs"]),
                _cpu_cell(m["stub_cpu_ms_per_run"], m["runs"]),
                "",
                "",
                "",
            ),
            md_row(
                "peak memory MB, the process / the largest worker (1)",
                f"{m['raw_peak_rss_mb']:.0f}",
                f"{m['worker_memory_peak_mb']:.0f}",
                "",
                *_target_cells(t, "memory"),
            ),
            md_row(
                "  peak memory MB, all workers (1)",
                "",
                f"{m['workers_memory_peak_mb']:.0f}",
                "",
                "",
                "",
            ),
            md_row(
                "POST p50 / p95 ms",
                "",
                f"{m['post_p50_ms']:.0f} / {m['post_p95_ms']:.0f}",
                "",
                "",
                "",
            ),
            md_row(
                "queue-to-start p50 / p95 ms",
                "",
                f"{m['q2s_p50_ms']:.0f} / {m['q2s_p95_ms']:.0f}",
                "",
                "",
                "",
            ),
        ]
    elif scenario == "create":
        title = f"create: {m['runs']:.0f} concurrent POST .../runs/, {lat:g} s per model call"
        lines += [
            md_row(
                "POST .../runs/ p50 / p95 ms",
                "",
                f"{m['post_p50_ms']:.0f} / {m['post_p95_ms']:.0f}",
                "",
                *_target_cells(t, "post"),
            ),
            md_row(
                "(floor) GET /api/v1/runs/<unknown>/ p50 / p95 ms",
                "",
                f"{m['floor_p50_ms']:.0f} / {m['floor_p95_ms']:.0f}",
                f"{m['post_p50_ms'] / m['floor_p50_ms']:.2f}",
                "",
                "",
            ),
        ]
    else:
        title = f"start: {m['runs']:.0f} runs one after another on an idle worker"
        lines.append(
            md_row(
                "queue-to-start p50 / p95 ms",
                "",
                f"{m['q2s_p50_ms']:.1f} / {m['q2s_p95_ms']:.1f}",
                "",
                *_target_cells(t, "start"),
            )
        )
    if scenario in ("latency", "cpu"):
        lines.append(
            "\n(1) RSS of a process; of a qcluster (a forking server), its processes' PSS summed, "
            "which counts each shared page once"
        )
    title += f"; load average at the start {m['load_1min']:.2f}"
    return title + "\n" + "\n".join(lines)
