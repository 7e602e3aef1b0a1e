"""The floor of each part a run passes through: HTTP through daphne, the queue, the SQL."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from _support import (
    BenchError,
    BenchTimeout,
    cpu_by_group,
)


def _manage_json(deployment: Any, code: str) -> dict[str, Any]:
    out = deployment.manage("shell", "-c", code)
    return json.loads(out.strip().splitlines()[-1])


async def measure_http(
    url: str,
    n: int,
    concurrency: int,
    roots: dict[str, int],
    *,
    path: str = "/healthz",
    expect: int = 200,
    token: str | None = None,
):
    import httpx

    async with httpx.AsyncClient(
        base_url=url,
        trust_env=False,
        timeout=30,
        headers={"Authorization": f"Bearer {token}"} if token else {},
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    ) as client:
        pending = iter(range(n))

        async def one() -> None:
            for _ in pending:
                response = await client.get(path)
                if response.status_code != expect:
                    raise BenchError(f"{path} -> {response.status_code}")

        for _ in range(50):
            await client.get(path)
        before = cpu_by_group({"web": roots["web"]})
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        after = cpu_by_group({"web": roots["web"]})
    return n / elapsed, (after["web"] - before["web"]) / n * 1000


def measure_queue(deployment: Any, n: int, redis_url: str, deadline: float):
    import redis

    client = redis.Redis.from_url(redis_url)
    key = f"run-floor:{time.time_ns()}"
    roots = deployment.cpu_roots()
    groups = {k: v for k, v in roots.items() if k in ("worker", "postgres")}
    before = cpu_by_group(groups)
    started = time.perf_counter()
    produced = _manage_json(
        deployment,
        f"import benchmarks.run_floor as f; f.enqueue_main({n}, {redis_url!r}, {key!r})",
    )
    while int(client.get(key) or 0) < n:
        if time.monotonic() > deadline:
            raise BenchTimeout(f"queue floor: {client.get(key)} of {n} tasks ran")
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    after = cpu_by_group(groups)
    client.delete(key)
    client.close()
    # The wall time includes the enqueuer's start-up (Django setup), so tasks/s is a lower bound;
    # the CPU figures count only the enqueue loop (its own measurement) and the deltas.
    worker = (after["worker"] - before["worker"]) / n * 1000
    postgres = (after.get("postgres", 0) - before.get("postgres", 0)) / n * 1000
    enqueue = produced["cpu_s"] / n * 1000
    return n / elapsed, enqueue, worker, postgres


def measure_sql(deployment: Any, n: int, threads: int, template: str):

    roots = deployment.cpu_roots()
    before = cpu_by_group({"postgres": roots["postgres"]})
    result = _manage_json(
        deployment,
        f"import benchmarks.run_floor as f; f.sql_main({n}, {threads}, {template!r})",
    )
    after = cpu_by_group({"postgres": roots["postgres"]})
    client = result["cpu_s"] / n * 1000
    # PostgreSQL's CPU delta also holds the shell's start-up queries and the 5 warm-up runs
    # (an overestimate by a few runs' worth, against the floor's favour).
    postgres = (after["postgres"] - before["postgres"]) / n * 1000
    return n / result["wall_s"], client, postgres
