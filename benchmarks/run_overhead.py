"""Run-engine overhead: agentdeck end to end against the raw Agents SDK, in one invocation.

The workload is a two-turn tool-calling run of the same agent on the same scripted model: the
offline ``MockModel`` reads ``calculator {"expression": "2+2"}``, calls the builtin
``calculator`` tool, and on the next turn answers ``calculator returned: 4``.

* **raw SDK**: ``agents.Runner.run(agent, INPUT)`` in this process, N times with at most K runs
  in flight (an ``asyncio.Semaphore``), tracing disabled. runs/s = N / elapsed. (``Runner
  .run_streamed``, which the worker uses, is measured too, for information.)
* **agentdeck**: the same run N times through the deployed shape: K concurrent HTTP clients
  ``POST /api/v1/agents/{id}/runs/`` (background mode) to daphne, django-q2 carries the task to
  a ``qcluster`` with W workers, the worker claims the run, streams it, persists every event and
  settles the final status. runs/s = N / (first submit -> last ``finished_at``). Afterwards every
  run must be ``succeeded`` with the expected output, and its event log gapless (seq 1..n),
  ending with ``run.succeeded``, with one ``run.started`` (no run executed twice).
* **queue-to-start** = ``timings.started_at - timings.queued_at`` from the run JSON, twice:
  under the burst above (it then mostly measures the backlog: run k waits for k-1 runs ahead of
  it), and on an idle queue: M runs one after another, each submitted once the previous one
  finished, which is the dispatch latency the target is about.

Each measurement is repeated R times, alternating the baseline and agentdeck so both see the
same machine noise, and the medians are reported. Everything agentdeck needs is started here:
``manage.py serve --no-worker`` (daphne; it starts the embedded PostgreSQL in a fresh temporary
``AGENTDECK_VAR_DIR``) plus one ``manage.py qcluster``, on a free port, and stopped at the end,
on Ctrl-C or on error. All traffic goes to 127.0.0.1.

    .venv/bin/python benchmarks/run_overhead.py --runs 200 --broker both
    .venv/bin/python benchmarks/run_overhead.py --broker redis --workers 4 --json out.json

The agent is created over the REST API (a ``mock`` provider, model ``mock-echo``) with the builtin
calculator attached through the Tools API (``POST /api/v1/tools/``, then ``tools`` on the agent).
On a server from before the Tools API (404), the calculator is written into the agent version's
snapshot instead, with a ``manage.py shell -c`` one-liner against the benchmark's own database.

Settings the benchmark gives the server (all ordinary production settings, see .env.example):
``Q_WORKERS`` (``--workers``), ``THROTTLE_USER_RATE`` raised so the one benchmark user is not
throttled at 1200 requests/min (a benchmark sends more than that from one account; a real
deployment would see the same load from many users), and for ``redis`` ``REDIS_URL`` (which
switches the queue broker, channel layer and cache to Redis, as in production).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from _support import (  # noqa: E402 (the scripts' own directory)
    Api,
    BenchError,
    BenchTimeout,
    Deployment,
    cpu_busy,
    cpu_by_group,
    env_pair,
    log,
    machine,
    md_table,
    medians_of,
    parse_ts,
    percentile,
    redis_flushed,
    run_bench,
    verdict,
    wait_for_quiet,
)

INPUT = 'calculator {"expression": "2+2"}'
EXPECTED_OUTPUT = "calculator returned: 4"
AGENT_NAME = "bench-calculator"
TERMINAL = {"succeeded", "failed", "cancelled"}
# Targets from the issue: agentdeck runs/s as a fraction of raw SDK runs/s, per broker, and the
# idle queue-to-start p50 with Redis.
RATIO_TARGET = {"redis": 0.50, "orm": 0.25}
LATENCY_P50_TARGET_MS = {"redis": 50.0}
# --- the raw SDK baseline ------------------------------------------------------------------------


def make_raw_agent():
    """The same agent the server builds from the version snapshot: no instructions, the mock
    model, the builtin calculator. Importing these two modules needs no Django."""
    import agents

    from agentdeck.agents.runtime.mock_model import MockModel
    from agentdeck.agents.runtime.tools import calculator

    agents.set_tracing_disabled(True)
    return agents.Agent(name=AGENT_NAME, model=MockModel(), tools=[calculator])


async def measure_raw(
    agent, n: int, concurrency: int, *, streamed: bool = False
) -> tuple[float, float]:
    """(runs/s, CPU ms per run of this process)."""
    from agents import Runner

    limit = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with limit:
            if streamed:
                result = Runner.run_streamed(agent, INPUT)
                async for _ in result.stream_events():
                    pass
            else:
                result = await Runner.run(agent, INPUT)
            if result.final_output != EXPECTED_OUTPUT:
                raise BenchError(f"raw SDK run answered {result.final_output!r}")

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - started), (time.process_time() - cpu) / n * 1000


async def create_agent(api: Api, deployment: Deployment) -> tuple[str, str]:
    """The benchmark agent: mock provider, ``mock-echo``, the builtin calculator attached.
    Returns (agent id, how the tool was attached)."""
    provider = await api(
        "POST", "/api/v1/providers/", {"name": "bench-mock", "kind": "mock"}, expect=(201,)
    )
    body = {"name": AGENT_NAME, "provider": provider["id"], "model": "mock-echo"}
    response = await api.client.post(
        "/api/v1/tools/",
        json={"name": "calculator", "kind": "builtin", "config": {"builtin": "calculator"}},
    )
    if response.status_code == 201:  # the Tools API: attach the tool record to the agent
        body["tools"] = [{"tool": response.json()["id"]}]
        agent = await api("POST", "/api/v1/agents/", body, expect=(201,))
        return agent["id"], "Tools API"
    if response.status_code != 404:
        raise BenchError(f"POST /api/v1/tools/ -> {response.status_code}: {response.text[:500]}")
    agent = await api("POST", "/api/v1/agents/", body, expect=(201,))
    agent_id = str(uuid.UUID(agent["id"]))  # validated: it is interpolated into code below
    # A server without Tool records in its API (before the Tools API landed): the runtime already
    # builds tools from the version snapshot's `tools` list, so put the builtin calculator there,
    # directly in this deployment's database, as the API now does.
    deployment.manage(
        "shell",
        "-c",
        "from agentdeck.agents.models import Agent, AgentVersion; "
        f"a = Agent.objects.get(pk='{agent_id}'); "
        "v = AgentVersion.objects.get(agent=a, number=a.current_version); "
        "v.snapshot = {**v.snapshot, 'tools': [{'kind': 'builtin', 'name': 'calculator'}]}; "
        "v.save(update_fields=['snapshot']); print('calculator attached')",
    )
    return agent_id, "snapshot edit (no Tools API)"


async def submit(api: Api, agent_id: str) -> dict[str, Any]:
    return await api(
        "POST", f"/api/v1/agents/{agent_id}/runs/", {"input": INPUT, "mode": "background"}, (202,)
    )


async def wait_idle(api: Api, agent_id: str, deadline: float, interval: float) -> float:
    """Poll until none of the agent's runs is queued or running; returns that moment (wall
    clock). A run never goes back to queued, so an empty `queued` page followed by an empty
    `running` page means everything submitted before the first query has settled."""
    while True:
        if time.monotonic() > deadline:
            raise BenchTimeout("runs did not all finish before the deadline")
        page = await api("GET", f"/api/v1/runs/?agent={agent_id}&status=queued&page_size=1")
        if not page["results"]:
            page = await api("GET", f"/api/v1/runs/?agent={agent_id}&status=running&page_size=1")
            if not page["results"]:
                return time.time()
        await asyncio.sleep(interval)


async def fetch_runs(api: Api, agent_id: str, ids: set[str], since: float) -> list[dict]:
    """The runs with these ids, from the list endpoint (200 a page, newest first)."""
    after = datetime.fromtimestamp(since - 1, tz=UTC).isoformat().replace("+00:00", "Z")
    path: str | None = f"/api/v1/runs/?agent={agent_id}&created_after={after}&page_size=200"
    found: dict[str, dict] = {}
    for _ in range(len(ids) // 200 + 5):  # bounded: a few pages more than needed
        if path is None:
            break
        page = await api("GET", path)
        for run in page["results"]:
            if run["id"] in ids:
                found[run["id"]] = run
        path = page.get("next")
    if len(found) != len(ids):
        raise BenchError(f"found {len(found)} of {len(ids)} runs in the list endpoint")
    return list(found.values())


def check_runs(runs: list[dict]) -> None:
    bad = [r for r in runs if r["status"] != "succeeded" or r["output"] != EXPECTED_OUTPUT]
    if bad:
        sample = {k: bad[0].get(k) for k in ("id", "status", "output", "error")}
        raise BenchError(f"{len(bad)} of {len(runs)} runs did not succeed as expected: {sample}")


async def check_events(api: Api, run_ids: list[str], concurrency: int) -> None:
    """Every run's log: seq 1..n without gaps, a tool call and its result, run.succeeded last,
    and executed once: one ``run.started`` event, of the run's first attempt."""
    limit = asyncio.Semaphore(concurrency)
    problems: list[str] = []

    async def one(run_id: str) -> None:
        async with limit:
            page = await api("GET", f"/api/v1/runs/{run_id}/events/?limit=1000")
        events = page["results"]
        seqs = [e["seq"] for e in events]
        types = [e["type"] for e in events]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"{run_id}: seqs {seqs}")
        elif not types or types[-1] != "run.succeeded" or not page["finished"]:
            problems.append(f"{run_id}: ends with {types[-1:]} finished={page['finished']}")
        elif "tool_call.started" not in types or "tool_call.completed" not in types:
            problems.append(f"{run_id}: no tool call in {types}")
        else:
            attempts = [e["data"].get("attempt") for e in events if e["type"] == "run.started"]
            if attempts != [1]:
                problems.append(f"{run_id}: executed more than once (run.started {attempts})")

    await asyncio.gather(*(one(run_id) for run_id in run_ids))
    if problems:
        raise BenchError(f"{len(problems)} run logs are wrong, e.g. {problems[0]}")


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


