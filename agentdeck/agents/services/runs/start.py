"""Starting a run: checks, idempotent replay, and the one transaction that pins the agent's
version, inserts the ``queued`` run, places its credit hold and wakes the run workers."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from agentdeck.accounts.models import User
from agentdeck.agents.exceptions import (
    AgentSuspended,
    ConversationBusy,
    IdempotencyConflict,
    InputTooLarge,
    InvalidReference,
)
from agentdeck.agents.models import Agent, AgentMetadata, AgentRun, AgentVersion, Conversation
from agentdeck.agents.models.run import ACTIVE_STATUSES
from agentdeck.agents.services.runs.events import run_status_publish
from agentdeck.agents.services.runs.queue import run_queue_notify
from agentdeck.core.jsonsafe import pg_json_safe
from agentdeck.credits.services import credits_hold, run_hold_plan

Status = AgentRun.Status


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
            run_status_publish(run, Status.QUEUED)
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
