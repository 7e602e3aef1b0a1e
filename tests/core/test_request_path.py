"""The cost of one API request under daphne, through the real ASGI application: the rate
throttles keep one cache client per process (agentdeck.core.throttling, on the real Redis
cache), and the middleware chain and the view run on one hop to the request's thread
(agentdeck.core.asgi.ASGIHandler)."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from rest_framework.throttling import SimpleRateThrottle

from agentdeck.core import throttling
from config.asgi import application
from tests.support.redis import redis_available, redis_url

REDIS_CACHE = {
    "default": {
        "BACKEND": "agentdeck.core.cache.RedisCache",
        "LOCATION": redis_url(14),
    }
}


pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not redis_available(14), reason=f"no Redis at {redis_url(14)}"),
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
    clients = []
    real_init = redis.Redis.__init__

    def counting_clients(self, *args, **kwargs):
        clients.append(1)
        return real_init(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting_clients)
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
    # for the clear() above. And Django's own client would build a redis.Redis per cache call
    # (12 here); agentdeck.core.cache keeps the one the clear() made.
    assert connects == []
    assert clients == []


def test_an_api_request_crosses_between_loop_and_thread_only_a_few_times(
    settings, user, make_jwt, monkeypatch
):
    """agentdeck's ASGI handler does a request's sync work in one sync_to_async: Django's ran
    each async-capable middleware's process_request/process_response through sync_to_async (15
    crossings for this request), and with the chain kept sync, still hopped for request_started,
    went back to the loop under the chain and hopped again for the view, and once more to close
    the response (5 crossings and a trip back)."""
    from asgiref import sync

    crossings, returns = [], []
    real_call = sync.SyncToAsync.__call__
    real_back = sync.AsyncToSync.__call__

    async def counting(self, *args, **kwargs):
        crossings.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await real_call(self, *args, **kwargs)

    def counting_back(self, *args, **kwargs):
        returns.append(getattr(self.awaitable, "__qualname__", repr(self.awaitable)))
        return real_back(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counting)
    monkeypatch.setattr(sync.AsyncToSync, "__call__", counting_back)
    token = make_jwt(user.pk, email=user.email)
    assert asgi_get("/api/v1/me", token) == 200
    # request_started, the request, the chain and view, closing the response: one hop.
    assert crossings == ["ASGIHandler._respond"]
    assert returns == ["asgi_get.<locals>.main"]  # this test's own way in; none from Django


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


def test_the_redis_rate_limit_is_atomic_and_says_when_to_come_back(settings):
    """RedisCache.rate_limit (GCRA in one Lua call): of 24 simultaneous requests against a limit
    of 7 per minute exactly 7 pass (DRF's read-modify-write of a list let concurrent requests
    through together), and a refused one learns when the next slot opens (60 / 7 s)."""
    from agentdeck.core.cache import RedisCache
    from tests.support.threads import in_threads

    settings.CACHES = REDIS_CACHE
    cache = throttling.shared_cache.get()
    assert isinstance(cache, RedisCache)
    cache.clear()
    outcomes = in_threads(24, lambda i: cache.rate_limit("burst", 7, 60))
    assert len(outcomes) == 24
    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert sum(o is None for o in outcomes) == 7
    waits = [o for o in outcomes if o is not None]
    assert all(0 < w <= 60 / 7 + 0.01 for w in waits), waits
    # Refusals are not counted: the wait does not grow with them.
    assert cache.rate_limit("burst", 7, 60) <= 60 / 7 + 0.01
    # Another key has its own budget.
    assert cache.rate_limit("other", 7, 60) is None
    cache.clear()


def test_a_throttled_api_request_gets_retry_after_from_the_redis_limit(
    settings, user, make_jwt, monkeypatch
):
    settings.CACHES = REDIS_CACHE
    throttling.shared_cache.get().clear()
    monkeypatch.setattr(
        SimpleRateThrottle,
        "THROTTLE_RATES",
        {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "2/hour"},
    )
    token = make_jwt(user.pk, email=user.email)

    async def main() -> list[dict]:
        out = []
        for _ in range(3):
            comm = HttpCommunicator(
                application,
                "GET",
                "/api/v1/me",
                headers=[(b"host", b"localhost"), (b"authorization", f"Bearer {token}".encode())],
            )
            out.append(await comm.get_response(timeout=10))
        return out

    try:
        responses = async_to_sync(main)()
    finally:
        throttling.shared_cache.get().clear()
    assert [r["status"] for r in responses] == [200, 200, 429]
    headers = {k.lower(): v for k, v in responses[2]["headers"]}
    assert headers[b"content-type"].startswith(b"application/problem+json")
    # The next of 2 per hour: 30 minutes after the first.
    assert 1790 <= int(headers[b"retry-after"]) <= 1800


@pytest.fixture
def finished_signals(settings):
    """The request_finished signals sent while the test runs (ROOT_URLCONF: asgi_urls)."""
    from django.core import signals

    settings.ROOT_URLCONF = "tests.core.asgi_urls"
    sent = []

    def receiver(sender, **kwargs):
        sent.append(sender)

    signals.request_finished.connect(receiver)
    yield sent
    signals.request_finished.disconnect(receiver)


async def _get(path: str) -> tuple[int, bytes]:
    comm = HttpCommunicator(application, "GET", path, headers=[(b"host", b"localhost")])
    await comm.send_input({"type": "http.request", "body": b""})
    start = await comm.receive_output(10)
    body = b""
    while True:  # a streamed body may end with a message without "body"
        chunk = await comm.receive_output(10)
        body += chunk.get("body", b"")
        if not chunk.get("more_body"):
            break
    # The handler's end (a streamed response is closed after its last chunk). A communicator
    # that is let go cancels its application.
    await comm.wait(timeout=10)
    return start["status"], body


def test_a_response_is_closed_once_whether_streamed_or_not(finished_signals):
    async def main():
        plain = await _get("/plain")
        after_plain = len(finished_signals)
        streamed = await _get("/streamed")
        return plain, after_plain, streamed

    plain, after_plain, streamed = async_to_sync(main)()
    assert plain == (200, b"ok")
    assert after_plain == 1
    assert streamed == (200, b"abc")
    assert len(finished_signals) == 2


def test_a_client_leaving_mid_view_ends_the_request_and_the_next_one_is_served(
    finished_signals,
):
    from tests.core import asgi_urls

    asgi_urls.release_slow.clear()

    async def main():
        comm = HttpCommunicator(application, "GET", "/slow", headers=[(b"host", b"localhost")])
        await comm.send_input({"type": "http.request", "body": b""})
        await asyncio.sleep(0.1)  # the view is running on the request's thread
        await comm.send_input({"type": "http.disconnect"})
        await asyncio.sleep(0.1)
        asgi_urls.release_slow.set()
        await comm.wait(timeout=10)  # the handler returns without sending a response
        return await _get("/plain")

    assert async_to_sync(main)() == (200, b"ok")
    assert finished_signals  # the abandoned request was finished too


def test_requests_one_after_another_reuse_the_request_thread(finished_signals):
    """A request's sync code runs on a single-thread executor taken from the idle ones, not on
    a thread started for it (asgiref starts one per request, and another to join it)."""

    async def main():
        return [await _get("/thread") for _ in range(3)]

    started = threading.active_count()
    answers = async_to_sync(main)()
    assert all(status == 200 for status, _ in answers)
    assert len({body for _, body in answers}) == 1  # the same thread each time
    assert threading.active_count() <= started + 1  # at most the one the first request made
