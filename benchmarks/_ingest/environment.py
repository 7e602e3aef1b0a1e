"""Django in the benchmark's process: the embedded PostgreSQL (or ``DATABASE_URL``), the local
embedder, the channel layer; nothing queued (the benchmark calls ``file_process`` itself).
"""

from __future__ import annotations

import argparse
import os

from _support import (
    BASE_DIR,
    redis_answers,
    setup_django,
    temporary_work_dir,
)

from .config import REDIS_DB


def start_django(args: argparse.Namespace) -> str:
    work_dir = temporary_work_dir("bench-ingest-", args.keep_var, BASE_DIR / "var")
    where = (
        "DATABASE_URL" if os.environ.get("DATABASE_URL") else f"embedded PostgreSQL in {work_dir}"
    )
    env: dict[str, str | None] = {
        "AGENTDECK_VAR_DIR": str(work_dir),  # media (the uploads) too
        "EMBEDDER_DEFAULT": "local",
    }
    if args.batch_size:
        env["EMBEDDING_BATCH_SIZE"] = str(args.batch_size)
    if redis_answers() and not args.no_redis:
        env["REDIS_URL"] = f"redis://127.0.0.1:6379/{REDIS_DB}"
        env["CHANNEL_LAYER"] = "redis"
        args.channel_layer = "redis"
    else:
        env["REDIS_URL"] = None
        env["CHANNEL_LAYER"] = "postgres"
        args.channel_layer = "postgres"
    setup_django(env)
    # The benchmark calls file_process itself (as the worker's task does); nothing is queued.
    import agentdeck.files.services.dispatch as dispatch

    dispatch.file_processing_enqueue = lambda file_id: None
    return where
