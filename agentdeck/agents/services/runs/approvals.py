"""Tool approvals: a run pauses (``requires_action``) with the calls waiting for a person, and goes
back on the queue once every call has an answer. The reaper expires unanswered ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agentdeck.agents.exceptions import InvalidReference
from agentdeck.agents.models import AgentRun, ToolCall
from agentdeck.agents.runtime import events as ev
from agentdeck.agents.runtime.sink import RunOutcome
from agentdeck.agents.services.runs.events import run_event_append, run_status_publish
from agentdeck.agents.services.runs.queue import run_queue_notify
from agentdeck.core.jsonsafe import pg_json_safe

Status = AgentRun.Status


def agent_run_pause(*, run_id: UUID, outcome: RunOutcome) -> bool:
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
        run_status_publish(run, Status.REQUIRES_ACTION)
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
            run_status_publish(run, Status.QUEUED)
            run_queue_notify()
        run.save(update_fields=fields)
    return run
