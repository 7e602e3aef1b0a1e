"""Putting tasks on the django-q2 queue: one broker per process.

``async_task`` builds a new broker for every call unless it is given one; with Redis that is a
new connection pool and a new connection per enqueued task (``get_broker`` cost 1.6 ms per call
here, benchmarks/RESULTS.md), on the path of every ``POST .../runs/``. redis-py's pool and the
ORM broker's querysets are safe to share between threads.
"""

from __future__ import annotations

from typing import Any

from agentdeck.core.per_process import PerProcess


def _make_broker() -> Any:
    from django_q.brokers import get_broker

    return get_broker()


broker = PerProcess(_make_broker, setting="Q_CLUSTER")


def enqueue(func: str, *args: Any, **options: Any) -> str:
    """``django_q.tasks.async_task`` on the process's broker; returns the task id."""
    from django_q.tasks import async_task

    return async_task(func, *args, broker=broker.get(), **options)
