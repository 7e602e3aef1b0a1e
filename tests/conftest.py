from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.core.signals import setting_changed
from rest_framework.test import APIClient

from agentdeck.accounts import authentication
from tests.factories import StaffFactory, UserFactory

# Fails the session if any process a test started is still running at its end.
pytest_plugins = ["tests.support.leftovers"]


def _reset_token_backend(**kwargs: Any) -> None:
    authentication.token_backend.cache_clear()


setting_changed.connect(_reset_token_backend)


@pytest.fixture(autouse=True)
def _fresh_local_cache():
    """Each test starts with an empty local-memory cache: the failed-credential counters
    (agentdeck.core.throttling.count_auth_failure) and the API throttles count per client
    address, and every test client is 127.0.0.1."""
    from django.core.cache.backends.locmem import LocMemCache

    from agentdeck.core import throttling

    cache = throttling.shared_cache.get()
    if isinstance(cache, LocMemCache):
        cache.clear()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


@pytest.fixture
def staff_user(db):
    return StaffFactory()


@pytest.fixture
def make_jwt() -> Callable[..., str]:
    """Sign a token the way the Next.js server does (jose's SignJWT with HS256): only standard
    claims plus email/name, no token_type or jti."""

    def make(
        sub: str | None = "user-1",
        *,
        key: Any = None,
        algorithm: str = "HS256",
        ttl: int = 300,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {"iat": now, "exp": now + ttl}
        if sub is not None:
            payload["sub"] = sub
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(
            payload, key or settings.JWT_SIGNING_KEY, algorithm=algorithm, headers=headers
        )

    return make


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def client_for(make_jwt) -> Callable[[Any], APIClient]:
    def make(user) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_jwt(user.pk, email=user.email)}")
        return client

    return make


@pytest.fixture
def user_client(user, client_for) -> APIClient:
    return client_for(user)


@pytest.fixture
def redis_server():
    """A private ``redis-server`` on a free port, for tests that stop and start it; killed at
    the end (tests/support/outages.py)."""
    from tests.support.outages import RedisServer

    server = RedisServer().start()
    yield server
    server.stop()
