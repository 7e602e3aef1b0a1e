"""One broker's repetitions: the raw SDK and every part's floor on one deployment, their sum against
the budget a target allows.
"""

from __future__ import annotations

import argparse
import os
import uuid
from dataclasses import dataclass

from _run_overhead.measure import RATIO_TARGET, measure_burst
from _run_overhead.runs import create_agent, make_raw_agent, measure_raw
from _support import (
    Api,
    BenchError,
    Deployment,
    log,
    wait_for_quiet,
)

from .parts import measure_http, measure_queue, measure_sql


@dataclass
class Repetition:
    raw_runs_per_s: float
    raw_cpu_ms: float
    raw_streamed_runs_per_s: float
    raw_streamed_cpu_ms: float
    http_per_s: float
    http_cpu_ms: float  # web tree per request
    api_per_s: float
    api_cpu_ms: float  # web tree per authenticated DRF request (404)
    queue_per_s: float
    queue_cpu_ms: float  # enqueuer + qcluster tree + postgres, per task
    queue_enqueue_cpu_ms: float
    queue_worker_cpu_ms: float
    queue_postgres_cpu_ms: float
    sql_runs_per_s: float
    sql_cpu_ms: float  # client + postgres per run
    sql_client_cpu_ms: float
    sql_postgres_cpu_ms: float
    floor_cpu_ms: float
    budget_cpu_ms: float
    max_ratio: float
    max_ratio_unstreamed: float  # the same with Runner.run's CPU instead of run_streamed's
    api_floor_cpu_ms: float  # the floor with the authenticated request instead of /healthz
    api_max_ratio: float
    load_1min: float


async def bench_broker(args: argparse.Namespace, broker: str) -> list[Repetition]:
    """Against ``run_overhead``'s raw SDK baseline and runs."""

    redis_url = f"redis://127.0.0.1:{args.redis_port}/{args.redis_db}"
    deployment = Deployment(broker=broker, workers=args.workers, redis_url=redis_url)
    raw_agent = make_raw_agent()
    api = None
    reps = []
    try:
        deployment.start()
        token = deployment.manage("dev_token", "--sub", "bench-user", "--ttl", "86400").strip()
        api = Api(deployment.url, token, connections=args.concurrency + 4)
        agent_id, _ = await create_agent(api, deployment)
        log(f"[{broker}] warm-up: {args.warmup} real runs (their rows are the SQL template)")
        await measure_burst(api, agent_id, args.warmup, args.concurrency, args.deadline, args.poll)
        page = await api("GET", f"/api/v1/runs/?agent={agent_id}&status=succeeded")
        template = page["results"][0]["id"]
        events = await api("GET", f"/api/v1/runs/{template}/events/")
        event_count = len(events.get("results", events) if isinstance(events, dict) else events)
        if event_count != 9:
            raise BenchError(f"the template run has {event_count} events, not 9")
        cores = os.cpu_count() or 1
        for index in range(args.repeat):
            if args.quiet_wait:
                wait_for_quiet(args.quiet_wait)
            load = os.getloadavg()[0]
            raw, raw_cpu = await measure_raw(raw_agent, args.runs, args.concurrency)
            streamed, streamed_cpu = await measure_raw(
                raw_agent, args.runs, args.concurrency, streamed=True
            )
            http, http_cpu = await measure_http(
                deployment.url, args.requests, args.concurrency, deployment.cpu_roots()
            )
            # The same through DRF with a JWT: authentication (one user query), the throttle,
            # one indexed lookup answered 404 problem+json. Every API call pays at least this.
            api_http, api_cpu = await measure_http(
                deployment.url,
                args.requests,
                args.concurrency,
                deployment.cpu_roots(),
                path=f"/api/v1/runs/{uuid.uuid4()}/",
                expect=404,
                token=token,
            )
            queue, enqueue_cpu, worker_cpu, queue_pg_cpu = measure_queue(
                deployment, args.tasks, redis_url, args.deadline
            )
            sql, sql_client, sql_pg = measure_sql(
                deployment, args.sql_runs, args.sql_threads, template
            )
            queue_cpu = enqueue_cpu + worker_cpu + queue_pg_cpu
            floor = streamed_cpu + http_cpu + queue_cpu + sql_client + sql_pg
            api_floor = floor - http_cpu + api_cpu
            budget = cores * 1000 / (RATIO_TARGET[broker] * raw)
            rep = Repetition(
                raw_runs_per_s=raw,
                raw_cpu_ms=raw_cpu,
                raw_streamed_runs_per_s=streamed,
                raw_streamed_cpu_ms=streamed_cpu,
                http_per_s=http,
                http_cpu_ms=http_cpu,
                api_per_s=api_http,
                api_cpu_ms=api_cpu,
                queue_per_s=queue,
                queue_cpu_ms=queue_cpu,
                queue_enqueue_cpu_ms=enqueue_cpu,
                queue_worker_cpu_ms=worker_cpu,
                queue_postgres_cpu_ms=queue_pg_cpu,
                sql_runs_per_s=sql,
                sql_cpu_ms=sql_client + sql_pg,
                sql_client_cpu_ms=sql_client,
                sql_postgres_cpu_ms=sql_pg,
                floor_cpu_ms=floor,
                budget_cpu_ms=budget,
                max_ratio=cores * 1000 / floor / raw,
                max_ratio_unstreamed=cores * 1000 / (floor - streamed_cpu + raw_cpu) / raw,
                api_floor_cpu_ms=api_floor,
                api_max_ratio=cores * 1000 / api_floor / raw,
                load_1min=load,
            )
            reps.append(rep)
            log(
                f"[{broker}] repetition {index + 1}/{args.repeat}: raw {raw:.0f} runs/s "
                f"({raw_cpu:.2f} ms CPU/run; streamed {streamed_cpu:.2f}), HTTP floor "
                f"{http:.0f}/s ({http_cpu:.2f} ms; authenticated {api_cpu:.2f} ms), queue floor {queue:.0f}/s ({queue_cpu:.2f} ms "
                f"= {enqueue_cpu:.2f} + {worker_cpu:.2f} + {queue_pg_cpu:.2f}), SQL floor "
                f"{sql:.0f} runs/s ({sql_client:.2f} + {sql_pg:.2f} ms): floor {floor:.1f} ms "
                f"({api_floor:.1f} ms authenticated) against a budget of {budget:.1f} ms, "
                f"max ratio {rep.max_ratio:.2f} ({rep.api_max_ratio:.2f}), "
                f"load {load:.2f}"
            )
    finally:
        if api is not None:
            await api.close()
        deployment.stop()
    return reps


async def bench_brokers(args: argparse.Namespace) -> dict[str, list[Repetition]]:
    brokers = ["orm", "redis"] if args.broker == "both" else [args.broker]
    return {broker: await bench_broker(args, broker) for broker in brokers}
