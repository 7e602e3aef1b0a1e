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

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
# The queue's no-op task runs in the qcluster's workers, which import it by its dotted path
# (``benchmarks.run_floor.floor_task``; the qcluster's working directory is the project), and the
# enqueuer and the SQL floor run as ``benchmarks.run_floor`` in ``manage.py shell -c``. Keep the
# module's top level free of imports that need the benchmark's sys.path or Django.
from benchmarks._run_floor.inside import enqueue_main, floor_task, sql_main  # noqa: E402

__all__ = ["enqueue_main", "floor_task", "main", "sql_main"]


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(BASE_DIR / "benchmarks"))
    import _support
    from _run_floor.measure import bench_brokers
    from _run_floor.options import parse_args
    from _run_floor.report import report

    args = parse_args(__doc__.split("\n\n")[0], argv)
    args.deadline = time.monotonic() + args.timeout
    # the queue floor counts completions in Redis, whatever the broker
    why_not = _support.redis_flushed(args.redis_port, [args.redis_db], timeout=2)
    if why_not:
        _support.log(f"Redis is needed: {why_not}")
        return 1
    status, results = _support.run_bench(lambda: bench_brokers(args), args.timeout)
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
