"""Runs: start, execute, cancel, reap. The state machine is documented on ``AgentRun``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from agentdeck.accounts.models import User
from agentdeck.agents.exceptions import (
    AgentSuspended,
    ConversationBusy,
    IdempotencyConflict,
    InputTooLarge,
    InvalidReference,
    RunNotCancellable,
)
from agentdeck.agents.models import (
    Agent,
    AgentMetadata,
    AgentRun,
    AgentVersion,
    Conversation,
    RunEvent,
    ToolCall,
)
from agentdeck.agents.models.run import ACTIVE_STATUSES, TERMINAL_STATUSES
from agentdeck.agents.runtime import events as ev
from agentdeck.agents.runtime.sink import AppendResult, RunOutcome
from agentdeck.core.jsonsafe import pg_json_safe
from agentdeck.core.lookups import PkLookup
from agentdeck.core.realtime import notify_user_on_commit, publish_on_commit, run_group
from agentdeck.credits.services import credits_hold, credits_settle, run_hold_plan

logger = logging.getLogger(__name__)

Status = AgentRun.Status


# --- the event log ------------------------------------------------------------------------------


def run_event_append(
    *, run_id: Any, type: str, data: dict[str, Any], first_token: bool = False
) -> AppendResult:
    """Persist one event at the next gapless ``seq`` and publish it after commit (see
    ``run_events_append``)."""
    return run_events_append(run_id=run_id, events=[(type, data, first_token)])


# Several events in one statement: the seqs come from one ``UPDATE agent_runs SET next_seq =
# next_seq + n ... RETURNING``, the rows from one JSON document (one json.dumps, no per-value
# quoting in Python), each row numbered by its place in it.
_APPEND_SQL = """
    WITH run AS (
        UPDATE agent_runs
           SET next_seq = next_seq + %(n)s,
               heartbeat_at = CASE WHEN status = 'running' THEN clock_timestamp() ELSE heartbeat_at END,
               first_token_at = CASE WHEN %(first_token)s AND first_token_at IS NULL
                                     THEN clock_timestamp() ELSE first_token_at END
         WHERE id = %(run_id)s
     RETURNING id, next_seq, status, cancel_requested_at IS NOT NULL AS cancel_requested
    ), event AS (
        INSERT INTO run_events (run_id, seq, type, data, created_at)
        SELECT run.id, run.next_seq - %(n)s + e.ord, e.item ->> 'type', e.item -> 'data',
               clock_timestamp()
          FROM run, jsonb_array_elements(%(events)s::jsonb) WITH ORDINALITY AS e(item, ord)
     RETURNING seq, created_at
    )
    SELECT run.next_seq, run.status, run.cancel_requested,
           (SELECT array_agg(created_at ORDER BY seq) FROM event)
      FROM run
