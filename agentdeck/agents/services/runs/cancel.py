"""Cancelling a run at its owner's request: at once while it is queued, else at its worker's next
event or heartbeat."""

from __future__ import annotations

from django.utils import timezone

from agentdeck.agents.exceptions import RunNotCancellable
from agentdeck.agents.models import AgentRun
from agentdeck.agents.models.run import ACTIVE_STATUSES, TERMINAL_STATUSES
from agentdeck.agents.runtime.sink import RunOutcome
from agentdeck.agents.services.runs.execution import agent_run_finish

Status = AgentRun.Status


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
