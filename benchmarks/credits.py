"""Credit settlement throughput: agentdeck's hold + settle against bare conditional UPDATEs.

The issue: settlements per second (hold, then capture) from 16 concurrent workers, against a
baseline of bare single-row conditional UPDATEs measured in the same invocation; print both, the
ratio and the reconciliation result. Targets: at least 40% of the baseline, zero discrepancies.

* **agentdeck**: one settlement is what a run does to credits in production, as two
  transactions, each on its own as the run engine has them: ``credits_hold(user_id, run_id,
  plan)`` in a ``transaction.atomic()`` (run start; in production the same transaction inserts
  the run), then ``credits_settle(run_id, usage)`` in another (run end; in production it also
  writes the final status). The usage costs less than the hold, so every settle captures *and*
  releases (the common case). Per settlement that is 2 statements, one per transaction (since
  issue #6; 11 before): the hold is one data-modifying CTE (the conditional UPDATE of
  ``user_credits``, the ``credit_holds`` INSERT, the ledger INSERT), the settlement another (the
  hold UPDATE ``WHERE status = 'open'``, one UPDATE of ``user_credits``, the capture and release
  ledger INSERT). After each COMMIT ``credits.updated`` is published to the user's group on the channel layer
  (``--channel-layer``; ``auto`` is Redis, as in production, when it answers). The hold plan is
  computed once with ``run_hold_plan`` from a ``ModelPrice`` (production computes it before the
  transaction too).
* **baseline**: the same number of settlements as bare single-row conditional UPDATEs on the
  same ``user_credits`` rows, through the same Django connection (psycopg 3), each statement its
  own (autocommit) transaction, so it pays a durable COMMIT per transaction like the service:
  ``UPDATE user_credits SET reserved = reserved + h WHERE user_id = u AND balance - reserved >=
  h`` (the hold), then ``UPDATE user_credits SET balance = balance - c, reserved = reserved - h
  WHERE user_id = u AND reserved >= h`` (capture c and release the rest in one statement).
  No ledger, no hold row, no notification: the floor of any implementation that keeps the
  balance in one row under the same row-lock discipline. Its effect on every balance is checked
  exactly and then written to the ledger as one ``adjustment`` row per user (outside the timed
  section), so that reconciliation still covers every row.
* ``--breakdown`` adds three diagnostic sides under the same load: **no_publish** (agentdeck with
  ``credits.updated`` not published: the ledger's ``notify_user_on_commit`` replaced by a
  no-op in the worker processes),
  **own_statements** (agentdeck without the two ``transaction.atomic()`` blocks the run engine
  puts around them: each service's one statement is its own autocommit transaction, like the
  baseline's, so the run's BEGIN and COMMIT round trips and the lock held until that COMMIT
  are not counted: what the credit statements themselves cost) and **service_sql** (the 11 statements the services sent before issue #6, same columns, same
  ``RETURNING``s and the same two ``transaction.atomic()`` blocks, as hand-written SQL on a
  cursor: what that design cost without the ORM; kept as a reference point).

All sides run the same workers (``--workers``, default 16) the same way: ``--mode process``
(default; forked after Django is set up, like qcluster workers; a forked worker starts with no
channel layer, like a fresh process) or ``--mode thread``, each worker with its own database
connection (closed at its end), warmed up with ``--worker-warmup`` untimed settlements of its
side (5; a qcluster worker is long-lived: its publishing thread, channel-layer connection and
the server process's table caches are made once, not per run), all released together by a
barrier; settlements/s = N / (first
worker's start -> last worker's end). Two configurations: ``spread`` (one user per worker: no two
workers touch the same row) and ``contended`` (every worker settles for the same user, so each
``user_credits`` UPDATE waits for the row lock the other transactions hold until they commit).
Each measurement is repeated ``--repeat`` times, alternating the order of the sides, and the
medians are reported. Beside the rate, CPU time per settlement is reported (it is what bounds
throughput on a small machine, and it is much less disturbed by other load than wall time): the
workers' own (``time.process_time`` per process; per thread in thread mode, which misses the
threads ``async_to_sync`` starts) and the local PostgreSQL server's, all its processes, from
``/proc`` (not available for a remote ``DATABASE_URL``). ``credits.updated`` publishes that
fail (agentdeck logs them and goes on: delivery is best effort) are counted and shown.

The users, provider, agent and every ``AgentRun`` row a hold needs (``credit_holds.run_id`` is
a one-to-one key to ``agent_runs``) are created before anything is timed. After each
measurement every hold must be ``settled`` with exactly the expected capture, 3 ledger rows per
settlement, every balance moved by exactly the settlements' cost with nothing left reserved; at
the end ``credits_reconcile()`` (balance = sum of the ledger, reserved = ledger = open holds)
must find nothing, no account may have ``reserved != 0`` and no hold may be open.

Without ``DATABASE_URL`` the script starts the embedded PostgreSQL in a fresh temporary
``AGENTDECK_VAR_DIR`` (removed at exit, also on error and Ctrl-C); with it, it migrates and
writes into that database (users named ``credits-bench-*``). Exit status: 0 when every target is
met, 2 when one is missed, 1 when the benchmark itself failed.

    .venv/bin/python benchmarks/credits.py --settlements 4000 --workers 16 --repeat 3
    .venv/bin/python benchmarks/credits.py --settlements 800 --repeat 1 --breakdown
"""