"""


def run_events_append(
    *, run_id: Any, events: list[tuple[str, dict[str, Any], bool]]
) -> AppendResult:
    """Persist ``events`` (type, data, first_token) at the next gapless ``seq``s, in order, in
    one statement, and publish each after commit. Returns the last one's seq.

    The seqs come from ``UPDATE agent_runs SET next_seq = next_seq + n ... RETURNING``: the row
    lock serialises writers and a rolled-back statement gives its numbers back, so there is
    never a gap or a duplicate. The same statement refreshes the heartbeat and reports a
    pending cancel, which is how the worker notices cancellation between events at no extra
    cost. Times use clock_timestamp(), not now(): now() is frozen at the transaction's start.
    One statement, so one round trip and, outside a transaction, one commit (it was BEGIN,
    UPDATE, INSERT, COMMIT per event: four round trips each)."""
    prepared, document = _prepare_events(events)
    with connection.cursor() as cursor:
        cursor.execute(
            _APPEND_SQL,
            {
                "n": len(prepared),
                "first_token": any(first for _, _, first in events),
                "run_id": run_id,
                "events": document,
            },
        )
        row = cursor.fetchone()
    if row is None:
        raise AgentRun.DoesNotExist(run_id)
    last_seq, status, cancel_requested, created = row
    _publish_events(run_id, prepared, last_seq, created)
    return AppendResult(seq=last_seq, status=status, cancel_requested=cancel_requested)


# The events of several runs in one statement: _APPEND_SQL for each run of the document, the
# runs' rows locked in id order first, so two such statements (or this and the heartbeat's) never
# wait for each other's rows in opposite orders.
_APPEND_MANY_SQL = """
    WITH input AS (
        SELECT (x ->> 'run_id')::uuid AS run_id, (x ->> 'n')::int AS n,
               (x ->> 'first_token')::boolean AS first_token, x -> 'events' AS events
          FROM jsonb_array_elements(%(items)s::jsonb) AS t(x)
    ), locked AS (
        SELECT r.id FROM agent_runs r
         WHERE r.id IN (SELECT run_id FROM input)
         ORDER BY r.id
           FOR UPDATE
    ), run AS (
        UPDATE agent_runs r
           SET next_seq = r.next_seq + i.n,
               heartbeat_at = CASE WHEN r.status = 'running' THEN clock_timestamp()
                                   ELSE r.heartbeat_at END,
               first_token_at = CASE WHEN i.first_token AND r.first_token_at IS NULL
                                     THEN clock_timestamp() ELSE r.first_token_at END
          FROM input i
         WHERE r.id = i.run_id AND r.id IN (SELECT id FROM locked)
     RETURNING r.id, r.next_seq, r.status, r.cancel_requested_at IS NOT NULL AS cancel_requested,
               i.n, i.events
    ), event AS (
        INSERT INTO run_events (run_id, seq, type, data, created_at)
        SELECT run.id, run.next_seq - run.n + e.ord, e.item ->> 'type', e.item -> 'data',
               clock_timestamp()
          FROM run, jsonb_array_elements(run.events) WITH ORDINALITY AS e(item, ord)
     RETURNING run_id, seq, created_at
    )
    SELECT run.id, run.next_seq, run.status, run.cancel_requested,
           (SELECT array_agg(event.created_at ORDER BY event.seq) FROM event
             WHERE event.run_id = run.id)
      FROM run
