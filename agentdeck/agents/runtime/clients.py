"""Model-provider HTTP clients shared by the runs of a process: one ``AsyncOpenAI`` (and so one
connection pool) per provider and event loop, and one SSL context for every client.

Why: an ``AsyncOpenAI`` built the default way builds an SSL context of its own (loading the CA
bundle: 25-50 ms of CPU on a small machine, against ~0.2 ms for the rest of the client) and a
connection pool of its own, so a client per run costs that and a new TCP (and TLS) connection
on every run. Here the SSL context is built once per process (:func:`shared_ssl_context`), and
a :class:`ClientPool` hands the same client to every run of its event loop that uses the same
provider with the same credentials.

Connection pools belong to the event loop they were opened on, so a pool lives on one loop:

* a long-lived process (the run worker) holds one pool for the life of its loop::

      async def main():
          async with client_pool_scope():
              ...  # start the runs here: tasks and sync_to_async threads inherit the pool
          # leaving the block closes every client

* a run executed on an event loop of its own (``executor.execute``: ``async_to_sync`` per run)
  enters :func:`client_pool_scope` too (``executor.execute_async`` does for every run): a pool
  for that call, closed when it ends. Inside a process's pool (above) it uses that pool.

The pool is found through a ``ContextVar``, which asyncio tasks and asgiref's ``sync_to_async``
threads (where the run's graph is built) inherit. ``builder.openai_client`` takes its client from
the current pool when there is one, and builds a client of its own otherwise (which its caller
closes: ``RunGraph.clients``).

A provider whose key, headers or base URL change gets a new client at its next run; the old one
is *retired*: handed to no one again, and closed ``retire_after`` seconds later (by default the
run timeout plus a minute), when every run that took it has ended, or when the pool closes if
that comes first. Closing it at once would break the runs still streaming from it. A client no
run has taken for ``idle_after`` seconds is retired the same way, so a worker that has served
thousands of providers holds clients only for those in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import httpx2
from django.conf import settings
from openai import DefaultAsyncHttpxClient

logger = logging.getLogger(__name__)

_ssl_context: ssl.SSLContext | None = None
_ssl_lock = threading.Lock()


def shared_ssl_context() -> ssl.SSLContext:
    """The process's one SSL context for provider clients, built on first use exactly as the
    openai client's default HTTP client builds its own (``httpx2.create_ssl_context``: the
    system CA bundle, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set). An ``SSLContext`` is
    safe to share between threads and event loops; it is never changed after it is built."""
    global _ssl_context
    if _ssl_context is None:
        with _ssl_lock:
            if _ssl_context is None:
                _ssl_context = httpx2.create_ssl_context(verify=True, trust_env=True)
    return _ssl_context


class _HttpClient(DefaultAsyncHttpxClient):
    # The finalizer of openai's own default client (AsyncHttpxClientWrapper, private there):
    # closes a client its owner forgot, on the loop running then.
    def __del__(self) -> None:
        if self.is_closed:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().create_task(self.aclose())


def provider_http_client(*, timeout: float) -> Any:
    """The HTTP client under a provider's ``AsyncOpenAI``: openai's ``DefaultAsyncHttpxClient``
    (its defaults: redirects followed, proxies and CA settings taken from the environment) over
    the shared SSL context, with room for ``PROVIDER_MAX_CONNECTIONS`` streams at once.

    Idle connections are all kept (up to the same number; httpx drops them after 5 s idle), so
    hundreds of runs taking turns on one provider reuse connections instead of opening new
    ones between turns. A client nobody closes is closed when it is garbage collected, as the
    openai client's own default is."""
    limits = httpx2.Limits(
        max_connections=settings.PROVIDER_MAX_CONNECTIONS,
        max_keepalive_connections=settings.PROVIDER_MAX_CONNECTIONS,
    )
    return _HttpClient(verify=shared_ssl_context(), limits=limits, timeout=timeout)


@dataclass
class _Entry:
    fingerprint: str
    client: Any
    taken_at: float  # time.monotonic() of the last get() that returned it


