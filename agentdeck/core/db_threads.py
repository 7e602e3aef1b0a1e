"""ORM work from async code: on the caller's thread, or on a bounded pool of database threads.

Django's ORM is synchronous and its connections belong to threads. Async code reaches it in one
of two ways, chosen by who runs the event loop:

* under ``async_to_sync`` (a django-q2 task, a test calling ``execute_run``), the work runs back
  on the calling thread (``sync_to_async(thread_sensitive=True)``), on that thread's connection
  and inside its transaction: a test's uncommitted rows are visible, as before;
* in the run worker (``agentdeck.agents.worker``), hundreds of runs share one loop; their ORM
  work goes to :class:`DatabaseThreads`, a fixed pool of threads, each with one connection. A
  process holding 500 runs in flight uses ``RUN_DB_THREADS`` connections, not 500, and no run
  waits behind another's query for longer than the pool is busy.

:func:`run_db` picks the pool set for the current context (:func:`use_database_threads`), so
the runtime and the services call it the same way in both shapes.

Outside a request nothing calls ``close_old_connections`` for these threads, so a connection
broken by a database restart, or past ``CONN_MAX_AGE``, would be reused forever. Like Channels'
``database_sync_to_async``, a connection that failed and no longer answers is dropped before and
after the work; never inside an atomic block, which belongs to a caller that owns the
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

from agentdeck.core.reconnect import drop_broken_connection

T = TypeVar("T")


class DatabaseThreads:
    """A fixed pool of threads for ORM work, each keeping its own connection for as long as it
    answers (a connection that failed is replaced: a database restart). ``close()`` waits for
    the work in hand and closes every thread's connection."""

    def __init__(self, size: int, *, name: str = "db") -> None:
        self.size = size
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)

    def submit(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        context = contextvars.copy_context()
        call = functools.partial(context.run, _healthy_call, func, *args, **kwargs)
        return asyncio.get_running_loop().run_in_executor(self._executor, call)

    def close(self) -> None:
        # Each thread closes its own connection: Django's connections are per thread.
        for _ in range(self.size):
            self._executor.submit(connections.close_all)
        self._executor.shutdown(wait=True)


_threads: contextvars.ContextVar[DatabaseThreads | None] = contextvars.ContextVar(
    "agentdeck_database_threads", default=None
)


@contextlib.contextmanager
def use_database_threads(pool: DatabaseThreads) -> Iterator[DatabaseThreads]:
    """Send the ORM work of :func:`run_db` calls made in this context (and in the tasks it
    starts) to ``pool``."""
    token = _threads.set(pool)
    try:
        yield pool
    finally:
        _threads.reset(token)


async def run_db(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` off the event loop, where its ORM work belongs (see the module
    docstring)."""
    pool = _threads.get()
    if pool is not None:
        return await pool.submit(func, *args, **kwargs)
    return await sync_to_async(_healthy_call, thread_sensitive=True)(func, *args, **kwargs)


def _healthy_call(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func`` with this thread's connections dropped before and after if they failed and no
    longer answer. Only those: Django's ``close_if_unusable_or_obsolete`` would also mark a
    healthy connection for a health check (SELECT 1) before its next query, a round trip more
    per call, and on the caller's thread ``CONN_MAX_AGE`` is the caller's business."""
    _drop_broken()
    try:
        return func(*args, **kwargs)
    finally:
        _drop_broken()


def _drop_broken() -> None:
    for connection in connections.all(initialized_only=True):
        drop_broken_connection(connection.alias)
