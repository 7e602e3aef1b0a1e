"""The run event log: each event persisted at the next gapless ``seq`` of its run, then published
to the run's group after commit; and the run status notice sent to the run's owner. Listeners
(WebSocket, SSE, polling) read the same log, so a client that reconnects loses nothing."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection

from agentdeck.agents.models import AgentRun
from agentdeck.agents.runtime.sink import AppendResult
from agentdeck.core.jsonsafe import pg_json_safe
from agentdeck.core.realtime import (
    RunEventMessage,
    notify_user_on_commit,
    publish_on_commit,
    run_group,
)


def run_event_append(
    *, run_id: UUID | str, type: str, data: dict[str, Any], first_token: bool = False
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
    *, run_id: UUID | str, events: list[tuple[str, dict[str, Any], bool]]
) -> AppendResult:
    """Persist ``events`` (type, data, first_token) at the next gapless ``seq``s, in order, in
    one statement, and publish each after commit. Returns the last one's seq.

    The seqs come from ``UPDATE agent_runs SET next_seq = next_seq + n ... RETURNING``: the row
    lock serialises writers and a rolled-back statement gives its numbers back, so there is
    never a gap or a duplicate. The same statement refreshes the heartbeat and reports a
    pending cancel, which is how the worker notices cancellation between events at no extra
    cost. Times use clock_timestamp(), not now(): now() is frozen at the transaction's start.
    One statement, so one round trip and, outside a transaction, one commit. ``run_id``: a str
    from ``benchmarks/ws_fanout.py``, which appends to runs it was given by id."""
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
    *, items: list[tuple[UUID, list[tuple[str, dict[str, Any], bool]]]]
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
    run_id: UUID | str,
    prepared: list[tuple[str, dict[str, Any], str]],
    last_seq: int,
    created: list[datetime],
) -> None:
    first_seq = last_seq - len(prepared) + 1
    for offset, (event_type, data, body) in enumerate(prepared):
        message: RunEventMessage = {
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


def run_status_publish(run: AgentRun, status: str, error_code: str = "") -> None:
    """Tell the run's owner its new status (``run.status`` to the user's group, after commit)."""
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