"""


def run_events_append_many(
    *, items: list[tuple[Any, list[tuple[str, dict[str, Any], bool]]]]
) -> dict[str, AppendResult]:
    """``run_events_append`` for several runs at once (each run at most once in ``items``), in
    one statement: the run worker's event writes of concurrent runs that arrive together.
    Returns each written run's result by its id as a string; a run missing from it does not
    exist."""
    prepared = {}
    parts = []
    for run_id, events in items:
        key = str(run_id)
        prepared[key], document = _prepare_events(events)
        flags = json.dumps(
            {"run_id": key, "n": len(events), "first_token": any(f for *_, f in events)}
        )
        parts.append(f'{flags[:-1]}, "events": {document}}}')
    with connection.cursor() as cursor:
        cursor.execute(_APPEND_MANY_SQL, {"items": "[{}]".format(",".join(parts))})
        rows = cursor.fetchall()
    results = {}
    for run_id, last_seq, status, cancel_requested, created in rows:
        key = str(run_id)
        _publish_events(key, prepared[key], last_seq, created)
        results[key] = AppendResult(seq=last_seq, status=status, cancel_requested=cancel_requested)
    return results


def _prepare_events(
    events: list[tuple[str, dict[str, Any], bool]],
) -> tuple[list[tuple[str, dict[str, Any], str]], str]:
    """Each event's JSON-safe data and its JSON, and the log document of them all (one
    json.dumps per event, no per-value quoting in Python)."""
    prepared = []
    for event_type, data, _ in events:
        data = pg_json_safe(data)
        prepared.append((event_type, data, json.dumps(data)))
    document = "[{}]".format(
        ",".join(
            f'{{"type": {json.dumps(event_type)}, "data": {body}}}'
            for event_type, _, body in prepared
        )
    )
    return prepared, document


def _publish_events(
    run_id: Any, prepared: list[tuple[str, dict[str, Any], str]], last_seq: int, created: list
) -> None:
    first_seq = last_seq - len(prepared) + 1
    for offset, (event_type, data, body) in enumerate(prepared):
        message = {
            "type": "run.event",
            "run_id": str(run_id),
            "seq": first_seq + offset,
            "event_type": event_type,
            "created_at": created[offset].isoformat(),
            "data": data,
        }
        if len(body) > settings.RUN_EVENT_LIVE_MAX_CHARS:
            # Big events travel as a bare wake-up; listeners read them from the log. This keeps
            # channel-layer messages within what the layer carries well (see the setting).
            message["data"] = None
            message["in_log"] = True
        publish_on_commit(run_group(run_id), message)


def _publish_status(run: AgentRun | Any, status: str, error_code: str = "") -> None:
    notify_user_on_commit(
        run.owner_id,
        "run.status",
        {
            "run_id": str(run.id),
            "agent_id": str(run.agent_id),
            "status": status,
            "error_code": error_code,
        },
    )


# --- start ---------------------------------------------------------------------------------------


def request_fingerprint(agent_id: Any, body: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"agent": str(agent_id), **body}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _constraint_name(error: IntegrityError) -> str:
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", "") or ""


def agent_run_start(
    *,
    user: User,
    agent: Agent,
    input: str | list[dict[str, Any]],
    conversation: Conversation | None = None,
    mode: str = AgentRun.Mode.BACKGROUND,
    max_turns: int = 10,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> tuple[AgentRun, bool]:
    """Queue a run of ``agent``'s current version; returns (run, created).

    1. Refuse a suspended agent (409), an oversized input (413), a foreign conversation (400).
    2. Replay: the same Idempotency-Key with the same request returns the first run
       (created=False); with a different request, 409 ``idempotency_conflict``.
    3. In one transaction: pin the current version, insert the run (``queued``), count it in
       the agent's metadata, and wake the run workers at commit (``run_queue_notify``).
    The database settles races: a concurrent duplicate key or a second run on a busy
    conversation fails the INSERT on a partial unique index, and is answered like the above.
    """
    metadata = metadata or {}
    body = {
        "input": input,
        "conversation_id": str(conversation.id) if conversation else None,
        "mode": mode,
        "max_turns": max_turns,
        "metadata": metadata,
    }
    fingerprint = request_fingerprint(agent.id, body)
    if idempotency_key:
        existing = AgentRun.objects.filter(owner=user, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _replay(existing, fingerprint), False
    if agent.status != Agent.Status.ACTIVE:
        raise AgentSuspended("This agent is suspended and cannot run.")
    size = len(json.dumps(input).encode())
    if size > settings.RUN_INPUT_MAX_BYTES:
        raise InputTooLarge(
            f"Input is {size} bytes; the limit is {settings.RUN_INPUT_MAX_BYTES}.",
            extra={"limit_bytes": settings.RUN_INPUT_MAX_BYTES, "size_bytes": size},
        )
    if conversation is not None:
        if conversation.owner_id != user.pk or conversation.agent_id != agent.id:
            raise InvalidReference(
                "Unknown conversation for this agent.", code="invalid_conversation"
            )
        if AgentRun.objects.filter(conversation=conversation, status__in=ACTIVE_STATUSES).exists():
            raise ConversationBusy("A run is already in flight on this conversation.")

    hold_plan = run_hold_plan(agent=agent, input_chars=size, max_turns=max_turns)
    try:
        with transaction.atomic():
            version = AgentVersion.objects.get(agent=agent, number=agent.current_version)
            run = AgentRun.objects.create(
                owner=user,
                agent=agent,
                agent_version=version,
                conversation=conversation,
                mode=mode,
                input=pg_json_safe(input),
                max_turns=max_turns,
                metadata=metadata,
                idempotency_key=idempotency_key or None,
                request_hash=fingerprint,
            )
            # No cover, no run: a 402 here rolls back the run row, so nothing is left behind.
            hold = credits_hold(user_id=user.pk, run_id=run.id, plan=hold_plan)
            # The response shows the run's cost: it knows the hold (or that there is none).
            AgentRun.hold.related.set_cached_value(run, hold)
            AgentMetadata.objects.filter(agent=agent).update(
                run_count=F("run_count") + 1, last_run_at=timezone.now()
            )
            _publish_status(run, Status.QUEUED)
            run_queue_notify()
    except IntegrityError as e:
        name = _constraint_name(e)
        if name == "agent_runs_owner_idempotency_unique":
            existing = AgentRun.objects.get(owner=user, idempotency_key=idempotency_key)
            return _replay(existing, fingerprint), False
        if name == "agent_runs_one_active_per_conversation":
            raise ConversationBusy("A run is already in flight on this conversation.") from None
        raise
    return run, True


def _replay(existing: AgentRun, fingerprint: str) -> AgentRun:
    if existing.request_hash != fingerprint:
        raise IdempotencyConflict(
            "This Idempotency-Key was used with a different request.",
            extra={"run_id": str(existing.id)},
        )
    return existing


# The channel run workers LISTEN on (agentdeck.agents.worker).
RUN_QUEUE_CHANNEL = "agentdeck_runs"


def run_queue_notify() -> None:
    """Wake the run workers: a run became ``queued``. Called inside the transaction that queued
    it; PostgreSQL delivers a NOTIFY at commit and drops it on rollback, so no worker looks
    for a run that is not there (and identical notifications of one transaction arrive once).
    A worker that misses it (not listening at that moment) finds the run at its next poll."""
    with connection.cursor() as cursor:
        cursor.execute(f"NOTIFY {RUN_QUEUE_CHANNEL}")


# --- execute -------------------------------------------------------------------------------------


# The worker's two writes of every run's row, as constant statements (the ORM compiled each
# UPDATE, F() and JSON values included, on every run).
_CLAIM_SQL = """
    UPDATE agent_runs
       SET status = %(running)s, started_at = %(now)s, heartbeat_at = %(now)s,
           attempts = attempts + 1, worker = %(worker)s
     WHERE id = %(run_id)s AND status = %(queued)s
