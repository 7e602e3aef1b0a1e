"""The pieces every long-lived connection shares (agentdeck.core.reconnect): which errors mean
"the server is gone", and the retry of an operation whose outcome a dead connection left
unknown."""

from __future__ import annotations

import psycopg
import pytest
import redis
from django.db import OperationalError as DjangoOperationalError

from agentdeck.core.reconnect import (
    Outage,
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
