"""The command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from _support import (
    add_server_env,
)

from .config import (
    SCENARIOS,
)


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument(
        "--runs", type=int, help="N runs of the latency and cpu scenarios (default 500 and 300)"
    )
    parser.add_argument(
        "--latency",
        type=float,
        help="seconds per model call in every scenario (default: latency 1.0, the others 0)",
    )
    parser.add_argument("--creates", type=int, default=50, help="concurrent POSTs (create)")
    parser.add_argument("--start-runs", type=int, default=20, help="sequential runs (start)")
    parser.add_argument("--engine", choices=["runs_worker", "qcluster"], default="runs_worker")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="runs_worker: K run worker processes; qcluster: Q_WORKERS (default 1)",
    )
    parser.add_argument(
        "--redis", action="store_true", help="the Redis settings (a private redis-server)"
    )
    parser.add_argument("--database-url", default="", help="default: the embedded PostgreSQL")
    parser.add_argument("--repeat", type=int, default=1, help="R repetitions; medians reported")
    parser.add_argument(
        "--submitters",
        type=int,
        default=0,
        help="POSTs in progress at once in the latency and cpu bursts (default 0: all N)",
    )
    parser.add_argument("--warmup", type=int, default=10, help="uncounted agentdeck runs first")
    parser.add_argument("--raw-warmup", type=int, default=5, help="uncounted raw runs first")
    parser.add_argument("--poll", type=float, default=0.5, help="completion poll interval, s")
    add_server_env(
        parser, "another setting for every server process (repeatable), e.g. RUN_CONCURRENCY=500"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0,
        help="before each measurement wait up to this many seconds for the machine's CPU to be "
        "under 25%% busy (shared machines); 0: do not wait",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="global limit, s")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    parser.add_argument("--keep-var", action="store_true", help="keep the temporary var dir")
    args = parser.parse_args(argv)
    if min(args.workers, args.repeat, args.creates, args.start_runs) < 1 or (args.runs or 1) < 1:
        parser.error("--runs, --creates, --start-runs, --workers and --repeat must be >= 1")
    args.scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    return args