"""
_FINISH_SQL = """
    UPDATE agent_runs
       SET resume_state = '', status = %(status)s, output = %(output)s::jsonb,
           last_agent = %(last_agent)s, usage = %(usage)s::jsonb, error_code = %(code)s,
           error_message = %(message)s, finished_at = %(now)s
     WHERE id = %(run_id)s AND status = ANY(%(from_statuses)s)
"""


def worker_name() -> str:
    """What a claim writes in ``AgentRun.worker``: this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def agent_run_claim(*, run_id: Any) -> bool:
    """queued -> running, for exactly one worker: a task delivered twice runs once."""
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {
                "running": Status.RUNNING,
                "now": timezone.now(),
                "worker": worker_name(),
                "run_id": run_id,
                "queued": Status.QUEUED,
            },
        )
        return cursor.rowcount == 1


# Claim up to %(limit)s queued runs, oldest first, without letting a user hold more than
# %(cap)s running runs (across all workers). Per user with queued runs, only the room that user
# has left is taken (its oldest runs), so a user with thousands queued neither runs more than
# the cap nor keeps other users' runs from being claimed. The caller holds RUN_CLAIM_LOCK for
# the transaction, so two workers cannot both count the same free room; SKIP LOCKED passes over
# a run another transaction holds (a cancel in flight), and the UPDATE re-checks the status.
_CLAIM_BATCH_SQL = """
    WITH owners AS (
        SELECT DISTINCT owner_id FROM agent_runs WHERE status = 'queued'
    ), room AS (
        SELECT o.owner_id,
               %(cap)s - (SELECT count(*) FROM agent_runs a
                           WHERE a.owner_id = o.owner_id AND a.status = 'running') AS free
          FROM owners o
    ), candidates AS (
        SELECT q.id, q.created_at
          FROM room, LATERAL (
                SELECT id, created_at FROM agent_runs
                 WHERE owner_id = room.owner_id AND status = 'queued'
                 ORDER BY created_at
                 LIMIT greatest(room.free, 0)
          ) q
         ORDER BY q.created_at
         LIMIT %(limit)s
    ), locked AS (
        SELECT id FROM agent_runs WHERE id IN (SELECT id FROM candidates)
           FOR UPDATE SKIP LOCKED
    )
    UPDATE agent_runs r
       SET status = 'running', started_at = %(now)s, heartbeat_at = %(now)s,
           attempts = attempts + 1, worker = %(worker)s
      FROM locked
     WHERE r.id = locked.id AND r.status = 'queued'
 RETURNING r.id
"""
# pg_advisory_xact_lock key for claims: "agentdeck run claims" (any constant shared by workers).
RUN_CLAIM_LOCK = 0x61676E74_636C6D


