"""Many runs at once: agentdeck end to end against the raw Agents SDK, over the same HTTP model.

The workload is a two-turn tool agent on an OpenAI-compatible model served over HTTP by
``model_stub.py`` (Chat Completions, streamed, usage in the last chunk), in a process of its own:
the input ``calculator {"expression": "2+2"}`` makes the model call the ``calculator`` function
tool (agentdeck's builtin, which runs in the worker's process: no network), and the tool's
result makes it answer ``calculator returned: 4``. Every model call waits ``--latency`` seconds.

* **raw SDK**: one process (a subprocess, so its CPU and peak memory are its own) runs
  ``asyncio.gather`` of N ``Runner.run_streamed`` (every stream event consumed) of that agent,
  over ``OpenAIChatCompletionsModel`` and one shared ``AsyncOpenAI`` pointed at the stub.
* **agentdeck**: the path users take. ``POST /api/v1/agents/{id}/runs/`` N times at once (an
  ``openai_compatible`` provider pointed at the stub, the builtin calculator attached through the
  Tools API), the workers execute them and persist every event, and the benchmark polls the run
  list until none is queued or running. Every run must have ``succeeded`` with the expected
  output, a gapless event log, and exactly one ``run.started`` event, of attempt 1 (no run
  executed twice). Wall time is first POST -> last ``finished_at``; runs in flight is the
  largest overlap of the runs' [started_at, finished_at] intervals (exact, no sampling).

Scenarios (``--scenario``, each against the issue's targets, one line each):

* ``latency``: N=500, 1 s per model call: wall time <= 1.25 x raw, >= 400 runs in flight
  (0.8 N for a smaller N), peak memory (RSS) of a worker <= 400 MB;
* ``cpu``: N=300, no latency: CPU per run of all agentdeck processes <= 2 x the raw SDK's;
* ``create``: 50 concurrent ``POST .../runs/``: p50 <= 100 ms (beside it, for reference, 50
  concurrent authenticated ``GET /api/v1/runs/<unknown id>/``: the web stack's floor);
* ``start``: 20 runs one after another on an idle worker: queue-to-start p50 < 50 ms;
* ``all`` (default): the four in one invocation, on one deployment.

What runs the runs (``--engine``): ``runs_worker`` (default) starts ``--workers`` K x ``manage.py
runs_worker`` (the asyncio run worker of issue #15) and one ``manage.py qcluster`` for the other
tasks; ``qcluster`` runs everything on one ``manage.py qcluster`` with ``Q_WORKERS=K``, the path
before the run worker (for a checkout from before it: since, runs are not put on the queue). Beside them: ``manage.py serve --no-worker`` (daphne), the embedded
PostgreSQL in a fresh temporary var dir (or ``--database-url``), the ORM broker (or ``--redis``:
a private ``redis-server`` for broker, channel layer and cache, as production does). CPU seconds
are counted per process group from /proc (web, worker, qcluster, postgres, redis; the stub
apart, for both sides). Everything is started here and stopped on every exit path.

    .venv/bin/python benchmarks/concurrency.py                            # all, runs_worker
    .venv/bin/python benchmarks/concurrency.py --engine qcluster --runs 30 --latency 0.2
    .venv/bin/python benchmarks/concurrency.py --scenario latency --workers 2 --redis
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from _concurrency.agentdeck import Bench, create_agent  # noqa: E402
from _concurrency.config import CHECK_CONCURRENCY, scenario_n  # noqa: E402
from _concurrency.options import parse_args  # noqa: E402
from _concurrency.raw import raw_child_main  # noqa: E402
from _concurrency.report import report, targets  # noqa: E402
from _concurrency.scenarios import run_scenario, warm_up  # noqa: E402
from _concurrency.stub import StubProcess  # noqa: E402
from _support import (  # noqa: E402 (the scripts' own directory)
    Api,
    BenchError,
    Deployment,
    PrivateRedis,
    log,
    machine,
    medians_of,
    run_bench,
    runs_worker_available,
    wait_for_quiet,
)
from model_stub import raise_open_files_limit  # noqa: E402


async def bench_all(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    redis = None
    if args.redis:
        redis = PrivateRedis()
        redis.start()
    stub = StubProcess()
    stub.start()
    deployment = Deployment(
        broker="redis" if redis else "orm",
        workers=args.workers,
        redis_url=redis.url(0) if redis else "",
        keep=args.keep_var,
        extra_env=dict(args.server_env),
        engine=args.engine,
        database_url=args.database_url,
    )
    api = None
    try:
        deployment.start()
        token = deployment.manage("dev_token", "--sub", "bench-user", "--ttl", "86400").strip()
        most = max([scenario_n(args, s) for s in args.scenarios] + [args.warmup])
        api = Api(deployment.url, token, connections=most + CHECK_CONCURRENCY)
        agent_id = await create_agent(api, stub)
        bench = Bench(args, deployment, stub, api, agent_id, redis)
        log(f"[{deployment.label}] warm-up: {args.warmup} runs (waits for the workers)")
        await warm_up(bench, args.warmup)
        results: dict[str, list[dict[str, float]]] = {s: [] for s in args.scenarios}
        for index in range(args.repeat):
            for scenario in args.scenarios:
                log(f"[{scenario}] repetition {index + 1}/{args.repeat}")
                if args.quiet_wait:
                    await asyncio.to_thread(wait_for_quiet, args.quiet_wait)
                figures = {"load_1min": os.getloadavg()[0]}
                figures.update(await run_scenario(bench, scenario))
                results[scenario].append(figures)
        return results
    except BenchError:
        for name in deployment.processes:
            log(f"{name} log:\n{deployment.log_tail(name)}")
        raise
    finally:
        if api is not None:
            await api.close()
        log(f"[{deployment.label}] stopping agentdeck")
        deployment.stop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_raw"]:  # the raw SDK side, started by measure_raw
        base_url, runs, warmup = argv[1], int(argv[2]), int(argv[3])
        raise_open_files_limit()
        print(json.dumps(asyncio.run(raw_child_main(base_url, runs, warmup))))
        return 0
    args = parse_args(__doc__.split("\n\n")[0], argv)
    if args.engine == "runs_worker" and not runs_worker_available():
        log(
            "--engine runs_worker needs `manage.py runs_worker` (the asyncio run worker of issue "
            "#15), which this checkout does not have; use --engine qcluster for the path before it"
        )
        return 1
    # 1,000 connections at once (the benchmark's to daphne, the workers' to the stub) need more
    # descriptors than the usual soft limit; the processes started here inherit it.
    raise_open_files_limit()
    args.deadline = time.monotonic() + args.timeout  # every wait loop gives up at this point
    status, results = run_bench(lambda: bench_all(args), args.timeout)
    if results is None:
        return status

    info = machine()
    print()
    print(
        f"concurrency: engine {args.engine}, {args.workers} worker(s), "
        f"{'Redis' if args.redis else 'ORM broker, PostgreSQL channel layer'}, "
        f"{'external database' if args.database_url else 'embedded PostgreSQL'}; medians of "
        f"{args.repeat}; {info['date']}, nproc {info['nproc']}, Python {info['python']}"
        + "".join(f", {k}={v}" for k, v in args.server_env)
    )
    ok = True
    for scenario, repetitions in results.items():
        m = medians_of(repetitions)
        ok = ok and all(met for _, met in targets(scenario, m).values())
        print()
        print(report(scenario, m, args))
    if args.json:
        payload = {
            "machine": info,
            "argv": sys.argv,
            "results": {
                s: {"repetitions": r, "medians": medians_of(r)} for s, r in results.items()
            },
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
