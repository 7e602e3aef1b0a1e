"""The reaper (a periodic task, ``agentdeck.agents.tasks.reap_stale_runs``): fails runs whose
worker stopped heartbeating and runs whose approvals nobody answered in time, releasing their
credit holds."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from agentdeck.agents.models import AgentRun, ToolCall
from agentdeck.agents.runtime.sink import RunOutcome
from agentdeck.agents.services.runs.execution import agent_run_finish

logger = logging.getLogger(__name__)

Status = AgentRun.Status


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