def agent_runs_claim(*, limit: int, worker: str, per_user_cap: int) -> list[Any]:
    """queued -> running for up to ``limit`` runs, for this worker only (the conditional UPDATE
    of ``agent_run_claim``, many at once); ``per_user_cap`` <= 0: no cap. Returns their ids,
    oldest first."""
    if limit <= 0:
        return []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RUN_CLAIM_LOCK])
        cursor.execute(
            _CLAIM_BATCH_SQL,
            {
                "limit": limit,
                "cap": per_user_cap if per_user_cap > 0 else 2**31 - 1,
                "now": timezone.now(),
                "worker": worker,
            },
        )
        return [row[0] for row in cursor.fetchall()]


def agent_runs_held(*, worker: str) -> list[Any]:
    """The runs ``worker`` holds (``running``, claimed by it), oldest first."""
    return list(
        AgentRun.objects.filter(status=Status.RUNNING, worker=worker)
        .order_by("started_at")
        .values_list("id", flat=True)
    )


def agent_runs_heartbeat(*, run_ids: list[Any]) -> dict[Any, bool]:
    """Refresh the heartbeat of a worker's running runs in one statement. Returns, for each run
    still ``running``, whether a cancel is pending; a run missing from it left ``running``
    under its worker (reaped, or settled elsewhere)."""
    if not run_ids:
        return {}
    with connection.cursor() as cursor:
        # Rows locked in id order, as the worker's batched event writes lock them.
        cursor.execute(
            "WITH locked AS (SELECT id FROM agent_runs WHERE id = ANY(%s) AND status = 'running' "
            "ORDER BY id FOR UPDATE) "
            "UPDATE agent_runs SET heartbeat_at = clock_timestamp() "
            "WHERE id IN (SELECT id FROM locked) "
            "RETURNING id, cancel_requested_at IS NOT NULL",
            [list(run_ids)],
        )
        return {row[0]: bool(row[1]) for row in cursor.fetchall()}


# The rows every run's worker reads first (agentdeck.core.lookups).
_run_get = PkLookup(AgentRun)
_version_get = PkLookup(AgentVersion)


def agent_run_execute(*, run_id: Any) -> str:
    """Claim, run the SDK, settle, on a loop of the caller's own (a django-q2 task, a test; the
    run worker does the same for many runs at once, ``agentdeck.agents.worker``). Returns the
    final status, or ``"skipped"`` when the run was already claimed (a run is executed once)."""
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


def agent_run_begin(*, run_id: Any, again: bool = False) -> AgentRun:
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


