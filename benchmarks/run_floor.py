"""The floor under ``run_overhead.py``: what the fixed stack costs before agentdeck does anything.

``run_overhead.py`` compares agentdeck's end-to-end runs/s with the raw Agents SDK's. Its targets
(≥ 50% with the Redis broker, ≥ 25% with the ORM broker) are missed by an order of magnitude.
This script asks whether they can be met at all on this machine with this stack (daphne,
django-q2, PostgreSQL, the SDK), by measuring, in one invocation and on the same deployment,
the cheapest form of every part a run must pass through, with no agentdeck code in it:

* **raw SDK**: the benchmark's baseline (``Runner.run`` of the same calculator agent, K in
  flight, one process), and ``Runner.run_streamed`` (what a worker must use to persist events as
  they happen). CPU per run of this process.
* **HTTP**: K concurrent clients ``GET /healthz`` through daphne: Django's ASGI handler and
  middleware, no authentication, no DRF, no database, no body. A run's ``POST`` needs at least
  this. CPU per request of the web process tree (``serve`` + daphne). Beside it, the cheapest
  request the API can answer: ``GET /api/v1/runs/<unknown id>/`` with a JWT (DRF, the JWT
  checked and its user loaded, the throttle, one indexed lookup, a 404 problem+json), since the
  issue's API authenticates every call; the floor is given both ways.
* **queue**: N no-op tasks through django-q2 with the deployment's broker and W workers:
  ``async_task`` from one process reusing one broker (cheaper than agentdeck's web path), the
  task increments a Redis counter (how completion is seen), ``save=False`` (no result row).
  CPU per task of the enqueuing process + the qcluster tree + PostgreSQL.
* **SQL**: the writes the issue requires of a run, as raw SQL on the deployment's real tables
  (copied from a real run's rows), batched as far as the requirements allow: web: one statement
  (insert the run, count it in ``agent_metadata``); worker: claim (conditional UPDATE), the 9
  events in three INSERTs (one per model turn; the last one in the same statement that sets
  the final status), the spans in one INSERT. 6 statements, autocommit, against agentdeck's ~31
  statements in 18 transactions. CPU per run of the client process + PostgreSQL.

On a machine with C cores and a raw rate R runs/s, agentdeck at a fraction f of R may spend at
most ``C x 1000 / (f x R)`` ms of CPU per run in all its processes together. The floor is the sum
of the four parts' CPU per run, the SDK's part being ``run_streamed``'s (the issue requires the
worker to run the SDK streamed; the figure with ``Runner.run`` is printed beside it): if it is
above that budget, the target is out of reach however lean agentdeck's own code
becomes. The load generators (the HTTP clients, the enqueuer's client side) are counted only
where they stand in for agentdeck work (the enqueuer is the web process's enqueue; the SQL
client is the web process and worker issuing statements); the HTTP clients are not counted.

    .venv/bin/python benchmarks/run_floor.py --broker both --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent

# The queue's no-op task runs in the qcluster's workers, which import this module by its dotted
# path (``benchmarks.run_floor``; the qcluster's working directory is the project). Keep the
# module's top level free of imports that need the benchmark's sys.path or Django.
_COUNTER = None


def floor_task(redis_url: str, key: str) -> None:
    """The queue floor's task: nothing but telling the benchmark it ran."""
    global _COUNTER
    if _COUNTER is None:
        import redis

        _COUNTER = redis.Redis.from_url(redis_url)
    _COUNTER.incr(key)


# --- run inside the deployment (``manage.py shell -c``), Django configured ----------------------


def enqueue_main(n: int, redis_url: str, key: str) -> None:
    """The queue floor's producer: N ``async_task`` calls on one broker; prints its CPU."""
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    broker = get_broker()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        async_task("benchmarks.run_floor.floor_task", redis_url, key, broker=broker, save=False)
    print(
        json.dumps(
            {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall, "n": n}
        )
    )


