from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from agentdeck.core.models import TimestampedModel

ACTIVE_STATUSES = ("queued", "running", "requires_action")
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")


class AgentRun(TimestampedModel):
    """One execution of an agent version.

    State machine (every transition is a conditional UPDATE on ``status``)::

        queued --claim by a worker--> running --> succeeded | failed | cancelled
        queued --cancel--> cancelled
        running --waits for a tool approval--> requires_action --> running
        running --heartbeat goes stale (worker died)--> failed (worker_lost, by the reaper)

    ``next_seq`` hands out the gapless per-run ``RunEvent.seq``: it is advanced by the same
    transaction that inserts the event. ``cancel_requested_at`` is how the API asks a worker to
    stop; the worker sees it between events.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        REQUIRES_ACTION = "requires_action", "Requires action"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Mode(models.TextChoices):
        BACKGROUND = "background", "Background"
        WAIT = "wait", "Wait"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="runs"
    )
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="runs")
    agent_version = models.ForeignKey(
        "agents.AgentVersion", on_delete=models.PROTECT, related_name="runs"
    )
    conversation = models.ForeignKey(
        "agents.Conversation", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.BACKGROUND)
    input = models.JSONField()
    max_turns = models.PositiveIntegerField(default=10)
    metadata = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    last_agent = models.CharField(max_length=200, blank=True, default="")
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    # {model: {requests, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens}}
    usage = models.JSONField(default=dict, blank=True)
    # NULL (not "") when absent, so the partial unique constraint ignores runs without a key.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    request_hash = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    first_token_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True, default="")
    next_seq = models.BigIntegerField(default=0)
    # requires_action: the SDK's serialized RunState to resume from, the calls waiting for a
    # person, and when they expire (approval_timeout).
    resume_state = models.TextField(blank=True, default="")
    pending_approvals = models.JSONField(default=list, blank=True)
    approval_deadline = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "agent_runs"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=[*ACTIVE_STATUSES, *TERMINAL_STATUSES]),
                name="agent_runs_status_valid",
            ),
            # Idempotency-Key: one run per (caller, key).
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="agent_runs_owner_idempotency_unique",
            ),
            # conversation_busy: at most one run in flight per conversation, enforced by the database.
            models.UniqueConstraint(
                fields=["conversation"],
                condition=models.Q(status__in=ACTIVE_STATUSES, conversation__isnull=False),
                name="agent_runs_one_active_per_conversation",
            ),
        ]
        indexes = [
            # GET /api/v1/runs/: the caller's runs, newest first (filters narrow it further).
            models.Index(fields=["owner", "-created_at"], name="agent_runs_owner_created"),
            # Admin and agent pages: an agent's recent runs.
            models.Index(fields=["agent", "-created_at"], name="agent_runs_agent_created"),
            # Run workers' claims (services.runs.agent_runs_claim): each user's queued runs,
            # oldest first.
            models.Index(
                fields=["owner", "created_at"],
                name="agent_runs_queued_owner",
                condition=models.Q(status="queued"),
            ),
            # The same claims: how many runs a user has running (the per-user cap).
            models.Index(
                fields=["owner"],
                name="agent_runs_running_owner",
                condition=models.Q(status="running"),
            ),
            # The reaper: running runs by heartbeat age.
            models.Index(
                fields=["heartbeat_at"],
                name="agent_runs_running_heartbeat",
                condition=models.Q(status="running"),
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class RunEvent(models.Model):
    """One event of a run's log, in a gapless per-run sequence (``seq`` from 1). Written before it
    is published, so the log is the truth and live delivery is only a wake-up.
    The ``type`` vocabulary is documented in ``agentdeck.agents.runtime.events``."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    type = models.CharField(max_length=64)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "run_events"
        constraints = [
            # Also the index for "events of run R after seq S, in order".
            models.UniqueConstraint(fields=["run", "seq"], name="run_events_run_seq_unique"),
        ]
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.type}"
