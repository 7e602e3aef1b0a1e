"""The measurements of one broker: a burst of runs, the idle queue-to-start latency, and R
repetitions of both against the raw SDK on one deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from dataclasses import dataclass
from typing import Any

from _support import (
    Api,
    BenchError,
    BenchTimeout,
    Deployment,
    cpu_busy,
    cpu_by_group,
    log,
    medians_of,
    parse_ts,
    percentile,
    wait_for_quiet,
)

from .runs import (
    TERMINAL,
    check_events,
    check_runs,
    create_agent,
    fetch_runs,
    measure_raw,
    submit,
    wait_idle,
)

# Targets from the issue: agentdeck runs/s as a fraction of raw SDK runs/s, per broker, and the
# idle queue-to-start p50 with Redis.
RATIO_TARGET = {"redis": 0.50, "orm": 0.25}
LATENCY_P50_TARGET_MS = {"redis": 50.0}


@dataclass
class BurstResult:
    runs_per_s: float
    client_runs_per_s: float  # until the client saw the last run settle (includes polling)
    q2s_ms: list[float]
    exec_ms: list[float]  # started -> finished on the worker
    post_ms: list[float]  # POST round trip as the client saw it
    cpu_ms: dict[str, float]  # CPU ms per run of each agentdeck process tree (Linux)


async def measure_burst(
    api: Api,
    agent_id: str,
    n: int,
    concurrency: int,
    deadline: float,
    poll: float,
    cpu_roots: dict[str, int] | None = None,
) -> BurstResult:
    ids: list[str] = []
    post_ms: list[float] = []
    pending = iter(range(n))  # shared by the submitters: each index is taken once

    async def submitter() -> None:
        for _ in pending:
            t0 = time.perf_counter()
            run = await submit(api, agent_id)
            post_ms.append((time.perf_counter() - t0) * 1000)
            ids.append(run["id"])

    cpu_before = cpu_by_group(cpu_roots or {})
    first_submit = time.time()
    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    seen_done = await wait_idle(api, agent_id, deadline, poll)
    cpu_after = cpu_by_group(cpu_roots or {})
    cpu_ms = {k: (cpu_after[k] - cpu_before[k]) / n * 1000 for k in cpu_after if k in cpu_before}
    runs = await fetch_runs(api, agent_id, set(ids), first_submit)
    check_runs(runs)
    await check_events(api, ids, concurrency)
    last_finished = max(parse_ts(r["timings"]["finished_at"]) for r in runs)
    q2s, exe = [], []
    for r in runs:
        t = r["timings"]
        queued, started = parse_ts(t["queued_at"]), parse_ts(t["started_at"])
        q2s.append((started - queued) * 1000)
        exe.append((parse_ts(t["finished_at"]) - started) * 1000)
    return BurstResult(
        runs_per_s=n / (last_finished - first_submit),
        client_runs_per_s=n / (seen_done - first_submit),
        q2s_ms=q2s,
        exec_ms=exe,
        post_ms=post_ms,
        cpu_ms=cpu_ms,
    )


async def measure_idle_latency(api: Api, m: int, agent_id: str, deadline: float) -> list[float]:
    """M runs one at a time on an idle queue: queue-to-start without any backlog."""
    latencies = []
    for _ in range(m):
        run = await submit(api, agent_id)
        while run["status"] not in TERMINAL:
            if time.monotonic() > deadline:
                raise BenchTimeout("idle-latency run did not finish before the deadline")
            await asyncio.sleep(0.025)
            run = await api("GET", f"/api/v1/runs/{run['id']}/")
        check_runs([run])
        t = run["timings"]
        latencies.append((parse_ts(t["started_at"]) - parse_ts(t["queued_at"])) * 1000)
        # A random pause, so submissions do not phase-lock with the broker's polling loop.
        await asyncio.sleep(random.uniform(0.05, 0.3))  # noqa: S311 (not cryptographic)
    return latencies


@dataclass
class Repetition:
    raw_runs_per_s: float
    raw_streamed_runs_per_s: float
    agentdeck_runs_per_s: float
    agentdeck_client_runs_per_s: float
    ratio: float
    burst_q2s_p50_ms: float
    burst_q2s_p99_ms: float
    idle_q2s_p50_ms: float
    idle_q2s_p99_ms: float
    exec_p50_ms: float
    post_p50_ms: float
    raw_cpu_ms: float  # CPU per run of the raw SDK (this process)
    agentdeck_cpu_ms: float  # CPU per run of web + worker + postgres (nan where unmeasured)
    web_cpu_ms: float
    worker_cpu_ms: float
    postgres_cpu_ms: float
    load_1min: float  # the machine's load average when the repetition started (shared machines)
    busy_before: float  # CPU busy fraction just before the repetition, with agentdeck idle


@dataclass
class BrokerResult:
    broker: str
    runs: int
    concurrency: int
    workers: int
    repetitions: list[Repetition]
    medians: dict[str, float]
    targets: dict[str, Any]


async def bench_broker(args: argparse.Namespace, broker: str, raw_agent) -> BrokerResult:
    redis_url = f"redis://127.0.0.1:{args.redis_port}/{args.redis_db}"
    deployment = Deployment(
        broker=broker,
        workers=args.workers,
        redis_url=redis_url,
        keep=args.keep_var,
        web_conn_max_age=args.web_conn_max_age,
        extra_env=dict(args.server_env),
    )
    api = None
    try:
        deployment.start()
        token = deployment.manage("dev_token", "--sub", "bench-user", "--ttl", "86400").strip()
        api = Api(deployment.url, token, connections=args.concurrency + 4)
        agent_id, attached = await create_agent(api, deployment)
        log(f"[{broker}] agent {agent_id}: calculator attached through the {attached}")
        deadline = args.deadline

        log(f"[{broker}] warm-up: {args.warmup} runs (waits for the qcluster to come up)")
        await measure_burst(api, agent_id, args.warmup, args.concurrency, deadline, args.poll)

        repetitions = []
        for index in range(args.repeat):
            busy_before = wait_for_quiet(args.quiet_wait) if args.quiet_wait else cpu_busy()
            load_1min = os.getloadavg()[0]
            raw, raw_cpu = await measure_raw(raw_agent, args.runs, args.concurrency)
            raw_streamed, _ = await measure_raw(
                raw_agent, args.runs, args.concurrency, streamed=True
            )
            burst = await measure_burst(
                api,
                agent_id,
                args.runs,
                args.concurrency,
                deadline,
                args.poll,
                cpu_roots=deployment.cpu_roots(),
            )
            nan = float("nan")
            idle = await measure_idle_latency(api, args.latency_runs, agent_id, deadline)
            rep = Repetition(
                raw_runs_per_s=raw,
                raw_streamed_runs_per_s=raw_streamed,
                agentdeck_runs_per_s=burst.runs_per_s,
                agentdeck_client_runs_per_s=burst.client_runs_per_s,
                ratio=burst.runs_per_s / raw,
                burst_q2s_p50_ms=percentile(burst.q2s_ms, 50),
                burst_q2s_p99_ms=percentile(burst.q2s_ms, 99),
                idle_q2s_p50_ms=percentile(idle, 50),
                idle_q2s_p99_ms=percentile(idle, 99),
                exec_p50_ms=percentile(burst.exec_ms, 50),
                post_p50_ms=percentile(burst.post_ms, 50),
                raw_cpu_ms=raw_cpu,
                agentdeck_cpu_ms=sum(burst.cpu_ms.values()) if burst.cpu_ms else nan,
                web_cpu_ms=burst.cpu_ms.get("web", nan),
                worker_cpu_ms=burst.cpu_ms.get("worker", nan),
                postgres_cpu_ms=burst.cpu_ms.get("postgres", nan),
                load_1min=load_1min,
                busy_before=busy_before,
            )
            repetitions.append(rep)
            log(
                f"[{broker}] repetition {index + 1}/{args.repeat}: raw {raw:.1f} runs/s, "
                f"agentdeck {burst.runs_per_s:.1f} runs/s (ratio {rep.ratio:.3f}), "
                f"idle queue-to-start p50 {rep.idle_q2s_p50_ms:.1f} ms, "
                f"run exec p50 {rep.exec_p50_ms:.1f} ms, POST p50 {rep.post_p50_ms:.1f} ms, "
                f"CPU per run raw {raw_cpu:.1f} ms / agentdeck {rep.agentdeck_cpu_ms:.1f} ms, "
                f"load average at start {load_1min:.2f}, CPU busy before {busy_before:.0%}"
            )
    except BenchError:
        if deployment.processes:
            log(f"serve log:\n{deployment.log_tail('serve')}")
            log(f"qcluster log:\n{deployment.log_tail('qcluster')}")
        raise
    finally:
        if api is not None:
            await api.close()
        log(f"[{broker}] stopping agentdeck")
        deployment.stop()

    medians = medians_of(repetitions)
    targets: dict[str, Any] = {
        "ratio_target": RATIO_TARGET[broker],
        "ratio_ok": medians["ratio"] >= RATIO_TARGET[broker],
    }
    if broker in LATENCY_P50_TARGET_MS:
        targets["idle_q2s_p50_target_ms"] = LATENCY_P50_TARGET_MS[broker]
        targets["idle_q2s_p50_ok"] = medians["idle_q2s_p50_ms"] < LATENCY_P50_TARGET_MS[broker]
    return BrokerResult(
        broker=broker,
        runs=args.runs,
        concurrency=args.concurrency,
        workers=args.workers,
        repetitions=repetitions,
        medians=medians,
        targets=targets,
    )
