"""A run whose worker loses its database connection in the middle (PostgreSQL restarting, or
resetting every connection after a backend crashed): the run goes on once the database answers,
and its log has every event once."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.db import connection

from agentdeck.agents.models import AgentRun, RunEvent
from agentdeck.agents.runtime import events as ev
from agentdeck.agents.services.run_sink import run_sink
from agentdeck.agents.services.runs import (
    agent_run_claim,
    agent_run_start,
    execution,
    run_event_append,
)
from agentdeck.agents.tasks import execute_run
from tests.support.outages import terminate_backends

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = " ".join(f"word{i}" for i in range(40))


def test_a_run_goes_on_after_its_database_connection_is_reset_mid_stream(
    user, mock_agent, settings
):
    settings.MOCK_MODEL_DELAY_PER_TOKEN = 0.03
    settings.RUN_HEARTBEAT_SECONDS = 0.1
    settings.RECONNECT_MAX_DELAY_SECONDS = 0.2
    run, _ = agent_run_start(user=user, agent=mock_agent, input=WORDS)
    connection.ensure_connection()
    spare = connection.connection.info.backend_pid
    outcome: list[object] = []

    def work() -> None:
        try:
            outcome.append(execute_run(str(run.id)))
        except Exception as exc:  # the outcome is the point
            outcome.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while not RunEvent.objects.filter(run=run, type=ev.MESSAGE_DELTA).exists():
            assert time.monotonic() < deadline, "the run never started streaming"
            time.sleep(0.01)
        assert terminate_backends(spare) >= 1  # the worker's connection, mid-run
    finally:
        worker.join(timeout=60)
    assert outcome == ["succeeded"]
    run.refresh_from_db()
    assert run.status == AgentRun.Status.SUCCEEDED
    events = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("seq", "type"))
    assert [seq for seq, _ in events] == list(range(1, len(events) + 1))
    types = [t for _, t in events]
    assert types.count(ev.RUN_STARTED) == 1
    assert types.count(ev.RUN_SUCCEEDED) == 1
    deltas = RunEvent.objects.filter(run=run, type=ev.MESSAGE_DELTA).order_by("seq")
    text = "".join(e.data["delta"] for e in deltas)
    assert text == f"Echo: {WORDS}"  # every delta once, in order


def test_a_batch_whose_commit_was_not_confirmed_is_not_written_twice(user, mock_agent):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="hello")
    assert agent_run_claim(run_id=run.id)
    run_event_append(run_id=run.id, type=ev.RUN_STARTED, data={})
    batch = [(ev.AGENT_UPDATED, {"agent": "Echo"}, False, None)]

    # Committed, but the worker never heard back (the connection died after the commit).
    assert run_sink.append(run.id, batch).seq == 2
    assert run_sink.append_again(run.id, batch, None).seq == 2  # before the worker's 1st batch
    assert run_sink.append_again(run.id, batch, 1).seq == 2
    # Not committed: written now.
    more = [(ev.MESSAGE_DELTA, {"agent": "Echo", "delta": "hi"}, True, None)]
    assert run_sink.append_again(run.id, more, 2).seq == 3
    assert list(
        RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True)
    ) == [
        ev.RUN_STARTED,
        ev.AGENT_UPDATED,
        ev.MESSAGE_DELTA,
    ]


@pytest.mark.parametrize("step", ["agent_run_claim", "_start"])
def test_a_claim_or_start_whose_commit_was_not_confirmed_is_not_done_twice(
    step, user, mock_agent, monkeypatch, settings
):
    settings.RECONNECT_MAX_DELAY_SECONDS = 0.05
    run, _ = agent_run_start(user=user, agent=mock_agent, input="hello")
    real = getattr(execution, step)
    failures = [
        psycopg.OperationalError(
            "consuming input failed: server closed the connection unexpectedly"
        )
    ]

    def committed_then_lost(*args, **kwargs):
        result = real(*args, **kwargs)
        if failures:  # the first call: committed, but the worker never heard back
            raise failures.pop()
        return result

    monkeypatch.setattr(execution, step, committed_then_lost)
    # Not "skipped" (the run would stay running with nobody on it until reaped).
    assert execute_run(str(run.id)) == "succeeded"
    assert not failures
    types = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True))
    assert types.count(ev.RUN_STARTED) == 1, types
    assert types[-1] == ev.RUN_SUCCEEDED
