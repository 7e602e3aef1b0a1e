"""DRF's rate throttles on one cache client per process.

DRF's throttles use ``django.core.cache.cache``, and Django keeps cache instances per async
context: under ASGI every request built a new ``RedisCache``, and with it a new Redis connection
pool and two new connections per request (benchmarks/RESULTS.md, ``run_overhead.py``: 1.75 ms
against 0.27 ms on a reused client). These throttles share one instance per process instead;
redis-py's pool and Django's local-memory cache are both thread-safe.

On the Redis cache they count with ``RedisCache.rate_limit`` (GCRA in one atomic round trip;
agentdeck.core.cache) instead of DRF's list of request times; on the local-memory cache (one
process, no Redis) with DRF's own code.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from rest_framework import throttling

from agentdeck.core.cache import RedisCache
from agentdeck.core.per_process import PerProcess

shared_cache = PerProcess(lambda: caches.create_connection(DEFAULT_CACHE_ALIAS), setting="CACHES")


class _SharedCache:
    """Stands where DRF reads ``self.cache``: every call goes to the process's client."""

    def __getattr__(self, name: str) -> Any:
        return getattr(shared_cache.get(), name)


class _SharedRate:
    """A ``SimpleRateThrottle`` counting on the process's shared cache."""

    cache = _SharedCache()
    _wait: float | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        backend = shared_cache.get()
        if self.rate is None or not isinstance(backend, RedisCache):
            return super().allow_request(request, view)  # type: ignore[misc]
        key = self.get_cache_key(request, view)  # type: ignore[attr-defined]
        if key is None:
            return True
        self._wait = backend.rate_limit(key, self.num_requests, self.duration)  # type: ignore[attr-defined]
        return self._wait is None

    def wait(self) -> float | None:
        if self._wait is not None:
            return self._wait
        return super().wait()  # type: ignore[misc]


class AnonRateThrottle(_SharedRate, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(_SharedRate, throttling.UserRateThrottle):
    pass
