"""The task queue's brokers and enqueue (agentdeck.core.queue) while their server is away: the
qcluster's pusher waits instead of dying, and a task enqueued meanwhile is not lost."""

from __future__ import annotations

import logging
import time

import pytest
from django.db import connection
from django.utils.module_loading import import_string
from django_q.conf import Conf

from agentdeck.core import queue

# The brokers under test, as config.settings names them in Q_CLUSTER["broker_class"].
REDIS_BROKER = "agentdeck.core.queue.RedisBroker"
ORM_BROKER = "agentdeck.core.queue.ORMBroker"


@pytest.fixture
def redis_broker(redis_server, monkeypatch, settings):
    settings.RECONNECT_MAX_DELAY_SECONDS = 0.2
    monkeypatch.setattr(Conf, "REDIS", redis_server.url)
    return import_string(REDIS_BROKER)(list_key="outage-test")


def test_the_redis_broker_waits_out_an_outage_instead_of_failing(
    redis_server, redis_broker, caplog
):
    redis_broker.enqueue("before")
    assert redis_broker.dequeue() == [(None, b"before")]

    redis_server.stop()
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        # What django-q2's pusher calls in a loop: no exception, no tasks, a short wait.
        assert [redis_broker.dequeue() for _ in range(3)] == [None, None, None]
        assert time.monotonic() - started < 3
        redis_server.start()
        redis_broker.enqueue("after")
        assert redis_broker.dequeue() == [(None, b"after")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum(" lost " in w for w in warnings) == 1, warnings
    assert sum("back after" in w for w in warnings) == 1, warnings


def test_a_task_enqueued_while_the_broker_is_away_is_enqueued_once_it_is_back(
    redis_server, redis_broker, monkeypatch
):
    class OneBroker:
        def get(self):
            return redis_broker

    monkeypatch.setattr(queue, "broker", OneBroker())
    redis_server.stop()
    # The request that enqueued it has committed its transaction: it must not fail or lose it.
    assert queue.enqueue("math.floor", 1.5, task_name="floor") == ""
    redis_server.start()
    deadline = time.monotonic() + 10
    while redis_broker.queue_size() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert redis_broker.queue_size() == 1
    assert len(queue._outbox) == 0


@pytest.mark.django_db(transaction=True)
def test_the_orm_broker_waits_out_an_unreachable_database(settings, caplog):
    settings.RECONNECT_MAX_DELAY_SECONDS = 0.2
    broker = import_string(ORM_BROKER)(list_key="outage-test")
    real_host, real_port = connection.settings_dict["HOST"], connection.settings_dict["PORT"]
    connection.close()
    # Point the connection at an address where no PostgreSQL listens.
    connection.settings_dict["HOST"], connection.settings_dict["PORT"] = "127.0.0.1", 1
    try:
        with caplog.at_level(logging.WARNING):
            assert broker.dequeue() is None
            assert broker.dequeue() is None
    finally:
        connection.close()
        connection.settings_dict["HOST"], connection.settings_dict["PORT"] = real_host, real_port
    broker.enqueue("payload")
    assert [payload for _, payload in broker.dequeue()] == ["payload"]
    assert sum(" lost " in r.getMessage() for r in caplog.records) == 1
