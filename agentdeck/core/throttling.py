"""DRF's rate throttles on one cache client per process.

DRF's throttles use ``django.core.cache.cache``, and Django keeps cache instances per async
context: under ASGI every request built a new ``RedisCache``, and with it a new Redis connection
pool and two new connections per request (benchmarks/RESULTS.md, ``run_overhead.py``: 1.75 ms
against 0.27 ms on a reused client). These throttles share one instance per process instead;
redis-py's pool and Django's local-memory cache are both thread-safe.

They count with ``agentdeck.core.cache.rate_limit`` (GCRA: on Redis one atomic round trip shared
by every process; on the local-memory cache, one process, under a lock) instead of DRF's list of
request times, which costs two round trips and lets concurrent requests take the same slot.

Also here: the client address every limit counts by (:func:`request_client_address`, one rule
for the API throttles, failed-credential counting and the admin's lockout), and the counting of
failed credentials (:func:`count_auth_failure`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from rest_framework import throttling

from agentdeck.core.cache import rate_limit
from agentdeck.core.per_process import PerProcess
from agentdeck.core.rates import parse_rate
from agentdeck.core.reconnect import Outage, is_connection_error

shared_cache = PerProcess(lambda: caches.create_connection(DEFAULT_CACHE_ALIAS), setting="CACHES")

# The rate-limit cache (Redis in the production shape) going away must not take the API with
# it: while it does not answer, limits are not enforced (fail open), logged once per outage.
_cache_outage = Outage("rate-limit cache (limits not enforced meanwhile)")


def counted(key: str, limit: int, period: float) -> float | None:
    """:func:`agentdeck.core.cache.rate_limit` on the process's shared cache, failing open: None
    (allowed) when the cache cannot be reached, so a Redis restart costs no request a 500."""
    try:
        wait = rate_limit(shared_cache.get(), key, limit, period)
    except Exception as exc:
        if not is_connection_error(exc):
            raise
        _cache_outage.failed(exc)
        return None
    _cache_outage.recovered()
    return wait


class _SharedRate:
    """A ``SimpleRateThrottle`` counting with :func:`counted` (DRF's ``self.cache``, read only by
    the ``allow_request`` and ``wait`` replaced here, is never used)."""

    _wait: float | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:  # type: ignore[attr-defined]
            return True
        key = self.get_cache_key(request, view)  # type: ignore[attr-defined]
        if key is None:
            return True
        self._wait = counted(key, self.num_requests, self.duration)  # type: ignore[attr-defined]
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait

    def get_ident(self, request: Any) -> str:
        # One rule for the client's address (TRUST_X_FORWARDED_FOR), not DRF's NUM_PROXIES,
        # which by default trusts whatever X-Forwarded-For a client sends.
        return address_bucket(request_client_address(request))


class AnonRateThrottle(_SharedRate, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(_SharedRate, throttling.UserRateThrottle):
    pass


# --- the client's address --------------------------------------------------------------------


def client_address(remote_addr: str | None, forwarded_for: str | None) -> str:
    """The address a request came from. ``REMOTE_ADDR`` (the peer) unless
    ``TRUST_X_FORWARDED_FOR`` says reverse proxies stand in front: then the address
    ``TRUSTED_PROXY_COUNT`` entries from the right of ``X-Forwarded-For``, the one the outermost
    trusted proxy saw. Entries further left are whatever the client wrote, so trusting them
    would let anyone pick the address every limit counts against."""
    if settings.TRUST_X_FORWARDED_FOR and forwarded_for:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if hops:
            hop: str = hops[-min(settings.TRUSTED_PROXY_COUNT, len(hops))]
            return hop
    return remote_addr or "unknown"


def request_client_address(request: Any) -> str:
    """:func:`client_address` of a Django (or DRF) request."""
    meta = request.META
    return client_address(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"))


def request_client_ip(request: Any) -> str | None:
    """The client's address when it is an IP address, else None: django-axes'
    AXES_CLIENT_IP_CALLABLE (it stores the address in an IP column)."""
    address = request_client_address(request)
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def scope_client_address(scope: Mapping[str, Any]) -> str:
    """:func:`client_address` of an ASGI scope (a WebSocket handshake)."""
    client = scope.get("client") or (None,)
    forwarded = [
        value.decode("latin-1")
        for name, value in scope.get("headers") or []
        if name.lower() == b"x-forwarded-for"
    ]
    return client_address(client[0], ",".join(forwarded) or None)


def address_bucket(address: str) -> str:
    """What a per-address limit counts under: the address, or for IPv6 its /64 (one subscriber
    usually holds a whole /64, so counting single addresses would give an attacker 2**64 fresh
    budgets)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


# --- failed credentials ------------------------------------------------------------------------


def count_auth_failure(*, address: str, credential_prefix: str | None = None) -> float | None:
    """Count one failed credential against the client's address (``AUTH_FAILURE_RATE``) and,
    for an API key, its prefix (``AUTH_FAILURE_KEY_RATE``: a key's prefix is shown in lists and
    logs, so many addresses may aim at one). Returns None while both are within their limits,
    else the seconds until another failure would be: the caller answers 429 instead of 401.

    Only failures are counted: a valid credential costs no cache round trip (the API's hot path)
    and is never refused because others failed from the same address (a NAT, a proxy) or
    against the same prefix; the keys' 238 bits and the JWTs' signatures make guessing hopeless
    anyway, so what this limits is the cost and noise of bad credentials, not their odds.
    """
    limits = [(f"authfail:addr:{address_bucket(address)}", settings.AUTH_FAILURE_RATE)]
    if credential_prefix:
        limits.append((f"authfail:key:{credential_prefix}", settings.AUTH_FAILURE_KEY_RATE))
    waits = []
    for key, rate in limits:
        limit, period = parse_rate(rate)
        wait = counted(key, limit, period)
        if wait is not None:
            waits.append(wait)
    return max(waits) if waits else None
