"""The command line."""

from __future__ import annotations

import argparse
from pathlib import Path


def config_pair(text: str) -> tuple[int, int]:
    size, sep, overlap = text.partition("/")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected SIZE/OVERLAP, not {text!r}")
    return int(size), int(overlap)


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--mb", type=float, default=1.0, help="corpus size in megabytes")
    parser.add_argument("--reps", type=int, default=3, help="repetitions; medians reported")
    parser.add_argument(
        "--configs",
        nargs="+",
        type=config_pair,
        default=[(800, 400), (256, 128), (248, 124)],
        metavar="SIZE/OVERLAP",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--batch-size", type=int, default=0, help="EMBEDDING_BATCH_SIZE (default: the setting's)"
    )
    parser.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    parser.add_argument(
        "--no-breakdown", dest="breakdown", action="store_false", help="no timers in the pipeline"
    )
    parser.add_argument("--no-redis", action="store_true", help="PostgreSQL channel layer")
    parser.add_argument("--keep-var", action="store_true", help="keep the var directory")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.mb <= 0:
        parser.error("--reps must be >= 1 and --mb > 0")
    return args
