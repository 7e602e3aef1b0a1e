"""Putting tasks on the django-q2 queue: one broker per process, and brokers that ride out a
restart of their server.

``async_task`` builds a new broker for every call unless it is given one; with Redis that is a
new connection pool and a new connection per enqueued task (``get_broker`` cost 1.6 ms per call
here, benchmarks/RESULTS.md), on the path of every ``POST .../runs/``. redis-py's pool and the
ORM broker's querysets are safe to share between threads.

When PostgreSQL (ORM broker) or Redis restarts, django-q2's own brokers let the cluster lose
its parts one by one: the pusher logs a traceback, sleeps 10 s and dies (its sentinel starts
another), the monitor dies on the acknowledgement of the task it was saving, and the sentinel
logs an error every half second for the stats it cannot save. ``ORMBroker`` and ``RedisBroker``
(``Q_CLUSTER["broker_class"]``) keep them alive instead: an unreachable broker makes
``dequeue`` wait with backoff and return nothing, acknowledgements are retried, and the outage
is logged once when it starts and once when it ends. A task that cannot be enqueued because the
broker is unreachable waits in the process (:class:`_Outbox`) and is enqueued once it answers.
"""

from __future__ import annotations

import atexit
import collections
import functools
import logging
import os
import threading
import time
from typing import Any

from django_q.brokers import orm, redis_broker

from agentdeck.core.per_process import PerProcess
from agentdeck.core.reconnect import Backoff, Outage, call_until_reachable, is_connection_error

logger = logging.getLogger(__name__)

# How long an acknowledgement (the monitor, once a task is done) is retried before the monitor
# gives up; the ORM broker then delivers the task again after Q_CLUSTER["retry"], and the task
# finds its work done (a run is claimed once).
ACK_RETRY_SECONDS = 120.0
# Tasks waiting in one process for the broker to come back; beyond this they are dropped.
OUTBOX_MAX = 10_000


class _Reconnecting:
    """What ``ORMBroker`` and ``RedisBroker`` add to django-q2's brokers. The state lives in
    the instance's ``__dict__``, made on first use: django-q2 pickles a broker into its pusher
    and monitor processes with only its queue name."""

    def _state(self) -> tuple[Outage, Backoff]:
        state = self.__dict__.get("_reconnect_state")
        if state is None:
            state = self.__dict__["_reconnect_state"] = (
                Outage(f"task queue broker ({type(self).__name__})", logger),
                Backoff(),
            )
        return state

    @property
    def outage(self) -> Outage:
        return self._state()[0]

    def dequeue(self) -> Any:
        outage, backoff = self._state()
        try:
            tasks = super().dequeue()  # type: ignore[misc]  # a mixin: the broker's
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            # django-q2's pusher would log a traceback, sleep 10 s and exit for its sentinel to
            # start another; waiting here keeps it, and retries sooner.
            outage.failed(exc)
            time.sleep(backoff.next())
            return None
        outage.recovered()
        backoff.reset()
        return tasks

    def set_stat(self, key: str, value: str, timeout: int) -> None:
        # The sentinel saves its stats every guard cycle (0.5 s) and logs each failure itself.
        try:
            super().set_stat(key, value, timeout)  # type: ignore[misc]  # a mixin: the broker's
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            self.outage.failed(exc)
        else:
            self.outage.recovered()


class ORMBroker(_Reconnecting, orm.ORM):  # type: ignore[misc]  # django_q is untyped
    """django-q2's ORM broker (PostgreSQL), reconnecting. Its Django connection is replaced on
    the next use after a failure: ``get_connection`` runs ``close_old_connections`` first."""

    def delete(self, task_id: Any) -> Any:  # acknowledge() and fail() delete
        return call_until_reachable(
            functools.partial(super().delete, task_id),
            outage=self.outage,
            give_up_after=ACK_RETRY_SECONDS,
        )


class RedisBroker(_Reconnecting, redis_broker.Redis):  # type: ignore[misc]  # django_q is untyped
    """django-q2's Redis broker, reconnecting (redis-py reconnects on the next command)."""

    @staticmethod
    def get_connection(list_key: str | None = None) -> Any:
        from django_q.conf import Conf

        if isinstance(Conf.REDIS, str) and not Conf.DJANGO_REDIS:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # One immediate retry (a pooled connection the server closed), then fail: redis-py
            # retries a command 10 times with up to 1 s between tries by default, which held
            # /readyz and the pusher for seconds per call while Redis was down. _Reconnecting
            # does the waiting, with a backoff of its own.
            return redis.Redis.from_url(Conf.REDIS, retry=Retry(NoBackoff(), 1))
        return redis_broker.Redis.get_connection(list_key)

    def ping(self) -> bool:
        # Without the library's "Can not connect to Redis server." on every /readyz: the
        # check reports the error itself.
        alive: bool = self.connection.ping()
        return alive


def _make_broker() -> Any:
    from django_q.brokers import get_broker

    return get_broker()


broker = PerProcess(_make_broker, setting="Q_CLUSTER")


class _Outbox:
    """Tasks the broker could not take (it was unreachable), enqueued by a daemon thread in
    the order they came once it answers again. Later tasks queue behind them, so the order of
    enqueueing is kept. Lost if the process exits first: the warning says how many."""

    def __init__(self) -> None:
        self._items: collections.deque[tuple[str, tuple[Any, ...], dict[str, Any]]] = (
            collections.deque()
        )
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self.outage = Outage("task queue broker (enqueue)", logger)

    def __len__(self) -> int:
        with self._cond:
            return len(self._items) if self._pid == os.getpid() else 0

    def put(self, func: str, args: tuple[Any, ...], options: dict[str, Any]) -> bool:
        with self._cond:
            if self._pid != os.getpid():  # a forked child: the parent's items are not ours
                self._items.clear()
                self._thread = None
                self._pid = os.getpid()
            if len(self._items) >= OUTBOX_MAX:
                logger.error("task queue outbox full (%d): %s dropped", OUTBOX_MAX, func)
                return False
            self._items.append((func, args, options))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="agentdeck-queue-outbox", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        return True

    def _run(self) -> None:
        from django_q.tasks import async_task

        backoff = Backoff()
        while True:
            with self._cond:
                while not self._items:
                    self._cond.wait()
                func, args, options = self._items[0]
            try:
                async_task(func, *args, broker=broker.get(), **options)
            except Exception as exc:
                if not is_connection_error(exc):
                    logger.exception("could not enqueue %s; dropped", func)
                    with self._cond:
                        self._items.popleft()
                    continue
                self.outage.failed(exc)
                time.sleep(backoff.next())
                continue
            with self._cond:
                self._items.popleft()
                left = len(self._items)
            backoff.reset()
            if self.outage.recovered() and left:
                logger.warning("task queue: %d more task(s) to enqueue", left)

    def report_at_exit(self) -> None:
        left = len(self)
        if left:
            logger.error("task queue: %d task(s) never enqueued (broker unreachable)", left)


_outbox = _Outbox()


def enqueue(func: str, *args: Any, **options: Any) -> str:
    """``django_q.tasks.async_task`` on the process's broker; returns the task id, or "" when
    the broker is unreachable and the task waits in this process to be enqueued once it is back
    (the caller's transaction has committed: the task must not be lost to a restarting Redis)."""
    from django_q.tasks import async_task

    if not len(_outbox):
        try:
            task_id: str = async_task(func, *args, broker=broker.get(), **options)
            return task_id
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            _outbox.outage.failed(exc)
    _outbox.put(func, args, options)
    return ""


atexit.register(_outbox.report_at_exit)
