"""The command line."""

from __future__ import annotations

import argparse
from pathlib import Path


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
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