class ClientPool:
    """``AsyncOpenAI`` clients of one event loop, one per *slot*: a provider with a timeout and
    a retry count. A slot's client is rebuilt when its *fingerprint* (a digest of the provider's
    credentials and base URL) changes. See the module docstring for the lifecycle.

    :meth:`get` may be called from any thread (runs build their graph in ``sync_to_async``);
    clients are closed on the pool's loop. Not reusable after :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        retire_after: float | None = None,
        idle_after: float = 600.0,
    ) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self.retire_after = (
            retire_after if retire_after is not None else settings.RUN_TIMEOUT_SECONDS + 60.0
        )
        self.idle_after = idle_after
        self.built = 0  # clients built so far (tests and metrics read it)
        self._entries: dict[tuple[str, float, int], _Entry] = {}
        # id(client) -> (client, the timer that closes it once set on the loop)
        self._retired: dict[int, tuple[Any, asyncio.TimerHandle | None]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        self._swept_at = time.monotonic()
        self._closed = False

    def get(
        self,
        provider_id: str,
        *,
        timeout: float,
        max_retries: int,
        fingerprint: str,
        build: Callable[[], Any],
    ) -> Any:
        """The slot's client: the one held if it has this ``fingerprint``, else a new one from
        ``build()`` (the one it replaces is retired). Its caller must not close it."""
        slot = (str(provider_id), timeout, max_retries)
        now = time.monotonic()
        with self._lock:
            if self._closed:
                raise RuntimeError("The client pool is closed.")
            entry = self._entries.get(slot)
            if entry is None or entry.fingerprint != fingerprint:
                client = build()
                if entry is not None:
                    self._retire(entry.client)
                entry = self._entries[slot] = _Entry(fingerprint, client, now)
                self.built += 1
            entry.taken_at = now
            if now - self._swept_at > min(self.idle_after, 60.0):
                self._sweep(now)
            return entry.client

    @property
    def size(self) -> int:
        """How many clients it holds for new runs (retired ones not counted)."""
        return len(self._entries)

    def holds(self, client: Any) -> bool:
        """Whether ``client`` is this pool's (so its user must not close it)."""
        with self._lock:
            return id(client) in self._retired or any(
                e.client is client for e in self._entries.values()
            )

    def retire_provider(self, provider_id: str) -> int:
        """Retire a provider's clients (it was disabled); returns how many."""
        with self._lock:
            slots = [slot for slot in self._entries if slot[0] == str(provider_id)]
            for slot in slots:
                self._retire(self._entries.pop(slot).client)
            return len(slots)

    def _sweep(self, now: float) -> None:
        self._swept_at = now
        for slot, entry in list(self._entries.items()):
            if now - entry.taken_at > self.idle_after:
                del self._entries[slot]
                self._retire(entry.client)

    def _retire(self, client: Any) -> None:
        # Under self._lock, from any thread: the timer is set on the pool's loop.
        self._retired[id(client)] = (client, None)
        self.loop.call_soon_threadsafe(self._set_close_timer, client)

    def _set_close_timer(self, client: Any) -> None:
        with self._lock:
            if id(client) in self._retired:
                handle = self.loop.call_later(self.retire_after, self._close_retired, client)
                self._retired[id(client)] = (client, handle)

    def _close_retired(self, client: Any) -> None:
        with self._lock:
            if self._retired.pop(id(client), None) is None:
                return
        task = self.loop.create_task(_close(client))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every client, retired ones included (their timers are cancelled). Call it on
        the pool's loop once no run uses the pool."""
        with self._lock:
            self._closed = True
            clients = [e.client for e in self._entries.values()]
            for client, handle in self._retired.values():
                if handle is not None:
                    handle.cancel()
                clients.append(client)
            self._entries.clear()
            self._retired.clear()
        await asyncio.gather(*(_close(c) for c in clients), *self._closing)


async def _close(client: Any) -> None:
    try:
        await client.close()
    except Exception:  # a connection that failed to close has nothing left to release
        logger.warning("Closing a provider client failed.", exc_info=True)


_current: contextvars.ContextVar[ClientPool | None] = contextvars.ContextVar(
    "agentdeck_client_pool", default=None
)


def current_client_pool() -> ClientPool | None:
    """The pool of the running code (see the module docstring), or None outside any.

    A pool is bound to its loop: code running on another loop (a sync call that started one of
    its own with ``async_to_sync``) inherits the variable but gets None."""
    pool = _current.get()
    if pool is None:
        return None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a thread of sync_to_async, working for the pool's loop
        return pool
    return pool if loop is pool.loop else None


@contextlib.asynccontextmanager
async def client_pool_scope(**kwargs: Any) -> AsyncIterator[ClientPool]:
    """The current client pool for the block: the one already installed on this loop (a
    long-lived process's), or a new one (``ClientPool(**kwargs)``), closed with its clients when
    the block ends.

    A run worker enters it once around everything it runs (its runs' tasks must start inside
    the block, so they inherit the pool) and leaves it at shutdown, after its runs ended."""
    pool = current_client_pool()
    if pool is not None:
        yield pool
        return
    pool = ClientPool(**kwargs)
    token = _current.set(pool)
    try:
        yield pool
    finally:
        _current.reset(token)
        await pool.aclose()


P = ParamSpec("P")
R = TypeVar("R")
