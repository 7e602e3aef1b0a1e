"""The Redis server the tests use: 127.0.0.1:6379 (the one this machine runs), or another one
named by ``TEST_REDIS_URL`` (e.g. a private ``redis-server --port 6390`` so two checkouts can run
their Redis tests at the same time without flushing each other's databases)."""

from __future__ import annotations

import os

TEST_REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")


def redis_url(db: int) -> str:
    """The URL of database ``db`` on the tests' Redis server."""
    return f"{TEST_REDIS_BASE}/{db}"


def redis_available(db: int = 0) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(redis_url(db), socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False