# --- one broker, R repetitions -------------------------------------------------------------------


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


# --- reporting -----------------------------------------------------------------------------------


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


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="N runs per measurement")
    parser.add_argument("--broker", choices=["orm", "redis", "both"], default="both")
    parser.add_argument("--concurrency", type=int, default=8, help="K concurrent submitters")
    parser.add_argument("--workers", type=int, default=2, help="W qcluster workers (Q_WORKERS)")
    parser.add_argument("--repeat", type=int, default=3, help="R repetitions; medians reported")
    parser.add_argument("--warmup", type=int, default=10, help="uncounted runs first")
    parser.add_argument(
        "--latency-runs", type=int, default=50, help="M sequential runs for idle queue-to-start"
    )
    parser.add_argument("--poll", type=float, default=0.1, help="completion poll interval, s")
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--redis-db", type=int, default=9, help="flushed at start")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="global limit in seconds for the whole run"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0,
        help="before each repetition wait up to this many seconds for the machine's CPU to be "
        "under 25%% busy (shared machines); 0: do not wait",
    )
    parser.add_argument(
        "--web-conn-max-age",
        default="0",
        help="DATABASE_CONN_MAX_AGE of the web process (daphne); default 0, as Django advises "
        "under ASGI (a positive value leaks a connection per request thread)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        type=env_pair,
        metavar="KEY=VALUE",
        help="another setting for both server processes (repeatable), e.g. Q_SAVE_LIMIT=-1",
    )
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    parser.add_argument("--keep-var", action="store_true", help="keep the temporary var dirs")
    args = parser.parse_args(argv)
    if min(args.runs, args.concurrency, args.workers, args.repeat, args.latency_runs) < 1:
        parser.error("--runs, --concurrency, --workers, --repeat, --latency-runs must be >= 1")
    return args


