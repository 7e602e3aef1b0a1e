"""Staying connected: the backoff and the outage log every long-lived connection shares.

The channel layers' LISTEN and Pub/Sub connections (agentdeck.core.channel_layers), each
process's publishing loop (agentdeck.core.realtime), django-q2's brokers (agentdeck.core.queue)
and the run executor's writes (agentdeck.agents.runtime.executor) all lose their server the
same way (PostgreSQL restarts and resets every connection; Redis restarts) and recover the same
way: try again after a capped, jittered, exponentially growing delay, and say so in the log
once when the outage starts and once when it ends, not on every attempt.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The first retry waits about this long; each failed attempt doubles it, up to the cap.
INITIAL_DELAY_SECONDS = 0.1


def max_delay() -> float:
    """``RECONNECT_MAX_DELAY_SECONDS``: how long a reconnecting client waits at most between
    attempts, so it is back within that long of its server."""
    from django.conf import settings

    return float(getattr(settings, "RECONNECT_MAX_DELAY_SECONDS", 2.0))


class Backoff:
    """Exponential backoff with "equal jitter": the n-th delay is drawn from [d/2, d] where
    d = min(cap, initial * 2**n). Jitter keeps the processes that lost the same server from
    reconnecting in lockstep; the lower half-bound keeps a process from hammering it."""

    def __init__(self, *, initial: float = INITIAL_DELAY_SECONDS, cap: float | None = None):
        self.initial = initial
        self.cap = cap
        self.attempts = 0

    def next(self) -> float:
        cap = self.cap if self.cap is not None else max_delay()
        ceiling: float = min(cap, self.initial * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 (not cryptographic)

    def reset(self) -> None:
        self.attempts = 0


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


# SQLSTATEs that mean the server went away or is not accepting connections yet: class 08
# (connection exception), admin_shutdown, crash_shutdown, cannot_connect_now
# (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_GONE_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the server or the connection to it is gone:
    worth retrying an idempotent operation on a fresh connection. A query's own error (bad
    SQL, a constraint, a serialization failure) is not."""
    import psycopg
    import redis

    for error in _causes(exc):
        if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            return True
        if isinstance(error, psycopg.Error):
            state = error.sqlstate
            if state is None:
                # Raised by the client: the socket closed, a connect failed, a pool timed out.
                return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)
            return state.startswith("08") or state in _GONE_SQLSTATES
        if isinstance(error, ConnectionError | TimeoutError | EOFError):
            return True
    return False


class Outage:
    """The state of one connection: up, or down since when and why. :meth:`failed` logs the
    first failure of an outage as a warning and later ones at debug level; :meth:`recovered`
    logs how long it lasted. Safe to read from other threads (``/readyz`` does)."""

    def __init__(self, name: str, log: logging.Logger | None = None) -> None:
        self.name = name
        self.log = log or logger
        self._lock = threading.Lock()
        self.since: float | None = None  # time.monotonic() of the first failure
        self.since_wall: float | None = None  # time.time() of the same moment
        self.attempts = 0
        self.last_error = ""

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
        with self._lock:
            self.attempts += 1
            self.last_error = error
            if self.since is None:
                self.since = time.monotonic()
                self.since_wall = time.time()
                first = True
            else:
                first = False
        if first:
            self.log.warning("%s lost (%s); reconnecting with backoff", self.name, error)
        else:
            self.log.debug("%s: attempt %d failed: %s", self.name, self.attempts, error)

    def recovered(self) -> bool:
        """Mark the connection up; True if it was down (the caller may have catching up to do)."""
        if self.since is None:
            return False
        with self._lock:
            since, attempts = self.since, self.attempts
            if since is None:
                return False
            self.since = self.since_wall = None
            self.attempts = 0
        self.log.warning(
            "%s back after %.1f s (%d failed attempt%s)",
            self.name,
            time.monotonic() - since,
            attempts,
            "" if attempts == 1 else "s",
        )
        return True

    def describe(self) -> str:
        """For /readyz: why the connection is down and for how long."""
        since = self.since
        if since is None:
            return f"{self.name}: connected"
        return (
            f"{self.name}: reconnecting for {time.monotonic() - since:.1f} s "
            f"({self.attempts} attempt(s)); last error: {self.last_error}"
        )


def drop_broken_connection(alias: str = "default") -> None:
    """Close Django's connection ``alias`` if a query on it failed and it no longer answers,
    so the next query connects afresh. Django does this only between requests (and django-q2
    between tasks): a long task would otherwise keep failing on a connection PostgreSQL reset.
    Costs nothing while the connection is healthy."""
    from django.db import connections

    connection = connections[alias]
    if connection.errors_occurred and not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def call_until_reachable(
    operation: Callable[[], T],
    *,
    outage: Outage,
    give_up_after: float,
    again: Callable[[], T] | None = None,
) -> T:
    """``operation()``, tried again with backoff while it fails because the database (or
    Redis) is unreachable, for up to ``give_up_after`` seconds; then its error is raised. Each
    failure and the recovery are reported to ``outage``.

    A connection that dies may have done so after the commit: the outcome of a failed attempt is
    unknown. Later attempts call ``again()`` when given (it must find out whether the first one
    took effect: see agentdeck.agents.services.runs), else ``operation()`` once more, which must
    then be safe to repeat (a conditional UPDATE that changes nothing a second time). Not
    inside a transaction: a retry cannot resume one."""
    from django.db import connection

    backoff = Backoff()
    deadline = time.monotonic() + give_up_after
    attempt = operation
    while True:
        try:
            result = attempt()
        except Exception as exc:
            if (
                not is_connection_error(exc)
                or connection.in_atomic_block
                or time.monotonic() > deadline
            ):
                raise
            outage.failed(exc)
            time.sleep(backoff.next())
            drop_broken_connection()
            attempt = again or operation
            continue
        outage.recovered()
        return result


class RepeatedWarnings(logging.Filter):
    """Lets a warning through once per ``interval`` per key, with how many like it were held
    back since. Installed as a logging filter on a library's logger (``CoreConfig.ready`` does
    so for psycopg_pool, which warns on every failed reconnection attempt of every pool: "error
    connecting in 'pool-1': ..."), its key is the message and its first argument; called
    through :meth:`warning`, the message alone (agentdeck.core.realtime's per-message warnings)."""

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._lock = threading.Lock()
        self._seen: dict[object, tuple[float, int]] = {}

    def _admit(self, key: object) -> int | None:
        """None: hold this one back; else how many were held back since the last one."""
        now = time.monotonic()
        with self._lock:
            last, held = self._seen.get(key, (None, 0))
            if last is not None and now - last < self.interval:
                self._seen[key] = (last, held + 1)
                return None
            self._seen[key] = (now, 0)
        return held

    @staticmethod
    def _with_count(msg: str, held: int) -> str:
        return f"{msg} (and {held} more like it since the last one)" if held else msg

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        held = self._admit((str(record.msg), str(args[0]) if args else ""))
        if held is None:
            return False
        if held:
            record.msg = self._with_count(str(record.msg), held)
        return True

    def warning(self, log: logging.Logger, msg: str, *args: object, exc_info: bool = False) -> None:
        """``log.warning(msg, *args)``, unless ``msg`` was let through less than ``interval``
        ago."""
        held = self._admit(msg)
        if held is not None:
            log.warning(self._with_count(msg, held), *args, exc_info=exc_info)