def _claimed_here(run_id: Any) -> bool:
    """Whether this process holds the run: a claim whose commit was not confirmed took effect."""
    return AgentRun.objects.filter(pk=run_id, status=Status.RUNNING, worker=worker_name()).exists()


def agent_runs_begin(*, run_ids: list[Any]) -> list[AgentRun]:
    """``agent_run_begin`` for the runs a worker claimed together: one read of the runs with
    their versions and one statement for all their first events (``run_events_append_many``),
    instead of two reads and a transaction each. Not retried: on failure the caller begins each
    run with ``agent_run_begin(again=True)`` (the statement may have committed)."""
    # With their holds: the executor reads each run's spending cap (RunSink.budget).
    runs = list(AgentRun.objects.filter(pk__in=run_ids).select_related("agent_version", "hold"))
    items = [(run.id, [(*_first_event(run), False)]) for run in runs]
    run_events_append_many(items=items)
    for run in runs:
        _publish_status(run, Status.RUNNING)
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


def _start(run_id: Any, *, again: bool = False) -> AgentRun:
    """The claimed run with its pinned version, and its first event (run.started/resumed).
    ``again``: an earlier call failed with its connection, perhaps after its commit; the event
    is written only if this attempt of the run has none yet."""
    run = _run_get(run_id)
    if run is None:
        raise AgentRun.DoesNotExist(run_id)
    # The version pinned at the run's start: all the executor reads besides the run itself.
    run.agent_version = _version_get(run.agent_version_id)
    first, data = _first_event(run)
    if (
        again
        and RunEvent.objects.filter(run_id=run.id, type=first, data__attempt=run.attempts).exists()
    ):
        return run
    with transaction.atomic():
        _publish_status(run, Status.RUNNING)
        run_event_append(run_id=run.id, type=first, data=data)
    return run


