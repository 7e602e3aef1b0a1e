"""The command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import (
    BREAKDOWN,
    CONFIGS,
    SIDES,
)


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--settlements", type=int, default=1000, help="per measurement and side (default 1000)"
    )
    parser.add_argument("--workers", type=int, default=16, help="concurrent workers (default 16)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians reported")
    parser.add_argument(
        "--config",
        choices=[*CONFIGS, "both"],
        default="both",
        help="spread: a user per worker; contended: every worker on one user (default both)",
    )
    parser.add_argument("--mode", choices=["process", "thread"], default="process")
    parser.add_argument(
        "--channel-layer",
        choices=["auto", "redis", "postgres", "memory"],
        default="auto",
        help="where credits.updated is published; auto: redis when it answers, else postgres",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also measure the no_publish, own_statements and service_sql sides",
    )
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--redis-db", type=int, default=12, help="only published to, never flushed")
    parser.add_argument(
        "--warmup", type=int, default=20, help="settlements in the parent before any fork"
    )
    parser.add_argument(
        "--worker-warmup",
        type=int,
        default=5,
        help="untimed settlements each worker makes before the barrier (0: none, as before)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0,
        help="wait up to S seconds before each measurement for the CPU to be < 25%% busy",
    )
    parser.add_argument("--timeout", type=float, default=300, help="per measurement, seconds")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    parser.add_argument("--keep-var", action="store_true", help="keep the temporary var dir")
    args = parser.parse_args(argv)
    args.configs = list(CONFIGS) if args.config == "both" else [args.config]
    args.sides = [*SIDES, *BREAKDOWN] if args.breakdown else list(SIDES)
    if args.settlements < args.workers or args.workers < 1 or args.repeat < 1:
        parser.error("need --settlements >= --workers >= 1 and --repeat >= 1")
    return args
