"""The cost of one API request under daphne, through the real ASGI application: the rate
throttles keep one cache client per process (agentdeck.core.throttling, on the real Redis
cache), and the middleware chain runs on one thread (SyncChainMiddleware)."""

from __future__ import annotations

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from rest_framework.throttling import SimpleRateThrottle

from agentdeck.core import throttling
from config.asgi import application

REDIS_CACHE = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/14",
    }
}


def redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_CACHE["default"]["LOCATION"]).ping())
    except redis.RedisError:
        return False


pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not redis_available(), reason="no Redis at 127.0.0.1:6379"),
]


def asgi_get(path: str, token: str) -> int:
    async def main() -> int:
        comm = HttpCommunicator(
            application,
            "GET",
            path,
            headers=[(b"host", b"localhost"), (b"authorization", f"Bearer {token}".encode())],
        )
        response = await comm.get_response(timeout=10)
        return response["status"]

    return async_to_sync(main)()


def test_requests_share_one_redis_connection_and_the_limit_still_holds(
    settings, user, make_jwt, monkeypatch
):
    settings.CACHES = REDIS_CACHE
    throttling.shared_cache.get().clear()
    connects = []
    # Connection._connect opens the socket (connect() is called for every command and returns
    # at once when connected).
    real_connect = redis.connection.Connection._connect

    def counting(self, *args, **kwargs):
        connects.append(1)
        return real_connect(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.Connection, "_connect", counting)
    monkeypatch.setattr(
        SimpleRateThrottle,
        "THROTTLE_RATES",
        {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "5/min"},
    )
    token = make_jwt(user.pk, email=user.email)
    try:
        statuses = [asgi_get("/api/v1/me", token) for _ in range(6)]
    finally:
        throttling.shared_cache.get().clear()
    assert statuses == [200] * 5 + [429]
    # Each ASGI request runs in a context of its own, where django.core.cache.cache would be a
    # new client with a new connection every time (6 here); the shared client connected once,
    # for the clear() above.
    assert connects == []


def test_an_api_request_crosses_between_loop_and_thread_only_a_few_times(
    settings, user, make_jwt, monkeypatch
):
    """SyncChainMiddleware keeps the middleware chain and the view on one thread: without it,
    Django ran each async-capable middleware's process_request/process_response through
    sync_to_async (15 crossings for this request instead of 5)."""
    from asgiref import sync

    crossings = []
    real_call = sync.SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        crossings.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await real_call(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counting)
    token = make_jwt(user.pk, email=user.email)
    assert asgi_get("/api/v1/me", token) == 200
    # request_started's receivers, the chain, and under it Django's async core: the CSRF view
    # check, the view, rendering the response.
    assert len(crossings) <= 5, crossings


def test_tasks_are_enqueued_on_one_broker_per_process(monkeypatch):
    """django-q2's async_task makes a new broker (with Redis: a new connection) per call unless
    given one; the run and file services enqueue through agentdeck.core.queue instead."""
    from django_q import brokers
    from django_q.models import OrmQ

    from agentdeck.core import queue

    made = []
    real = brokers.get_broker

    def counting(*args, **kwargs):
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(brokers, "get_broker", counting)
    queue.broker.reset()
    before = OrmQ.objects.count()
    first = queue.enqueue("math.floor", 1.5)
    second = queue.enqueue("math.floor", 2.5)
    assert first != second
    assert OrmQ.objects.count() == before + 2
    assert made == [1]


def test_the_per_process_client_is_made_again_in_a_forked_child_and_after_a_setting_change(
    settings,
):
    import os

    from agentdeck.core.per_process import PerProcess

    shared = PerProcess(object, setting="CACHES")
    first = shared.get()
    assert shared.get() is first
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    second = shared.get()
    assert second is not first
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a fresh object, then leave at once
        os.write(write, b"1" if shared.get() is not second else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert shared.get() is second
