"""The command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from _support import BASE_DIR, add_server_env

from .config import PATHS


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks in all")
    parser.add_argument("--indices", type=int, default=100, help="vector indices (one user)")
    parser.add_argument("--files-per-index", type=int, default=10)
    parser.add_argument("--chunk-words", type=int, default=600, help="words per chunk text")
    parser.add_argument("--queries", type=int, default=200, help="Q queries per path")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="measurements per path (a server start each); verdicts on the medians",
    )
    parser.add_argument(
        "--off-topic", type=float, default=0.2, help="fraction of off-topic queries"
    )
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=20, help="uncounted queries per path")
    parser.add_argument(
        "--paths", nargs="+", choices=list(PATHS), default=["default", "hnsw", "hnsw-forced"]
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--sweep-ef",
        type=lambda t: [int(x) for x in t.split(",") if x],
        default=[40, 100, 200, 400, 800],
        help="ef_search values for the forced-HNSW diagnostic (raw SQL); empty: skip it",
    )
    parser.add_argument(
        "--unfiltered-queries",
        type=int,
        default=50,
        help="queries for the graph's recall without any filter (exact scan of the whole table)",
    )
    parser.add_argument(
        "--ef-search", type=int, default=100, help="the server's VECTOR_SEARCH_EF_SEARCH"
    )
    parser.add_argument(
        "--var-dir",
        type=Path,
        default=BASE_DIR / "var" / "bench-vector-search",
        help="the embedded PostgreSQL's home (kept between runs; the data set is reused)",
    )
    parser.add_argument("--fresh", action="store_true", help="rebuild the data set")
    parser.add_argument("--drop", action="store_true", help="remove --var-dir at the end")
    parser.add_argument("--no-redis", action="store_true", help="no REDIS_URL for the server")
    add_server_env(
        parser, "another setting for the server (repeatable), e.g. DATABASE_CONN_MAX_AGE=60"
    )
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    args = parser.parse_args(argv)
    if args.indices < 1 or args.chunks < args.indices * args.files_per_index:
        parser.error("need at least one chunk per file")
    args.var_dir = args.var_dir.resolve()
    # The server's ef_search must be the one the raw SQL uses.
    args.server_env.append(("VECTOR_SEARCH_EF_SEARCH", str(args.ef_search)))
    return args