def sql_main(n: int, threads: int, template_run_id: str) -> None:
    """The SQL floor: N runs' required writes, copied from a real run; prints this process's
    CPU and the wall time. Every statement commits on its own (autocommit)."""
    import threading
    import uuid

    from django.db import connection, connections

    def columns(table: str) -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = %s AND table_schema = current_schema() ORDER BY ordinal_position",
                [table],
            )
            return [row[0] for row in cursor.fetchall()]

    run_cols = columns("agent_runs")
    event_cols = [c for c in columns("run_events") if c != "id"]
    span_cols = [c for c in columns("run_spans") if c != "id"]

    def select_list(cols: list[str], overrides: dict[str, str]) -> str:
        return ", ".join(overrides.get(c, c) for c in cols)

    run_overrides = {
        "id": "%s",
        "status": "'queued'",
        "idempotency_key": "NULL",
        "output": "NULL",
        "started_at": "NULL",
        "first_token_at": "NULL",
        "finished_at": "NULL",
        "heartbeat_at": "NULL",
        "created_at": "clock_timestamp()",
        "updated_at": "clock_timestamp()",
        "next_seq": "0",
        "attempts": "0",
    }
    run_insert = (
        f"WITH r AS (INSERT INTO agent_runs ({', '.join(run_cols)}) "  # noqa: S608 (catalog names)
        f"SELECT {select_list(run_cols, run_overrides)} FROM agent_runs WHERE id = %s "
        "RETURNING agent_id) "
        "UPDATE agent_metadata SET run_count = run_count + 1, last_run_at = clock_timestamp() "
        "WHERE agent_id = (SELECT agent_id FROM r)"
    )
    claim = (
        "UPDATE agent_runs SET status = 'running', started_at = clock_timestamp(), "
        "heartbeat_at = clock_timestamp(), attempts = attempts + 1, next_seq = 9 "
        "WHERE id = %s AND status = 'queued'"
    )

    def copy_rows(table: str, cols: list[str], where: str) -> str:
        """INSERT the template run's rows of ``table`` again, for the new run (first %s)."""
        chosen = select_list(cols, {"run_id": "%s", "created_at": "clock_timestamp()"})
        return (
            f"INSERT INTO {table} ({', '.join(cols)}) SELECT {chosen} "  # noqa: S608
            f"FROM {table} WHERE {where}"
        )

    events = copy_rows("run_events", event_cols, "run_id = %s AND seq BETWEEN %s AND %s")
    finish = (
        f"WITH e AS ({events}) UPDATE agent_runs t SET status = 'succeeded', "  # noqa: S608
        "output = s.output, usage = s.usage, last_agent = s.last_agent, "
        "finished_at = clock_timestamp() FROM agent_runs s WHERE t.id = %s AND s.id = %s"
    )
    spans = copy_rows("run_spans", span_cols, "run_id = %s")
    template = template_run_id
    pending = iter(range(n))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def one_run() -> None:
        run_id = str(uuid.uuid4())
        with connection.cursor() as cursor:
            cursor.execute(run_insert, [run_id, template])  # web: the run and its count
            cursor.execute(claim, [run_id])  # worker: claim
            cursor.execute(events, [run_id, template, 1, 3])  # turn 1
            cursor.execute(events, [run_id, template, 4, 6])  # turn 2
            cursor.execute(finish, [run_id, template, 7, 9, run_id, template])  # end + status
            cursor.execute(spans, [run_id, template])  # the trace

    def worker() -> None:
        try:
            while True:
                with lock:
                    if next(pending, None) is None:
                        return
                one_run()
        except BaseException as e:  # reported by the parent
            errors.append(e)
        finally:
            connections.close_all()

    for _ in range(5):  # warm the plans and caches of this connection
        one_run()
    cpu, wall = time.process_time(), time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    print(
        json.dumps(
            {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall, "n": n}
        )
    )


# --- the benchmark -------------------------------------------------------------------------------


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
    from _support import BenchError, cpu_by_group

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
    from _support import BenchTimeout, cpu_by_group

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
    from _support import cpu_by_group

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


async def bench_broker(args: argparse.Namespace, broker: str, ro: Any) -> list[Repetition]:
    """``ro``: ``run_overhead``, whose raw SDK baseline and runs this floor is measured against."""
    from _support import Api, BenchError, Deployment, log, wait_for_quiet

    redis_url = f"redis://127.0.0.1:{args.redis_port}/{args.redis_db}"
    deployment = Deployment(broker=broker, workers=args.workers, redis_url=redis_url)
    raw_agent = ro.make_raw_agent()
    api = None
    reps = []
    try:
        deployment.start()
        token = deployment.manage("dev_token", "--sub", "bench-user", "--ttl", "86400").strip()
        api = Api(deployment.url, token, connections=args.concurrency + 4)
        agent_id, _ = await ro.create_agent(api, deployment)
        log(f"[{broker}] warm-up: {args.warmup} real runs (their rows are the SQL template)")
        await ro.measure_burst(
            api, agent_id, args.warmup, args.concurrency, args.deadline, args.poll
        )
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
            raw, raw_cpu = await ro.measure_raw(raw_agent, args.runs, args.concurrency)
            streamed, streamed_cpu = await ro.measure_raw(
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


RATIO_TARGET = {"redis": 0.50, "orm": 0.25}


def report(results: dict[str, list[Repetition]]) -> str:
    from _support import md_table, medians_of

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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=["orm", "redis", "both"], default="both")
    parser.add_argument("--runs", type=int, default=200, help="raw SDK runs per measurement")
    parser.add_argument("--requests", type=int, default=2000, help="HTTP floor requests")
    parser.add_argument("--tasks", type=int, default=1000, help="queue floor tasks")
    parser.add_argument("--sql-runs", type=int, default=1000, help="SQL floor runs")
    parser.add_argument("--sql-threads", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8, help="K, as run_overhead.py")
    parser.add_argument("--workers", type=int, default=2, help="W qcluster workers")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--poll", type=float, default=0.1)
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--redis-db", type=int, default=9, help="flushed at start")
    parser.add_argument("--quiet-wait", type=float, default=0)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


async def bench_brokers(args: argparse.Namespace, ro: Any) -> dict[str, list[Repetition]]:
    brokers = ["orm", "redis"] if args.broker == "both" else [args.broker]
    return {broker: await bench_broker(args, broker, ro) for broker in brokers}


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(BASE_DIR / "benchmarks"))
    import _support
    import run_overhead as ro

    args = parse_args(argv)
    args.deadline = time.monotonic() + args.timeout
    # the queue floor counts completions in Redis, whatever the broker
    why_not = _support.redis_flushed(args.redis_port, [args.redis_db], timeout=2)
    if why_not:
        _support.log(f"Redis is needed: {why_not}")
        return 1
    status, results = _support.run_bench(lambda: bench_brokers(args, ro), args.timeout)
    if status:
        return status
    info = _support.machine()
    print()
    print(f"run floor; {info['date']}, nproc {info['nproc']}, Python {info['python']}")
    print(report(results))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "argv": sys.argv,
                    "results": {b: [asdict(r) for r in reps] for b, reps in results.items()},
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
