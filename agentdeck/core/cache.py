"""Django's Redis cache with one ``redis.Redis`` client per connection pool, and a rate limit
in one round trip.

Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` around the (shared) pool on
every cache call, and redis-py's constructor is not cheap: it fills a case-insensitive dict of
~170 response callbacks each time (~0.2 ms here, two per throttled API request: the throttle's
get and set; benchmarks/RESULTS.md, ``vector_search.py``). A ``redis.Redis`` is safe to share
between threads (each command borrows a connection from the pool), so one per pool is kept.

``rate_limit`` is what the API's throttles (agentdeck.core.throttling) use on Redis: GCRA (the
generic cell rate algorithm) in a Lua script, so that a request costs one round trip and a few
bytes, and concurrent requests cannot both take the last slot. DRF's own throttles keep a list
of every request's time in the window, read it and write it back on each request: two round
trips, a pickle that grows with the rate (at 1,200/min a list of up to 1,200 floats), and two
processes reading the same list both allowed.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from django.core.cache.backends import redis as django_redis

# GCRA: the key holds the "theoretical arrival time" (TAT, microseconds on the Redis server's
# clock) of the next request if requests came evenly every `interval` = period / limit. A
# request is allowed unless that would put the TAT more than one period ahead of now, so up to
# `limit` requests may come at once and then one per interval: the same "N per period" as a
# sliding window. Returns -1 when allowed, else the microseconds until a request would be.
_GCRA_LUA = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_at = new_tat - period
if allowed_at > now then
    return math.ceil(allowed_at - now)
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',
           math.ceil((new_tat - now) / 1000) + 1)
return -1
"""


class _RedisCacheClient(django_redis.RedisCacheClient):
    # Django's private members used below, which django-stubs leaves out.
    _client: Callable[..., Any]
    _get_connection_pool_index: Callable[[bool], int]
    _get_connection_pool: Callable[[bool], Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}
        self._gcra: Any = None

    def rate_limit(self, key: str, limit: int, period: float) -> float | None:
        client = self.get_client(write=True)
        script = self._gcra
        if script is None or script.registered_client is not client:
            script = self._gcra = client.register_script(_GCRA_LUA)
        wait = int(script(keys=[key], args=[period * 1e6 / limit, period * 1e6]))
        return None if wait < 0 else wait / 1e6

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            # A race here makes two clients around the same pool; either is fine.
            client = self._clients[index] = self._client(
                connection_pool=self._get_connection_pool(write)
            )
        return client


class RedisCache(django_redis.RedisCache):
    """``django.core.cache.backends.redis.RedisCache`` with the client kept (see above)."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _RedisCacheClient

    def rate_limit(self, key: str, limit: int, period: float) -> float | None:
        """Count a request against ``limit`` per ``period`` seconds under ``key``: None when it
        is allowed, else the seconds until one would be (the request is not counted)."""
        client = cast(_RedisCacheClient, self._cache)
        return client.rate_limit(self.make_and_validate_key(key), limit, period)


# Serialises the read-then-write of rate_limit() on caches that live inside this process (the
# local-memory cache: one process, no Redis), where one lock is all atomicity needs.
_local_limit_lock = threading.Lock()


def rate_limit(cache: Any, key: str, limit: int, period: float) -> float | None:
    """Count one event under ``key`` against ``limit`` per ``period`` seconds, on any cache:
    None when it is allowed, else the seconds until one would be (a refused event is not
    counted). The same GCRA as the Lua script above: on Redis one atomic round trip shared by
    every process; on another cache under a process lock, with the cache's clock being this
    process's."""
    if isinstance(cache, RedisCache):
        return cache.rate_limit(key, limit, period)
    interval = period / limit
    with _local_limit_lock:
        now = time.time()
        tat = max(float(cache.get(key) or now), now)
        new_tat = tat + interval
        if new_tat - period > now:
            return new_tat - period - now
        cache.set(key, new_tat, timeout=math.ceil(new_tat - now) + 1)
    return None
