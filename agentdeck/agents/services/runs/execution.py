"""Executing a claimed run: begin (its pinned version read, its first event written), run the SDK,
settle (paused for approvals, or finished with its credits settled). The run worker
(``agentdeck.agents.worker``) does this for many runs at once; ``agent_run_execute`` for one."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any, cast
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from agentdeck.agents.models import AgentRun, AgentVersion, RunEvent
from agentdeck.agents.models.run import ACTIVE_STATUSES
from agentdeck.agents.runtime import events as ev
from agentdeck.agents.runtime.sink import RunOutcome
from agentdeck.agents.services.runs.approvals import agent_run_pause
from agentdeck.agents.services.runs.events import (
    run_event_append,
    run_events_append_many,
    run_status_publish,
)
from agentdeck.agents.services.runs.queue import agent_run_claim, worker_name
from agentdeck.core.jsonsafe import pg_json_safe
from agentdeck.core.lookups import PkLookup
from agentdeck.credits.services import credits_settle

logger = logging.getLogger(__name__)

Status = AgentRun.Status

# A run's final write, as a constant statement (the ORM compiled the UPDATE, JSON values
# included, on every run).
_FINISH_SQL = """
    UPDATE agent_runs
       SET resume_state = '', status = %(status)s, output = %(output)s::jsonb,
           last_agent = %(last_agent)s, usage = %(usage)s::jsonb, error_code = %(code)s,
           error_message = %(message)s, finished_at = %(now)s
     WHERE id = %(run_id)s AND status = ANY(%(from_statuses)s)
"""


# The rows every run's worker reads first (agentdeck.core.lookups).
_run_get = PkLookup(AgentRun)
_version_get = PkLookup(AgentVersion)


def agent_run_execute(*, run_id: UUID | str) -> str:
    """Claim, run the SDK, settle, on a loop of the caller's own (a django-q2 task, a test; the
    run worker does the same for many runs at once, ``agentdeck.agents.worker``). Returns the
    final status, or ``"skipped"`` when the run was already claimed (a run is executed once).
    ``run_id``: a str when it comes from the django-q2 task (``tasks.execute_run``)."""
    from agentdeck.agents.runtime.executor import execute
    from agentdeck.agents.services.run_sink import run_sink
    from agentdeck.core.reconnect import Outage, call_until_reachable

    claimed = call_until_reachable(
        lambda: agent_run_claim(run_id=run_id),
        again=lambda: agent_run_claim(run_id=run_id) or _claimed_here(run_id),
        outage=Outage(f"run {run_id}: database", logger),
        give_up_after=settings.RUN_STALE_AFTER_SECONDS,
    )
    if not claimed:
        logger.info("run %s not claimed (already taken or no longer queued)", run_id)
        return "skipped"
    run = agent_run_begin(run_id=run_id)
    outcome = execute(run, sink=run_sink)
    agent_run_settle(run=run, outcome=outcome)
    return outcome.status


# Begin and settle each survive a database restart: tried again while PostgreSQL is unreachable,
# since failing there would leave the run running until reaped. A failed attempt may have
# committed just before its connection died, so a later attempt must not do it twice: the start
# checks what the first one did; the settling writes are conditional on the run's status and
# change nothing a second time.


def agent_run_begin(*, run_id: UUID | str, again: bool = False) -> AgentRun:
    """A claimed run, ready to execute: its pinned version read and its first event
    (``run.started`` / ``run.resumed``) written. ``again``: an earlier attempt may have written
    it (``agent_runs_begin`` failed with its connection)."""
    from agentdeck.core.reconnect import Outage, call_until_reachable

    return call_until_reachable(
        lambda: _start(run_id, again=again),
        again=lambda: _start(run_id, again=True),
        outage=Outage(f"run {run_id}: database", logger),
        give_up_after=settings.RUN_STALE_AFTER_SECONDS,
    )


def agent_run_settle(*, run: AgentRun, outcome: RunOutcome) -> None:
    """Record an executed run's outcome: paused for approvals, or finished (status, usage,
    credits, the terminal event), then its trace spans."""
    from agentdeck.core.reconnect import Outage, call_until_reachable

    if outcome.status == Status.REQUIRES_ACTION:
        settle = lambda: agent_run_pause(run_id=run.id, outcome=outcome)  # noqa: E731
    else:
        settle = lambda: agent_run_finish(run_id=run.id, outcome=outcome, run=run)  # noqa: E731
    call_until_reachable(
        settle,
        outage=Outage(f"run {run.id}: database", logger),
        give_up_after=settings.RUN_STALE_AFTER_SECONDS,
    )
    try:
        from agentdeck.analytics.tracing import get_span_processor

        processor = get_span_processor()
        if processor is not None:
            processor.flush_run(run.id)
    except Exception:  # spans are diagnostics; losing them must not fail the run
        logger.warning("could not store trace spans of run %s", run.id, exc_info=True)


def agent_runs_begin(*, run_ids: list[UUID]) -> list[AgentRun]:
    """``agent_run_begin`` for the runs a worker claimed together: one read of the runs with
    their versions and one statement for all their first events (``run_events_append_many``),
    instead of two reads and a transaction each. Not retried: on failure the caller begins each
    run with ``agent_run_begin(again=True)`` (the statement may have committed)."""
    # With their holds: the executor reads each run's spending cap (RunSink.budget).
    runs = list(AgentRun.objects.filter(pk__in=run_ids).select_related("agent_version", "hold"))
    items = [(run.id, [(*_first_event(run), False)]) for run in runs]
    run_events_append_many(items=items)
    for run in runs:
        run_status_publish(run, Status.RUNNING)
    return runs


def _first_event(run: AgentRun) -> tuple[str, dict[str, Any]]:
    """A run attempt's first event: run.resumed after approvals, else run.started."""
    if run.resume_state:
        return ev.RUN_RESUMED, {"attempt": run.attempts}
    snapshot = run.agent_version.snapshot
    return ev.RUN_STARTED, {
        "agent": snapshot.get("name", ""),
        "model": snapshot.get("model", ""),
        "version": run.agent_version.number,
        "attempt": run.attempts,
    }