def agent_run_finish(
    *, run_id: Any, outcome: RunOutcome, from_statuses=ACTIVE_STATUSES, run: AgentRun | None = None
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
        _publish_status(run, outcome.status, outcome.error_code)
    return True


# --- tool calls and approvals ---------------------------------------------------------------------

TOOL_OUTPUT_MAX_CHARS = 64_000
_FAILURE_PREFIXES = ("error:", "An error occurred while running the tool")


def tool_call_started(
    *,
    run_id: Any,
    call_id: str,
    tool_name: str,
    agent_name: str,
    arguments: Any,
    tool_id: str | None = None,
) -> None:
    """Record a call as it starts (idempotent per (run, call_id): an approved call that was
    recorded as pending moves on to started)."""
    now = timezone.now()
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = {"_raw": arguments}
    # One statement: a new call is inserted; an approved call that was recorded as pending
    # moves on to started; a rejected one stays rejected (the SDK still reports it).
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO tool_calls (run_id, call_id, agent_name, tool_id, tool_name, arguments,
                                    status, output, output_size, error, approval_message,
                                    started_at, created_at)
            VALUES (%s, %s, %s, %s, %s, %s::jsonb, 'started', '', 0, '', '', %s, %s)
            ON CONFLICT (run_id, call_id) DO UPDATE
               SET status = 'started', started_at = EXCLUDED.started_at
             WHERE tool_calls.status = 'pending_approval'
            """,
            [
                run_id,
                call_id,
                agent_name,
                tool_id,
                tool_name,
                json.dumps(pg_json_safe(arguments)),
                now,
                now,
            ],
        )
    if tool_id:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE tools SET last_used_at = %s WHERE id = %s", [now, tool_id])


# One constant statement (the ORM compiled its Case/When expressions on every call: 12% of the
# worker's busy time per run in py-spy). A rejected call keeps its status, duration and error
# (the SDK reports the rejection as the call's output); every CASE reads the row as it was.
_TOOL_CALL_FINISHED_SQL = """
    UPDATE tool_calls
       SET output = %(output)s, output_size = %(size)s, finished_at = %(now)s,
           duration_ms = CASE WHEN status = 'rejected' THEN duration_ms ELSE %(duration)s END,
           error = CASE WHEN status = 'rejected' THEN error ELSE %(error)s END,
           status = CASE WHEN status = 'rejected' THEN status ELSE %(status)s END
     WHERE run_id = %(run_id)s AND call_id = %(call_id)s
"""


def tool_call_finished(
    *, run_id: Any, call_id: str, output: Any, duration_ms: float | None
) -> None:
    text = output if isinstance(output, str) else json.dumps(output, default=str)
    failed = text.startswith(_FAILURE_PREFIXES)
    with connection.cursor() as cursor:
        cursor.execute(
            _TOOL_CALL_FINISHED_SQL,
            {
                "output": pg_json_safe(text[:TOOL_OUTPUT_MAX_CHARS]),
                "size": len(text),
                "now": timezone.now(),
                "duration": float(duration_ms) if duration_ms is not None else None,
                "error": pg_json_safe(text[:2000]) if failed else "",
                "status": ToolCall.Status.FAILED if failed else ToolCall.Status.SUCCEEDED,
                "run_id": run_id,
                "call_id": call_id,
            },
        )


def agent_run_pause(*, run_id: Any, outcome: RunOutcome) -> bool:
    """running -> requires_action: keep the SDK state, list the calls waiting for a person,
    start the approval clock, and tell listeners (``approval.required``)."""
    pending = outcome.pending_approvals or []
    deadline = timezone.now() + timedelta(seconds=settings.APPROVAL_TIMEOUT_SECONDS)
    with transaction.atomic():
        updated = AgentRun.objects.filter(pk=run_id, status=Status.RUNNING).update(
            status=Status.REQUIRES_ACTION,
            resume_state=outcome.resume_state,
            pending_approvals=pg_json_safe(pending),
            approval_deadline=deadline,
            usage=outcome.usage or {},
            last_agent=outcome.last_agent,
        )
        if not updated:
            return False
        for call in pending:
            ToolCall.objects.update_or_create(
                run_id=run_id,
                call_id=call["call_id"],
                defaults={
                    "tool_name": call["tool"],
                    "agent_name": call.get("agent", ""),
                    "arguments": pg_json_safe(call["arguments"])
                    if isinstance(call["arguments"], dict)
                    else {"_raw": call["arguments"]},
                    "status": ToolCall.Status.PENDING_APPROVAL,
                },
            )
        run_event_append(
            run_id=run_id,
            type=ev.APPROVAL_REQUIRED,
            data={"calls": pending, "expires_at": deadline.isoformat()},
        )
        run = AgentRun.objects.only("id", "owner_id", "agent_id").get(pk=run_id)
        _publish_status(run, Status.REQUIRES_ACTION)
    return True


def agent_run_approve(*, run: AgentRun, decisions: list[dict[str, Any]]) -> AgentRun:
    """Answer pending calls: ``[{"call_id", "approved": bool, "message"?}]``. When every pending
    call has an answer the run goes back on the queue (requires_action -> queued) and resumes
    from its stored state; until then answers accumulate."""
    from agentdeck.core.exceptions import Conflict

    with transaction.atomic():
        run = AgentRun.objects.select_for_update().get(pk=run.pk)
        if run.status != Status.REQUIRES_ACTION:
            raise Conflict(
                f"The run is {run.status}; it is not waiting for approvals.", code="run_not_waiting"
            )
        pending = {p["call_id"]: dict(p) for p in run.pending_approvals}
        unknown = [d["call_id"] for d in decisions if d["call_id"] not in pending]
        if unknown:
            raise InvalidReference(
                f"Not pending on this run: {', '.join(unknown)}.", code="invalid_call_id"
            )
        for decision in decisions:
            entry = pending[decision["call_id"]]
            entry["approved"] = bool(decision["approved"])
            entry["message"] = decision.get("message") or ""
            ToolCall.objects.filter(run=run, call_id=decision["call_id"]).update(
                status=ToolCall.Status.PENDING_APPROVAL
                if decision["approved"]
                else ToolCall.Status.REJECTED,
                approval_message=entry["message"],
            )
        run.pending_approvals = list(pending.values())
        fields = ["pending_approvals", "updated_at"]
        if all("approved" in p for p in run.pending_approvals):
            run.status = Status.QUEUED
            run.approval_deadline = None
            fields += ["status", "approval_deadline"]
            run_event_append(
                run_id=run.id,
                type=ev.APPROVAL_RESOLVED,
                data={
                    "decisions": [
                        {"call_id": p["call_id"], "approved": p["approved"]}
                        for p in run.pending_approvals
                    ]
                },
            )
            _publish_status(run, Status.QUEUED)
            run_queue_notify()
        run.save(update_fields=fields)
    return run


# --- cancel and reap -----------------------------------------------------------------------------


def agent_run_cancel(*, run: AgentRun) -> AgentRun:
    """Cancel a run. A queued run is cancelled at once; a running one is asked to stop and its
    worker ends it ``cancelled`` at the next event (or heartbeat). A finished run: 409."""
    if run.status in TERMINAL_STATUSES:
        raise RunNotCancellable(f"The run already {run.status}.")
    if run.status == Status.QUEUED and agent_run_finish(
        run_id=run.id,
        outcome=RunOutcome(status=Status.CANCELLED),
        from_statuses=(Status.QUEUED,),
        run=run,
    ):
        run.refresh_from_db()
        return run
    AgentRun.objects.filter(
        pk=run.id, status__in=ACTIVE_STATUSES, cancel_requested_at__isnull=True
    ).update(cancel_requested_at=timezone.now())
    # If the run finished in the meantime the request is moot; the caller sees the final state.
    run.refresh_from_db()
    return run


def agent_run_reap_stale(*, stale_after: timedelta | None = None) -> list[str]:
    """Fail running runs whose worker stopped heartbeating (it crashed, was killed, or the Redis
    broker lost the in-flight task: it does not redeliver). Returns the ids reaped.

    ``agent_run_finish`` only moves a run that is still ``running``, so a worker that comes back
    after being reaped cannot overwrite the verdict, and two reapers cannot both settle a run.
    """
    stale_after = stale_after or timedelta(seconds=settings.RUN_STALE_AFTER_SECONDS)
    cutoff = timezone.now() - stale_after
    reaped = []
    for run_id in AgentRun.objects.filter(
        status=Status.RUNNING, heartbeat_at__lt=cutoff
    ).values_list("id", flat=True):
        outcome = RunOutcome(
            status=Status.FAILED,
            error_code="worker_lost",
            error_message=f"The worker stopped heartbeating for over {int(stale_after.total_seconds())} s.",
        )
        if agent_run_finish(run_id=run_id, outcome=outcome, from_statuses=(Status.RUNNING,)):
            reaped.append(str(run_id))
    expired = AgentRun.objects.filter(
        status=Status.REQUIRES_ACTION, approval_deadline__lt=timezone.now()
    )
    for run_id in expired.values_list("id", flat=True):
        outcome = RunOutcome(
            status=Status.FAILED,
            error_code="approval_timeout",
            error_message="Nobody answered the pending approvals in time.",
        )
        if agent_run_finish(
            run_id=run_id, outcome=outcome, from_statuses=(Status.REQUIRES_ACTION,)
        ):
            ToolCall.objects.filter(run_id=run_id, status=ToolCall.Status.PENDING_APPROVAL).update(
                status=ToolCall.Status.EXPIRED
            )
            reaped.append(str(run_id))
    if reaped:
        logger.warning(
            "reaped %d run(s) (worker lost or approvals expired): %s",
            len(reaped),
            ", ".join(reaped),
        )
    return reaped
