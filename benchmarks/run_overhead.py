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
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from _run_overhead.measure import BrokerResult, bench_broker  # noqa: E402
from _run_overhead.options import parse_args  # noqa: E402
from _run_overhead.report import details, table  # noqa: E402
from _run_overhead.runs import make_raw_agent  # noqa: E402
from _support import log, machine, redis_flushed, run_bench  # noqa: E402 (the scripts' own directory)


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
    args = parse_args(__doc__.split("\n\n")[0], argv)

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
