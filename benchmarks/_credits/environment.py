"""Django in the benchmark's process, on a fresh embedded PostgreSQL (or ``DATABASE_URL``) and the
chosen channel layer; the count of failed ``credits.updated`` publishes.
"""

from __future__ import annotations

import argparse
import logging
import os

from _support import (
    BenchError,
    redis_answers,
    setup_django,
    temporary_work_dir,
)


class _FailedPublishes(logging.Handler):
    """Counts ``realtime publish to ... failed`` warnings: publishing is best effort, so a failed
    ``credits.updated`` is logged by agentdeck, never raised."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:  # called under the handler's lock
        self.count += 1


FAILED_PUBLISHES = _FailedPublishes()


def start_django(args: argparse.Namespace) -> str:
    """Point the settings at a fresh embedded PostgreSQL (or DATABASE_URL) and the chosen channel
    layer, set Django up and migrate. Returns where the database is."""
    env: dict[str, str | None] = {}
    if not os.environ.get("DATABASE_URL"):
        work_dir = temporary_work_dir("agentdeck-creditsbench-", keep=args.keep_var)
        env["AGENTDECK_VAR_DIR"] = str(work_dir / "var")
        where = f"embedded PostgreSQL in {work_dir}"
    else:
        where = "DATABASE_URL"
    layer = args.channel_layer
    if layer == "auto":
        layer = "redis" if redis_answers(args.redis_port) else "postgres"
    if layer == "redis":
        if not redis_answers(args.redis_port):
            raise BenchError(
                f"--channel-layer redis: nothing answers on 127.0.0.1:{args.redis_port}"
            )
        env["REDIS_URL"] = f"redis://127.0.0.1:{args.redis_port}/{args.redis_db}"
    else:
        env["REDIS_URL"] = None
    env["CHANNEL_LAYER"] = layer
    args.channel_layer = layer
    setup_django(env)
    logging.getLogger("agentdeck.core.realtime").addHandler(FAILED_PUBLISHES)
    return where
