"""DRF's rate throttles on one cache client per process.

DRF's throttles use ``django.core.cache.cache``, and Django keeps cache instances per async
context: under ASGI every request built a new ``RedisCache``, and with it a new Redis connection
pool and two new connections per request (benchmarks/RESULTS.md, ``run_overhead.py``: 1.75 ms
against 0.27 ms on a reused client). These throttles share one instance per process instead;
redis-py's pool and Django's local-memory cache are both thread-safe.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from rest_framework import throttling

from agentdeck.core.per_process import PerProcess

shared_cache = PerProcess(lambda: caches.create_connection(DEFAULT_CACHE_ALIAS), setting="CACHES")


class _SharedCache:
    """Stands where DRF reads ``self.cache``: every call goes to the process's client."""

    def __getattr__(self, name: str) -> Any:
        return getattr(shared_cache.get(), name)


class AnonRateThrottle(throttling.AnonRateThrottle):
    cache = _SharedCache()


class UserRateThrottle(throttling.UserRateThrottle):
    cache = _SharedCache()
