"""Failed credentials (bad API keys, forged JWTs) are throttled per client address and per API
key prefix: past the limit, 429 instead of 401.

Decision tested here: the counting throttles failures, not successes. A valid credential from a
throttled address (or for a throttled prefix) still works: the address may be a NAT or proxy
shared with the attacker, a key's prefix is public, and refusing valid credentials would let
anyone lock others out, while 238-bit keys and signed JWTs leave nothing to guess anyway. It
also keeps a valid credential's request free of any extra cache round trip."""

from __future__ import annotations

import json
import uuid

import pytest
from asgiref.sync import async_to_sync
from django.test import override_settings
from rest_framework.test import APIClient

from agentdeck.accounts.services import api_key_create
from agentdeck.core import throttling
from agentdeck.core.cache import RedisCache, rate_limit
from tests.support.redis import redis_available, redis_url
from tests.support.threads import in_threads

pytestmark = pytest.mark.django_db

ME = "/api/v1/me"
BAD_KEY = "adk_" + "x" * 40


@pytest.fixture(autouse=True)
def _rates(settings):
    settings.AUTH_FAILURE_RATE = "5/min"
    settings.AUTH_FAILURE_KEY_RATE = "1000/min"


def me(token: str, address: str = "198.51.100.7", **extra):
    return APIClient().get(ME, HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=address, **extra)


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60


@pytest.mark.parametrize("bad", [BAD_KEY, "adk_short", "eyJhbGciOiJIUzI1NiJ9.e30.forged"])
def test_bad_credentials_from_one_address_are_throttled_with_retry_after(bad):
    statuses = [me(bad).status_code for _ in range(5)]
    assert statuses == [401] * 5
    assert_throttled(me(bad))


def test_forged_jwts_and_bad_keys_share_the_address_budget(make_jwt, user):
    forged = make_jwt(user.pk, key="not-the-signing-key-" * 3)
    for token in [forged, BAD_KEY] * 2 + [forged]:
        assert me(token).status_code == 401
    assert_throttled(me(BAD_KEY))


def test_a_valid_credential_from_a_throttled_address_still_works(user, make_jwt):
    for _ in range(6):
        me(BAD_KEY)
    assert_throttled(me(BAD_KEY))
    _, secret = api_key_create(owner=user, name="k")

    assert me(secret).status_code == 200
    assert me(make_jwt(user.pk, email=user.email)).status_code == 200
    assert_throttled(me(BAD_KEY))  # the failures stay throttled


def test_another_address_has_its_own_budget():
    for _ in range(6):
        me(BAD_KEY, "198.51.100.7")
    assert me(BAD_KEY, "198.51.100.8").status_code == 401


def test_guesses_at_one_key_prefix_from_many_addresses_are_throttled(settings, user):
    settings.AUTH_FAILURE_RATE = "1000/min"
    settings.AUTH_FAILURE_KEY_RATE = "3/min"
    api_key, secret = api_key_create(owner=user, name="target")
    guess = api_key.prefix + "y" * 32
    statuses = [me(guess, f"203.0.113.{i}").status_code for i in range(4)]

    assert statuses == [401, 401, 401, 429]
    assert me(secret, "203.0.113.99").status_code == 200  # the owner's key is not locked out
    # Another prefix (its last character changed: "Z", or "Y" when it already ends in "Z").
    other = api_key.prefix[:-1] + ("Y" if api_key.prefix.endswith("Z") else "Z")
    assert me(other + "y" * 32, "203.0.113.50").status_code == 401


