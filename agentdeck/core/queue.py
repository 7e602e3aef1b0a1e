"""Putting tasks on the django-q2 queue: one broker per process.

``async_task`` builds a new broker for every call unless it is given one; with Redis that is a
new connection pool and a new connection per enqueued task (``get_broker`` cost 1.6 ms per call
here, benchmarks/RESULTS.md), on the path of every ``POST .../runs/``. The broker is made once
per process (again after a fork or a change of ``Q_CLUSTER``); redis-py's pool and the ORM
broker's querysets are safe to share between threads.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.core.signals import setting_changed

_lock = threading.Lock()
_broker: Any = None
_pid: int | None = None


def broker() -> Any:
    global _broker, _pid
    current, pid = _broker, os.getpid()
    if current is not None and _pid == pid:
        return current
    with _lock:
        if _broker is None or _pid != pid:
            from django_q.brokers import get_broker

            _broker, _pid = get_broker(), pid
        return _broker


def enqueue(func: str, *args: Any, **options: Any) -> str:
    """``django_q.tasks.async_task`` on the process's broker; returns the task id."""
    from django_q.tasks import async_task

    return async_task(func, *args, broker=broker(), **options)


def _forget(*, setting: str, **kwargs: Any) -> None:
    global _broker
    if setting == "Q_CLUSTER":
        _broker = None


setting_changed.connect(_forget)
