"""DRF's rate throttles on one cache client per process.

DRF's throttles use ``django.core.cache.cache``, and Django keeps cache instances per async
context: under ASGI every request built a new ``RedisCache``, and with it a new Redis connection
pool and two new connections per request (benchmarks/RESULTS.md, ``run_overhead.py``: 1.75 ms
against 0.27 ms on a reused client). These throttles share one instance per process instead;
redis-py's pool and Django's local-memory cache are both thread-safe.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.signals import setting_changed
from rest_framework import throttling

_lock = threading.Lock()
_cache: Any = None
_pid: int | None = None


def shared_cache() -> Any:
    """The process's cache client for throttling (a new one after a fork or a settings change)."""
    global _cache, _pid
    cache, pid = _cache, os.getpid()
    if cache is not None and _pid == pid:
        return cache
    with _lock:
        if _cache is None or _pid != pid:
            _cache, _pid = caches.create_connection(DEFAULT_CACHE_ALIAS), pid
        return _cache


def _forget(*, setting: str, **kwargs: Any) -> None:
    global _cache
    if setting == "CACHES":
        _cache = None


setting_changed.connect(_forget)


class _SharedCache:
    """Stands where DRF reads ``self.cache``: every call goes to :func:`shared_cache`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(shared_cache(), name)


class AnonRateThrottle(throttling.AnonRateThrottle):
    cache = _SharedCache()


class UserRateThrottle(throttling.UserRateThrottle):
    cache = _SharedCache()