from __future__ import annotations

import atexit
import json
import os
import platform
import statistics
import sys
import threading
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from _credits.environment import start_django  # noqa: E402
from _credits.fixture import create_fixture  # noqa: E402
from _credits.measure import measure, reconcile  # noqa: E402
from _credits.options import parse_args  # noqa: E402
from _credits.report import report  # noqa: E402
from _credits.workers import Sample  # noqa: E402
from _support import log, log_as, run_sync, wait_for_quiet  # noqa: E402 (the scripts' own directory)

log_as("credits")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.split("\n\n")[0], argv)
    started = datetime.now(UTC)
    loadavg = os.getloadavg()
    samples: dict[str, dict[str, list[Sample]]] = {}

    def measure_all() -> dict[str, Any]:
        where = start_django(args)
        log(f"database: {where}; channel layer: {args.channel_layer}; {args.mode} workers")
        fixture = create_fixture(args)
        for config in args.configs:
            samples[config] = {side: [] for side in args.sides}
            for rep in range(args.repeat):
                order = args.sides if rep % 2 == 0 else args.sides[::-1]
                for side in order:
                    if args.quiet_wait:
                        wait_for_quiet(args.quiet_wait)
                    sample = measure(args, fixture, config, rep, side)
                    samples[config][side].append(sample)
                    log(
                        f"{config} rep {rep + 1} {side}: {sample.rate:.0f} settlements/s "
                        f"(CPU per settlement: worker {sample.client_ms:.2f} ms, "
                        f"PostgreSQL {sample.server_ms or 0:.2f} ms)"
                    )
        return reconcile()

    status, rec = run_sync(measure_all)
    if status:
        return status
    print()
    print(
        f"credits, {started:%Y-%m-%d %H:%M} UTC, nproc {os.cpu_count()}, "
        f"Python {platform.python_version()}, load average at start "
        f"{' '.join(f'{x:.2f}' for x in loadavg)}"
    )
    ok = report(args, samples, rec)
    if args.json:
        payload = {
            "date": started.isoformat(),
            "nproc": os.cpu_count(),
            "argv": sys.argv,
            "channel_layer": args.channel_layer,
            "mode": args.mode,
            "settlements": args.settlements,
            "workers": args.workers,
            "samples": {
                config: {side: [asdict(s) for s in v] for side, v in by_side.items()}
                for config, by_side in samples.items()
            },
            "ratio_of_medians": {
                config: {
                    side: statistics.median(s.rate for s in v)
                    / statistics.median(s.rate for s in by_side["baseline"])
                    for side, v in by_side.items()
                }
                for config, by_side in samples.items()
            },
            "reconciliation": rec,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if ok else 2


def exit_now_if_stuck(code: int) -> None:
    """Thread mode after a timeout: a worker stuck in a publish would block the interpreter's
    exit (it joins ``async_to_sync``'s executor threads, daemon or not, before atexit runs),
    leaving the embedded server running. Run the atexit handlers (stop the server, remove its
    directory) and leave."""
    stuck = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread()
        and t.is_alive()
        # The realtime publisher's thread lives as long as the process, by design.
        and t.name != "agentdeck-realtime-publisher"
    ]
    if stuck:
        log(f"{len(stuck)} threads still running (stuck publishes?); leaving them")
        sys.stdout.flush()
        sys.stderr.flush()
        atexit._run_exitfuncs()
        os._exit(code)


if __name__ == "__main__":
    exit_code = main()
    exit_now_if_stuck(exit_code)
    sys.exit(exit_code)