def _start(run_id: UUID | str, *, again: bool = False) -> AgentRun:
    """The claimed run with its pinned version, and its first event (run.started/resumed).
    ``again``: an earlier call failed with its connection, perhaps after its commit; the event
    is written only if this attempt of the run has none yet."""
    run = _run_get(run_id)
    if run is None:
        raise AgentRun.DoesNotExist(run_id)
    # The version pinned at the run's start: all the executor reads besides the run itself.
    # Never None: the foreign key is PROTECT, so the version outlives its runs.
    run.agent_version = cast(AgentVersion, _version_get(run.agent_version_id))
    first, data = _first_event(run)
    if (
        again
        and RunEvent.objects.filter(run_id=run.id, type=first, data__attempt=run.attempts).exists()
    ):
        return run
    with transaction.atomic():
        run_status_publish(run, Status.RUNNING)
        run_event_append(run_id=run.id, type=first, data=data)
    return run


def agent_run_finish(
    *,
    run_id: UUID | str,  # str: benchmarks/ws_fanout.py settles runs it was given by id
    outcome: RunOutcome,
    from_statuses: Iterable[str] = ACTIVE_STATUSES,
    run: AgentRun | None = None,
) -> bool:
    """Settle a run in one transaction: final status, output, usage, capturing its cost and
    releasing the rest of its hold, the terminal event. A run that is already terminal
    (cancelled while queued, reaped) is left as it is; returns whether this call won. ``run``:
    the caller's copy, for the owner and agent the status is published to (else read here)."""
    now = timezone.now()
    usage = outcome.usage or {}
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                _FINISH_SQL,
                {
                    "status": outcome.status,
                    # None is SQL NULL, as the ORM stores it in this nullable JSON column.
                    "output": None
                    if outcome.output is None
                    else json.dumps(pg_json_safe(outcome.output)),
                    "last_agent": outcome.last_agent,
                    "usage": json.dumps(pg_json_safe(usage)),
                    "code": outcome.error_code,
                    "message": outcome.error_message[:4000],
                    "now": now,
                    "run_id": run_id,
                    "from_statuses": [str(s) for s in from_statuses],
                },
            )
            if cursor.rowcount != 1:
                return False
        # Capture what the run used and release the rest, in the same transaction.
        credits_settle(run_id=run_id, usage=usage)
        if outcome.status == Status.SUCCEEDED:
            event_type, data = (
                ev.RUN_SUCCEEDED,
                {"output": outcome.output, "last_agent": outcome.last_agent, "usage": usage},
            )
        elif outcome.status == Status.CANCELLED:
            event_type, data = ev.RUN_CANCELLED, {"usage": usage}
        else:
            event_type, data = (
                ev.RUN_FAILED,
                {"code": outcome.error_code, "message": outcome.error_message, "usage": usage},
            )
        run_event_append(run_id=run_id, type=event_type, data=data)
        if run is None:
            run = AgentRun.objects.only("id", "owner_id", "agent_id").get(pk=run_id)
        run_status_publish(run, outcome.status, outcome.error_code)
    return True


def _claimed_here(run_id: UUID | str) -> bool:
    """Whether this process holds the run: a claim whose commit was not confirmed took effect."""
    return AgentRun.objects.filter(pk=run_id, status=Status.RUNNING, worker=worker_name()).exists()
