"""A run's tool calls as the run worker reports them: recorded as they start, completed with their
output (or failure) as they finish. Approvals of calls live in ``approvals``."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from django.db import connection
from django.utils import timezone

from agentdeck.agents.models import ToolCall
from agentdeck.core.jsonsafe import pg_json_safe

TOOL_OUTPUT_MAX_CHARS = 64_000
_FAILURE_PREFIXES = ("error:", "An error occurred while running the tool")


def tool_call_started(
    *,
    run_id: UUID,
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


# One constant statement (the ORM compiled its Case/When expressions on every call, a measurable
# share of the worker's time per run). A rejected call keeps its status, duration and error
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
    *, run_id: UUID, call_id: str, output: Any, duration_ms: float | None
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