def test_x_forwarded_for_cannot_dodge_the_limit_unless_proxies_are_trusted(settings):
    for i in range(5):
        me(BAD_KEY, HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    assert_throttled(me(BAD_KEY, HTTP_X_FORWARDED_FOR="192.0.2.200"))

    settings.TRUST_X_FORWARDED_FOR = True
    # Behind one trusted proxy the client is the entry it appended (the rightmost); what the
    # client wrote to the left of it counts for nothing.
    for i in range(5):
        me(BAD_KEY, HTTP_X_FORWARDED_FOR=f"10.9.9.{i}, 192.0.2.1")
    assert_throttled(me(BAD_KEY, HTTP_X_FORWARDED_FOR="10.9.9.77, 192.0.2.1"))
    assert me(BAD_KEY, HTTP_X_FORWARDED_FOR="192.0.2.2").status_code == 401


def test_ipv6_addresses_of_one_subscriber_share_a_budget():
    for i in range(5):
        me(BAD_KEY, f"2001:db8:1:2::{i + 1:x}")
    assert_throttled(me(BAD_KEY, "2001:db8:1:2:ffff::9"))
    assert me(BAD_KEY, "2001:db8:1:3::1").status_code == 401


def test_a_valid_credential_costs_no_failure_counting(user, monkeypatch):
    counted = []
    real = throttling.rate_limit

    def spy(cache, key, limit, period):
        counted.append(key)
        return real(cache, key, limit, period)

    monkeypatch.setattr(throttling, "rate_limit", spy)
    _, secret = api_key_create(owner=user, name="k")
    assert me(secret).status_code == 200
    assert not [key for key in counted if key.startswith("authfail:")]
    assert me(BAD_KEY).status_code == 401
    assert [key for key in counted if key.startswith("authfail:")] == [
        "authfail:addr:198.51.100.7",
        f"authfail:key:{BAD_KEY[:12]}",
    ]


@pytest.mark.django_db(transaction=True)
def test_websocket_and_sse_failures_count_with_the_same_budget():
    from tests.agents.test_consumers import frames_until_close, sse, ws

    async def websocket(token: str):
        comm = ws("/ws/notifications/", token)
        assert (await comm.connect())[0]
        return await frames_until_close(comm)

    codes = [async_to_sync(websocket)(BAD_KEY)[0][0]["code"] for _ in range(5)]
    assert codes == ["api_key_invalid"] * 5
    frames, close = async_to_sync(websocket)(BAD_KEY)
    assert (frames[0]["code"], close) == ("throttled", 4401)

    # SSE authenticates before it looks the run up: any id will do.
    response = async_to_sync(sse)(f"/api/v1/runs/{uuid.uuid4()}/events/?token={BAD_KEY}")
    assert response["status"] == 429
    headers = dict(response["headers"])
    assert int(headers[b"Retry-After"]) >= 1
    assert json.loads(response["body"])["code"] == "throttled"


def test_the_local_memory_limit_is_atomic_within_the_process():
    cache = throttling.shared_cache.get()
    outcomes = in_threads(24, lambda i: rate_limit(cache, "burst-local", 7, 60))
    assert sum(o is None for o in outcomes) == 7
    assert all(0 < o <= 60 / 7 + 0.01 for o in outcomes if o is not None)


@pytest.mark.skipif(not redis_available(15), reason=f"no Redis at {redis_url(15)}")
def test_on_redis_the_failures_of_every_process_count_together():
    """With Redis, counters are shared: concurrent failures from many threads (standing for
    processes) against a budget of 5 let exactly 5 through as 401."""
    cache_settings = {"default": {"BACKEND": "agentdeck.core.cache.RedisCache",
                                  "LOCATION": redis_url(15)}}  # fmt: skip
    with override_settings(CACHES=cache_settings):
        cache = throttling.shared_cache.get()
        assert isinstance(cache, RedisCache)
        cache.clear()
        try:
            outcomes = in_threads(
                20, lambda i: throttling.count_auth_failure(address="198.51.100.9")
            )
            assert sum(o is None for o in outcomes) == 5
            assert_throttled(me(BAD_KEY, "198.51.100.9"))
            assert me(BAD_KEY, "198.51.100.10").status_code == 401
        finally:
            cache.clear()


def test_a_failure_is_still_a_401_when_the_cache_cannot_count_it(monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(throttling, "rate_limit", down)
    response = me(BAD_KEY)
    assert (response.status_code, response.json()["code"]) == (401, "api_key_invalid")