async def run_brokers(args: argparse.Namespace) -> list[BrokerResult]:
    raw_agent = make_raw_agent()
    brokers = ["orm", "redis"] if args.broker == "both" else [args.broker]
    results = []
    for broker in brokers:
        if broker == "redis":
            why_not = redis_flushed(args.redis_port, [args.redis_db], timeout=2)
            if why_not:
                log(f"skipping the redis broker: {why_not}")
                continue
        results.append(await bench_broker(args, broker, raw_agent))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    args.deadline = time.monotonic() + args.timeout  # every wait loop gives up at this point
    status, results = run_bench(lambda: run_brokers(args), args.timeout)
    if status:
        return status
    if not results:
        log("nothing measured")
        return 1

    info = machine()
    print()
    print(
        f"run overhead, medians of {args.repeat} repetitions; {info['date']}, "
        f"nproc {info['nproc']}, Python {info['python']}; "
        f"idle latency over {args.latency_runs} sequential runs"
    )
    print(
        f"server settings: Q_WORKERS={args.workers}, THROTTLE_USER_RATE=1000000/min, "
        f"DATABASE_CONN_MAX_AGE={args.web_conn_max_age} on daphne (worker: project default)"
        + "".join(f", {k}={v}" for k, v in args.server_env)
    )
    print(table(results))
    print()
    print(details(results))
    if args.json:
        payload = {
            "machine": info,
            "argv": sys.argv,
            "web_conn_max_age": args.web_conn_max_age,
            "server_env": dict(args.server_env),
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    ok = all(v for r in results for k, v in r.targets.items() if k.endswith("_ok"))
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
