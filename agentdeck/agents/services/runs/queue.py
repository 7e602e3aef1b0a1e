"""The run queue: a run is announced to the run workers when it becomes ``queued``
(``run_queue_notify``) and taken by exactly one of them with a conditional UPDATE
(``agent_run_claim``, ``agent_runs_claim``); a worker then keeps its runs' heartbeat fresh."""

from __future__ import annotations

import os
import socket
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from agentdeck.agents.models import AgentRun

Status = AgentRun.Status


# The channel run workers LISTEN on (agentdeck.agents.worker).
RUN_QUEUE_CHANNEL = "agentdeck_runs"


def run_queue_notify() -> None:
    """Wake the run workers: a run became ``queued``. Called inside the transaction that queued
    it; PostgreSQL delivers a NOTIFY at commit and drops it on rollback, so no worker looks
    for a run that is not there (and identical notifications of one transaction arrive once).
    A worker that misses it (not listening at that moment) finds the run at its next poll."""
    with connection.cursor() as cursor:
        cursor.execute(f"NOTIFY {RUN_QUEUE_CHANNEL}")


# The claim of one run, as a constant statement (the ORM compiled the UPDATE on every run).
_CLAIM_SQL = """
    UPDATE agent_runs
       SET status = %(running)s, started_at = %(now)s, heartbeat_at = %(now)s,
           attempts = attempts + 1, worker = %(worker)s
     WHERE id = %(run_id)s AND status = %(queued)s
"""


def worker_name() -> str:
    """What a claim writes in ``AgentRun.worker``: this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def agent_run_claim(*, run_id: UUID | str) -> bool:
    """queued -> running, for exactly one worker: a task delivered twice runs once. ``run_id``:
    a str from the django-q2 task (``tasks.execute_run``) or ``benchmarks/ws_fanout.py``."""
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
        claimed: bool = cursor.rowcount == 1
        return claimed


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


def agent_runs_claim(*, limit: int, worker: str, per_user_cap: int) -> list[UUID]:
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


def agent_runs_held(*, worker: str) -> list[UUID]:
    """The runs ``worker`` holds (``running``, claimed by it), oldest first."""
    return list(
        AgentRun.objects.filter(status=Status.RUNNING, worker=worker)
        .order_by("started_at")
        .values_list("id", flat=True)
    )


def agent_runs_heartbeat(*, run_ids: list[UUID]) -> dict[UUID, bool]:
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
