"""The API's rate limits when their cache (Redis in the production shape) does not answer."""

from __future__ import annotations

import logging
import socket

import pytest

from agentdeck.core import throttling

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_requests_are_served_not_500_while_the_limit_cache_is_down(
    settings, user_client, api_client, caplog
):
    settings.CACHES = {
        "default": {
            "BACKEND": "agentdeck.core.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
        }
    }
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "1000/min", "user": "1000/min"},
    }
    with caplog.at_level(logging.WARNING, logger="agentdeck.core.reconnect"):
        for _ in range(3):
            assert user_client.get("/api/v1/me").status_code == 200
        bad = api_client.get("/api/v1/me", HTTP_AUTHORIZATION="Bearer adk_nonsense")
        assert (bad.status_code, bad.json()["code"]) == (401, "api_key_invalid")
    # Said once for the outage, not once per request.
    lost = [r for r in caplog.records if "rate-limit cache" in r.getMessage()]
    assert len(lost) == 1, [r.getMessage() for r in lost]
    throttling._cache_outage.recovered()
