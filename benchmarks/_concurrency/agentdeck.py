"""The agentdeck side: the agent on the stub, a burst of runs through the API, what it cost."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from _run_overhead.runs import (
    INPUT,
    check_events,
    check_runs,
    fetch_runs,
    wait_idle,
)
from _support import (
    Api,
    Deployment,
    PrivateRedis,
    cpu_by_group,
    memory_by_group,
    parse_ts,
    percentile,
)
from model_stub import MODEL

from .config import (
    AGENT_NAME,
    CHECK_CONCURRENCY,
)
from .stub import StubProcess


@dataclass
class Bench:
    """What every measurement needs: the deployment, its API and agent, the stub."""

    args: argparse.Namespace
    deployment: Deployment
    stub: StubProcess
    api: Api
    agent_id: str
    redis: PrivateRedis | None = None

    def cpu_roots(self) -> dict[str, Any]:
        roots = dict(self.deployment.cpu_roots())
        if self.redis is not None and self.redis.process is not None:
            roots["redis"] = self.redis.process.pid
        roots["stub"] = self.stub.process.pid
        return roots

    def worker_roots(self) -> dict[str, int]:
        processes = self.deployment.processes
        return {name: processes[name].pid for name in self.deployment.run_worker_names}


async def create_agent(api: Api, stub: StubProcess) -> str:
    """An ``openai_compatible`` provider on the stub; the agent with the builtin calculator."""
    provider = await api(
        "POST",
        "/api/v1/providers/",
        {
            "name": "bench-stub",
            "kind": "openai_compatible",
            "base_url": stub.base_url,
            "api_key": "sk-bench",
        },
        expect=(201,),
    )
    tool = await api(
        "POST",
        "/api/v1/tools/",
        {"name": "calculator", "kind": "builtin", "config": {"builtin": "calculator"}},
        expect=(201,),
    )
    agent = await api(
        "POST",
        "/api/v1/agents/",
        {
            "name": AGENT_NAME,
            "provider": provider["id"],
            "model": MODEL,
            "tools": [{"tool": tool["id"]}],
        },
        expect=(201,),
    )
    return agent["id"]


async def open_connections(bench: Bench, n: int) -> None:
    """N keep-alive connections to daphne before a burst, as a load balancer in front of it
    holds: daphne listens with Twisted's default backlog of 50, and N clients connecting at the
    same instant overflow it (the kernel logs "Possible SYN flooding"), so that connections
    wait for SYN retransmits (1 s, 3 s...), which would be measured as POST latency."""
    import httpx

    async def one() -> None:
        with contextlib.suppress(httpx.HTTPError):
            await bench.api.client.get("/healthz")

    await asyncio.gather(*(one() for _ in range(n)))


async def post_runs(bench: Bench, n: int, at_once: int) -> tuple[list[str], list[float], float]:
    """N ``POST .../runs/``, at most ``at_once`` in progress: (ids, latencies ms, first POST)."""
    limit = asyncio.Semaphore(at_once)
    ids: list[str] = []
    post_ms: list[float] = []

    async def one() -> None:
        async with limit:
            t0 = time.perf_counter()
            run = await bench.api(
                "POST",
                f"/api/v1/agents/{bench.agent_id}/runs/",
                {"input": INPUT, "mode": "background"},
                expect=(202,),
            )
            post_ms.append((time.perf_counter() - t0) * 1000)
            ids.append(run["id"])

    first = time.time()
    await asyncio.gather(*(one() for _ in range(n)))
    return ids, post_ms, first


async def settle(bench: Bench, ids: list[str], since: float) -> list[dict]:
    """Wait until none of the agent's runs is active; check every run of the burst."""
    args = bench.args
    await wait_idle(bench.api, bench.agent_id, args.deadline, args.poll)
    runs = await fetch_runs(bench.api, bench.agent_id, set(ids), since)
    check_runs(runs)
    await check_events(bench.api, ids, CHECK_CONCURRENCY)
    return runs


def most_in_flight(runs: list[dict]) -> int:
    """The largest number of runs between their started_at and finished_at at one moment."""
    edges = []
    for run in runs:
        timings = run["timings"]
        edges.append((parse_ts(timings["started_at"]), 1))
        edges.append((parse_ts(timings["finished_at"]), -1))
    edges.sort()  # at the same instant an end (-1) sorts before a start: not counted as overlap
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


async def sample_memory(roots: dict[str, int], peaks: dict[str, int], interval: float) -> None:
    """Until cancelled: the peak resident memory of each worker (a run worker's RSS, or a
    qcluster's processes' PSS summed: see ``memory_by_group``)."""
    while True:
        for name, size in memory_by_group(roots).items():
            peaks[name] = max(peaks.get(name, 0), size)
        await asyncio.sleep(interval)


async def measure_agentdeck(bench: Bench, n: int) -> dict[str, Any]:
    """N runs submitted at once (``--submitters`` in progress at most), end to end."""
    at_once = bench.args.submitters or n
    await open_connections(bench, at_once)
    bench.stub.reset()
    roots = bench.cpu_roots()
    peaks: dict[str, int] = {}
    sampler = asyncio.create_task(sample_memory(bench.worker_roots(), peaks, 0.1))
    cpu_before = cpu_by_group(roots)
    try:
        ids, post_ms, first = await post_runs(bench, n, at_once)
        await wait_idle(bench.api, bench.agent_id, bench.args.deadline, bench.args.poll)
        cpu_after = cpu_by_group(roots)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    stub_stats = bench.stub.stats()
    runs = await settle(bench, ids, first)
    last_finished = max(parse_ts(r["timings"]["finished_at"]) for r in runs)
    q2s = [
        (parse_ts(r["timings"]["started_at"]) - parse_ts(r["timings"]["queued_at"])) * 1000
        for r in runs
    ]
    cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_after if k in cpu_before}
    stub_cpu = cpu.pop("stub", float("nan"))
    return {
        "wall_s": last_finished - first,
        "in_flight": most_in_flight(runs),
        "stub_calls_at_once": stub_stats["max_in_flight"],
        "cpu": cpu,
        "cpu_s": sum(cpu.values()),
        "stub_cpu_s": stub_cpu,
        "worker_memory_peak_bytes": max(peaks.values(), default=0),
        "workers_memory_peak_bytes": sum(peaks.values()),
        "post_p50_ms": percentile(post_ms, 50),
        "post_p95_ms": percentile(post_ms, 95),
        "q2s_p50_ms": percentile(q2s, 50),
        "q2s_p95_ms": percentile(q2s, 95),
    }
