"""The pieces every long-lived connection shares (agentdeck.core.reconnect): which errors mean
"the server is gone", the retry of an operation whose outcome a dead connection left unknown, and
the warnings that would otherwise repeat on every attempt."""

from __future__ import annotations

import logging

import psycopg
import pytest
import redis
from django.db import OperationalError as DjangoOperationalError

from agentdeck.core.reconnect import (
    Outage,
    RepeatedWarnings,
    call_until_reachable,
    is_connection_error,
)

LOST = psycopg.OperationalError("consuming input failed: server closed the connection")


def _raised_by_django(cause: BaseException) -> BaseException:
    """What Django raises for ``cause``: its own class, the driver's error as the cause."""
    try:
        try:
            raise cause
        except psycopg.Error as exc:
            raise DjangoOperationalError(str(exc)) from exc
    except DjangoOperationalError as wrapped:
        return wrapped


@pytest.mark.parametrize(
    "error",
    [
        LOST,
        _raised_by_django(LOST),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.CannotConnectNow("the database system is starting up"),
        redis.ConnectionError("Connection refused"),
        redis.TimeoutError("Timeout reading from socket"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_lost_or_refused_connection_is_a_connection_error(error):
    assert is_connection_error(error)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.UniqueViolation("duplicate key"),
        psycopg.errors.SerializationFailure("could not serialize access"),
        psycopg.errors.SyntaxError("syntax error"),
        ValueError("not a connection problem"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_query_of_its_own_failing_is_not_a_connection_error(error):
    assert not is_connection_error(error)


@pytest.fixture
def quick_backoff(settings):
    settings.RECONNECT_MAX_DELAY_SECONDS = 0.01


def test_after_a_lost_connection_the_retry_asks_what_the_first_attempt_did(quick_backoff):
    calls: list[str] = []

    def operation() -> str:
        calls.append("operation")
        raise LOST  # perhaps after its commit

    def again() -> str:
        calls.append("again")
        return "found done"

    outage = Outage("test")
    assert call_until_reachable(operation, again=again, outage=outage, give_up_after=5) == (
        "found done"
    )
    assert calls == ["operation", "again"]
    assert not outage.down


def test_without_again_the_operation_itself_is_repeated_until_it_goes_through(quick_backoff):
    failures = [LOST, LOST]

    def operation() -> str:
        if failures:
            raise failures.pop()
        return "done"

    assert call_until_reachable(operation, outage=Outage("test"), give_up_after=5) == "done"
    assert failures == []


def test_an_error_that_is_not_the_connection_is_raised_at_once(quick_backoff):
    calls = []

    def operation() -> None:
        calls.append(1)
        raise psycopg.errors.UniqueViolation("duplicate key")

    with pytest.raises(psycopg.errors.UniqueViolation):
        call_until_reachable(operation, outage=Outage("test"), give_up_after=5)
    assert calls == [1]


def test_an_outage_longer_than_the_limit_raises_its_error(quick_backoff):
    def operation() -> None:
        raise LOST

    outage = Outage("test")
    with pytest.raises(psycopg.OperationalError):
        call_until_reachable(operation, outage=outage, give_up_after=0.05)
    assert outage.down


def test_a_repeated_warning_is_let_through_once_per_interval_with_a_count(caplog):
    log = logging.getLogger("tests.reconnect")
    warnings = RepeatedWarnings(interval=60)
    with caplog.at_level(logging.WARNING, logger="tests.reconnect"):
        for group in ("a", "b", "c"):
            warnings.warning(log, "publish to %s failed", group)
        warnings.warning(log, "another message")
        warnings.interval = 0  # the interval has passed
        warnings.warning(log, "publish to %s failed", "d")
    assert [r.getMessage() for r in caplog.records] == [
        "publish to a failed",
        "another message",
        "publish to d failed (and 2 more like it since the last one)",
    ]


def test_as_a_logging_filter_it_keys_on_the_message_and_its_first_argument(caplog):
    log = logging.getLogger("tests.reconnect.pool")
    repeated = RepeatedWarnings(interval=60)
    log.addFilter(repeated)
    try:
        with caplog.at_level(logging.DEBUG, logger="tests.reconnect.pool"):
            for pool in ("pool-1", "pool-1", "pool-2", "pool-1"):
                log.warning("error connecting in %r: %s", pool, "refused")
            log.info("below warnings: %s", "never held back")
            log.info("below warnings: %s", "never held back")
            repeated.interval = 0
            log.warning("error connecting in %r: %s", "pool-1", "refused")
    finally:
        log.removeFilter(repeated)
    assert [r.getMessage() for r in caplog.records] == [
        "error connecting in 'pool-1': refused",
        "error connecting in 'pool-2': refused",
        "below warnings: never held back",
        "below warnings: never held back",
        "error connecting in 'pool-1': refused (and 2 more like it since the last one)",
    ]
