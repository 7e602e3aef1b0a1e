"""The command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from _support import (
    add_server_env,
)


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
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
    add_server_env(
        parser, "another setting for both server processes (repeatable), e.g. Q_SAVE_LIMIT=-1"
    )
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    parser.add_argument("--keep-var", action="store_true", help="keep the temporary var dirs")
    args = parser.parse_args(argv)
    if min(args.runs, args.concurrency, args.workers, args.repeat, args.latency_runs) < 1:
        parser.error("--runs, --concurrency, --workers, --repeat, --latency-runs must be >= 1")
    return args
