"""The scenarios: each returns the flat figures of one repetition; the report takes the median of
each.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from _run_overhead.measure import measure_idle_latency
from _support import (
    log,
    percentile,
)

from .agentdeck import Bench, measure_agentdeck, open_connections, post_runs, settle
from .config import (
    scenario_latency,
    scenario_n,
)
from .raw import measure_raw


async def run_burst_scenario(bench: Bench, scenario: str) -> dict[str, float]:
    """latency and cpu: the raw SDK, then agentdeck, the same N runs at the same latency."""
    args = bench.args
    n = scenario_n(args, scenario)
    bench.stub.configure(scenario_latency(args, scenario))
    raw = await measure_raw(bench.stub, n, args.raw_warmup, args.deadline - time.monotonic())
    ours = await measure_agentdeck(bench, n)
    figures = {
        "runs": n,
        "raw_wall_s": raw["wall_s"],
        "raw_runs_per_s": n / raw["wall_s"],
        "raw_in_flight": raw["in_flight"],
        "raw_stub_calls_at_once": raw["stub_calls_at_once"],
        "raw_cpu_ms_per_run": raw["cpu_s"] / n * 1000,
        "raw_stub_cpu_ms_per_run": raw["stub_cpu_s"] / n * 1000,
        "raw_peak_rss_mb": raw["peak_rss_bytes"] / 2**20,
        "wall_s": ours["wall_s"],
        "runs_per_s": n / ours["wall_s"],
        "wall_ratio": ours["wall_s"] / raw["wall_s"],
        "in_flight": ours["in_flight"],
        "stub_calls_at_once": ours["stub_calls_at_once"],
        "cpu_ms_per_run": ours["cpu_s"] / n * 1000,
        "cpu_ratio": ours["cpu_s"] / raw["cpu_s"],
        "stub_cpu_ms_per_run": ours["stub_cpu_s"] / n * 1000,
        "worker_memory_peak_mb": ours["worker_memory_peak_bytes"] / 2**20,
        "workers_memory_peak_mb": ours["workers_memory_peak_bytes"] / 2**20,
        "post_p50_ms": ours["post_p50_ms"],
        "post_p95_ms": ours["post_p95_ms"],
        "q2s_p50_ms": ours["q2s_p50_ms"],
        "q2s_p95_ms": ours["q2s_p95_ms"],
    }
    for group, seconds in ours["cpu"].items():
        figures[f"cpu_ms_per_run_{group}"] = seconds / n * 1000
    log(
        f"[{scenario}] N={n}: raw {raw['wall_s']:.2f} s, agentdeck {ours['wall_s']:.2f} s "
        f"(x{figures['wall_ratio']:.2f}), in flight {ours['in_flight']}, CPU/run raw "
        f"{figures['raw_cpu_ms_per_run']:.1f} ms, agentdeck {figures['cpu_ms_per_run']:.1f} ms"
    )
    return figures


async def run_create_scenario(bench: Bench) -> dict[str, float]:
    """N concurrent creations (after an unmeasured round of the same), then the web floor."""
    args = bench.args
    n = scenario_n(args, "create")
    bench.stub.configure(scenario_latency(args, "create"))
    for measured in (False, True):
        await open_connections(bench, n)
        ids, post_ms, first = await post_runs(bench, n, n)
        await settle(bench, ids, first)
        if not measured:
            log(f"[create] warm-up round: POST p50 {percentile(post_ms, 50):.0f} ms")
    floor_ms: list[float] = []

    async def floor_one() -> None:
        t0 = time.perf_counter()
        await bench.api("GET", f"/api/v1/runs/{uuid.uuid4()}/", expect=(404,))
        floor_ms.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(floor_one() for _ in range(n)))
    floor_ms.clear()
    await asyncio.gather(*(floor_one() for _ in range(n)))
    log(
        f"[create] {n} at once: POST p50 {percentile(post_ms, 50):.0f} ms, "
        f"p95 {percentile(post_ms, 95):.0f} ms; GET 404 p50 {percentile(floor_ms, 50):.0f} ms"
    )
    return {
        "runs": n,
        "post_p50_ms": percentile(post_ms, 50),
        "post_p95_ms": percentile(post_ms, 95),
        "floor_p50_ms": percentile(floor_ms, 50),
        "floor_p95_ms": percentile(floor_ms, 95),
    }


async def run_start_scenario(bench: Bench) -> dict[str, float]:
    args = bench.args
    n = scenario_n(args, "start")
    bench.stub.configure(scenario_latency(args, "start"))
    latencies = await measure_idle_latency(bench.api, n, bench.agent_id, args.deadline)
    log(f"[start] {n} sequential runs: queue-to-start p50 {percentile(latencies, 50):.1f} ms")
    return {
        "runs": n,
        "q2s_p50_ms": percentile(latencies, 50),
        "q2s_p95_ms": percentile(latencies, 95),
    }


async def run_scenario(bench: Bench, scenario: str) -> dict[str, float]:
    if scenario in ("latency", "cpu"):
        return await run_burst_scenario(bench, scenario)
    if scenario == "create":
        return await run_create_scenario(bench)
    return await run_start_scenario(bench)


async def warm_up(bench: Bench, n: int) -> None:
    """Uncounted runs: they wait for the workers to come up and warm every cache and pool."""
    bench.stub.configure(0)
    await open_connections(bench, n)
    ids, _, first = await post_runs(bench, n, n)
    await settle(bench, ids, first)
