"""The process's publishing loop (agentdeck.core.realtime): order, flush, back-pressure, fork,
and calls from inside a running event loop. Cross-process delivery through daphne is covered by
tests/e2e/test_realtime.py."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

import pytest
from channels.layers import BaseChannelLayer, get_channel_layer
from django.db import connection
from django.test import override_settings

from agentdeck.core import realtime
from tests.support.redis import redis_available, redis_url

REDIS_URL = redis_url(14)


class RecordingLayer(BaseChannelLayer):
    """A channel layer that records group_send calls, optionally slowly or behind a gate."""

    def __init__(self, *, delay: float = 0.0, fail_on: set[int] | None = None) -> None:
        super().__init__()
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.threads: set[str] = set()
        self.delay = delay
        self.fail_on = fail_on or set()
        self.gate = threading.Event()
        self.gate.set()
        self.down = threading.Event()  # set: every send fails as if the server were away
        self.attempts = 0

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        while not self.gate.is_set():
            await asyncio.sleep(0.002)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.threads.add(threading.current_thread().name)
        self.attempts += 1
        if self.down.is_set():
            raise ConnectionRefusedError("layer down")
        if message.get("n") in self.fail_on:
            raise ValueError("message the layer cannot carry")
        self.sent.append((group, message))


@pytest.fixture
def make_publisher():
    made: list[realtime.Publisher] = []

    def make(layer: BaseChannelLayer, **kwargs: Any) -> realtime.Publisher:
        publisher = realtime.Publisher(layer, **kwargs)
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.close(timeout=2)


@pytest.fixture
def process_publisher(monkeypatch, make_publisher):
    """Route the module-level publish() through a Publisher over a RecordingLayer."""
    layer = RecordingLayer()
    monkeypatch.setattr(realtime, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(realtime, "_publisher", make_publisher(layer))
    return layer


needs_redis = pytest.mark.skipif(not redis_available(14), reason=f"no Redis at {REDIS_URL}")


def test_messages_leave_in_the_order_they_were_published_from_many_threads(make_publisher):
    layer = RecordingLayer()
    publisher = make_publisher(layer)

    def produce(thread: int) -> None:
        for i in range(200):
            publisher.submit("g", {"type": "t", "thread": thread, "i": i})

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert publisher.flush(timeout=10)
    assert len(layer.sent) == 800
    for thread in range(4):
        mine = [m["i"] for _, m in layer.sent if m["thread"] == thread]
        assert mine == list(range(200))
    assert layer.threads == {"agentdeck-realtime-publisher"}


def test_publish_returns_before_the_send_and_flush_waits_for_it(process_publisher):
    process_publisher.delay = 0.05
    started = time.monotonic()
    for n in range(10):
        realtime.publish("run.x", {"type": "run.event", "n": n})
    assert time.monotonic() - started < 0.25  # the 10 sends take >= 0.5 s
    assert len(process_publisher.sent) < 10

    assert realtime.flush(timeout=5)
    assert [m["n"] for _, m in process_publisher.sent] == list(range(10))


def test_coalesced_messages_wait_and_the_latest_per_group_and_key_wins(make_publisher):
    layer = RecordingLayer()
    publisher = make_publisher(layer)
    publisher.submit("user.1", {"balance": 1}, coalesce="credits.updated")
    publisher.submit("user.1", {"n": "status"})  # not coalesced: leaves at once
    publisher.submit("user.1", {"balance": 2}, coalesce="credits.updated")
    publisher.submit("user.2", {"balance": 7}, coalesce="credits.updated")
    publisher.submit("user.1", {"balance": 3}, coalesce="credits.updated")
    deadline = time.monotonic() + 2
    while not layer.sent and time.monotonic() < deadline:
        time.sleep(0.005)
    assert layer.sent == [("user.1", {"n": "status"})]
    assert publisher.pending == 2  # one waiting balance per user

    time.sleep(realtime.COALESCE_SECONDS * 3)
    assert sorted(layer.sent[1:], key=lambda sent: sent[0]) == [
        ("user.1", {"balance": 3}),
        ("user.2", {"balance": 7}),
    ]
    assert publisher.pending == 0
    # After it left, the next one waits again (and is not lost).
    publisher.submit("user.1", {"balance": 4}, coalesce="credits.updated")
    assert publisher.flush(timeout=5)
    assert layer.sent[-1] == ("user.1", {"balance": 4})


def test_flush_sends_waiting_coalesced_messages_at_once(make_publisher):
    layer = RecordingLayer()
    publisher = make_publisher(layer)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(realtime.publisher, "COALESCE_SECONDS", 30.0)
        publisher.submit("user.1", {"balance": 1}, coalesce="credits.updated")
        publisher.submit("user.1", {"balance": 2}, coalesce="credits.updated")
        started = time.monotonic()
        assert publisher.flush(timeout=5)
    assert time.monotonic() - started < 1
    assert layer.sent == [("user.1", {"balance": 2})]


@pytest.mark.django_db(transaction=True)
def test_credit_balance_notifications_coalesce_and_others_do_not(process_publisher):
    from django.db import transaction

    with transaction.atomic():
        realtime.notify_user_on_commit(1, "credits.updated", {"balance": 1})
        realtime.notify_user_on_commit(1, "run.status", {"status": "running"})
        realtime.notify_user_on_commit(1, "credits.updated", {"balance": 2})
    assert realtime.flush(timeout=5)
    sent = [m["notification"] for _, m in process_publisher.sent]
    assert sent == [
        {"type": "run.status", "data": {"status": "running"}},
        {"type": "credits.updated", "data": {"balance": 2}},
    ]


def test_every_django_q2_task_ends_with_its_messages_sent(process_publisher):
    """django-q2 may end a worker process without atexit; the worker's post-task signal flushes
    (connected once in CoreConfig.ready, for every task)."""
    from django_q.signals import post_execute_in_worker

    process_publisher.delay = 0.05
    for n in range(3):
        realtime.publish("run.x", {"type": "run.event", "n": n})
    assert len(process_publisher.sent) < 3

    post_execute_in_worker.send(sender="django_q", func=print, task={"name": "t"})
    assert [m["n"] for _, m in process_publisher.sent] == [0, 1, 2]


def test_flush_reports_a_timeout_and_a_later_flush_completes(make_publisher):
    layer = RecordingLayer()
    layer.gate.clear()
    publisher = make_publisher(layer)
    publisher.submit("g", {"n": 1})

    assert publisher.flush(timeout=0.05) is False
    layer.gate.set()
    assert publisher.flush(timeout=5) is True
    assert publisher.pending == 0


def test_flush_without_any_publish_returns_at_once(monkeypatch):
    monkeypatch.setattr(realtime, "_publisher", None)
    assert realtime.flush(timeout=0) is True


def test_a_message_the_layer_refuses_is_logged_and_the_next_one_still_goes(make_publisher, caplog):
    layer = RecordingLayer(fail_on={2})
    publisher = make_publisher(layer)
    with caplog.at_level(logging.WARNING, logger="agentdeck.core.realtime"):
        for n in range(1, 4):
            publisher.submit("g", {"n": n})
        assert publisher.flush(timeout=5)
    assert [m["n"] for _, m in layer.sent] == [1, 3]
    assert "realtime publish to g failed" in caplog.text


def test_while_the_layer_is_unreachable_messages_are_kept_and_sent_in_order_once_it_is_back(
    make_publisher, caplog, settings
):
    settings.RECONNECT_MAX_DELAY_SECONDS = 0.2
    layer = RecordingLayer()
    layer.down.set()
    publisher = make_publisher(layer)
    with caplog.at_level(logging.DEBUG, logger="agentdeck.core.realtime"):
        for n in range(5):
            publisher.submit("g", {"n": n})
        # A task's end-of-task flush does not wait out an outage: the messages stay queued.
        started = time.monotonic()
        assert publisher.flush(timeout=5) is False
        assert time.monotonic() - started < 1
        time.sleep(1)  # several attempts, with backoff
        assert layer.attempts >= 3
        assert publisher.pending == 5
        layer.down.clear()
        deadline = time.monotonic() + 5
        while publisher.pending and time.monotonic() < deadline:
            time.sleep(0.02)
    assert [m["n"] for _, m in layer.sent] == [0, 1, 2, 3, 4]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # Logged when the outage starts and when it ends, not once per attempt.
    assert sum("lost" in w for w in warnings) == 1, warnings
    assert sum("back after" in w for w in warnings) == 1, warnings
    assert not any("realtime publish to g failed" in w for w in warnings)


def test_a_full_queue_drops_with_a_warning_instead_of_blocking(make_publisher, caplog):
    layer = RecordingLayer()
    layer.gate.clear()  # the layer hangs: nothing leaves
    publisher = make_publisher(layer, maxsize=5)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="agentdeck.core.realtime"):
        accepted = [publisher.submit("g", {"n": n}) for n in range(12)]
    assert time.monotonic() - started < 0.5
    assert accepted == [True] * 5 + [False] * 7
    assert "realtime publish queue full" in caplog.text
    # One warning for the burst, not one per dropped message.
    assert caplog.text.count("realtime publish queue full") == 1

    layer.gate.set()
    assert publisher.flush(timeout=5)
    assert [m["n"] for _, m in layer.sent] == [0, 1, 2, 3, 4]
    assert publisher.submit("g", {"n": 99})  # room again
    assert publisher.flush(timeout=5)


def test_publish_from_inside_a_running_loop_does_not_block_it(process_publisher):
    process_publisher.delay = 0.02  # the 20 sends take >= 0.4 s

    async def main() -> float:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        tick_task = asyncio.create_task(ticker())
        started = time.monotonic()
        for n in range(20):
            realtime.publish("run.y", {"type": "run.event", "n": n})
        handed_over = time.monotonic() - started
        deadline = time.monotonic() + 5
        while len(process_publisher.sent) < 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        tick_task.cancel()
        assert ticks > 10  # the loop kept running while the messages were sent
        return handed_over

    handed_over = asyncio.run(asyncio.wait_for(main(), timeout=10))
    assert handed_over < 0.2
    assert [m["n"] for _, m in process_publisher.sent] == list(range(20))


def test_in_memory_layer_publishes_to_the_instance_consumers_use_even_from_a_loop(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()

    async def main() -> list[dict[str, Any]]:
        channel = await layer.new_channel()
        await layer.group_add("mem", channel)
        realtime.publish("mem", {"type": "x", "n": 1})  # on this running loop
        await asyncio.sleep(0)
        return [await asyncio.wait_for(layer.receive(channel), 2)]

    assert asyncio.run(main()) == [{"type": "x", "n": 1}]
    assert realtime._publisher is None or realtime._publisher.layer is not layer


@needs_redis
def test_publishing_to_redis_works_in_the_parent_and_in_a_forked_child():
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    layers = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    with override_settings(CHANNEL_LAYERS=layers):
        # Pub/Sub keeps nothing for later: a receiver must be listening, on a loop of its own,
        # while the messages are published.
        receiver = get_channel_layer()
        received: list[str] = []
        listening = threading.Event()
        receiver_loop = asyncio.new_event_loop()

        async def listen() -> None:
            inbox = await receiver.new_channel("forktest.")
            await receiver.group_add("forked", inbox)
            listening.set()
            while len(received) < 3:
                received.append((await receiver.receive(inbox))["who"])

        listener = threading.Thread(
            target=lambda: receiver_loop.run_until_complete(asyncio.wait_for(listen(), 20))
        )
        listener.start()
        assert listening.wait(5)

        realtime.publish("forked", {"type": "t", "who": "parent-before"})
        assert realtime.flush(timeout=5)
        parent_publisher = realtime._publisher
        assert parent_publisher is not None
        assert parent_publisher.layer is not receiver

        pid = os.fork()
        if pid == 0:  # the child: publish through a publisher of its own, then leave at once
            code = 1
            try:
                realtime.publish("forked", {"type": "t", "who": "child"})
                fresh = realtime._publisher is not parent_publisher
                code = 0 if fresh and realtime.flush(timeout=5) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0

        realtime.publish("forked", {"type": "t", "who": "parent-after"})
        assert realtime.flush(timeout=5)
        assert realtime._publisher is parent_publisher

        listener.join(20)
        receiver_loop.close()
        assert received == ["parent-before", "child", "parent-after"]
    # Leaving the override closed the Redis publisher.
    assert realtime._publisher is None
    redis.Redis.from_url(REDIS_URL).flushdb()


@pytest.mark.django_db(transaction=True)
def test_postgres_layer_publishes_through_a_pool_of_its_own():
    import channels_postgres.db
    from channels_postgres.models import GroupChannel, Message

    from agentdeck.core.channel_layers import PostgresChannelLayer

    layer = PostgresChannelLayer(
        **{**connection.settings_dict, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False}
    )
    GroupChannel.objects.create(group_key="asgi:group:pgtest", channel="pgtest.inbox")
    publisher = realtime.Publisher(layer)
    try:
        for n in range(3):
            publisher.submit("pgtest", {"type": "t", "n": n})
        assert publisher.flush(timeout=10)
        assert Message.objects.filter(channel="pgtest.inbox").count() == 3
        # A pool of the layer's own on the publishing loop, not channels_postgres's global one.
        assert list(layer.django_db._pools) == [publisher.loop]
        assert channels_postgres.db.connection_pool is None
    finally:
        publisher.close(timeout=5)
        Message.objects.filter(channel="pgtest.inbox").delete()
