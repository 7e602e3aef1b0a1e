from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models

from agentdeck.core.models import TimestampedModel


class Agent(TimestampedModel):
    """An agent definition: instructions, a provider and model, model settings, an optional
    structured output schema.

    Every change that affects behaviour creates an immutable :class:`AgentVersion`
    (``current_version`` points at the newest); runs pin the version they started with.
    Status: ``active`` <-> ``suspended`` (staff or owner); a suspended agent cannot run.
    Visibility: ``private`` (owner and staff) or ``public`` (listable and runnable by everyone).
    """

    class Visibility(models.TextChoices):
        PRIVATE = "private", "Private"
        PUBLIC = "public", "Public"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agents"
    )
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=220)
    description = models.TextField(blank=True, default="")
    instructions = models.TextField(blank=True, default="")
    provider = models.ForeignKey("agents.Provider", on_delete=models.PROTECT, related_name="agents")
    model = models.CharField(max_length=200)
    # temperature, top_p, max_output_tokens, reasoning_effort, tool_choice, parallel_tool_calls
    model_settings = models.JSONField(default=dict, blank=True)
    output_schema = models.JSONField(null=True, blank=True)
    # {"input": [...], "output": [...]}: see docs/guardrails.md for the kinds.
    guardrails = models.JSONField(default=dict, blank=True)
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    current_version = models.PositiveIntegerField(default=0)
    # Per-run spending cap in micro-credits (the credit hold); NULL = estimated from the model's
    # price and max output tokens (agentdeck.credits.services.run_hold_plan).
    credit_cap = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "agents"
        constraints = [
            models.UniqueConstraint(fields=["owner", "slug"], name="agents_owner_slug_unique"),
            models.CheckConstraint(
                condition=models.Q(visibility__in=["private", "public"]),
                name="agents_visibility_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "suspended"]), name="agents_status_valid"
            ),
        ]
        indexes = [
            # GET /api/v1/agents/: the caller's agents, newest first.
            models.Index(fields=["owner", "-created_at"], name="agents_owner_created"),
            # GET /api/v1/agents/: public agents for everyone, newest first.
            models.Index(
                fields=["-created_at"],
                name="agents_public_created",
                condition=models.Q(visibility="public"),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class AgentVersion(models.Model):
    """An immutable snapshot of everything that decides how an agent behaves. Runs execute the
    snapshot they pinned, so editing an agent never changes a run in flight."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    snapshot = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "agent_versions"
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "number"], name="agent_versions_agent_number_unique"
            ),
        ]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.agent_id} v{self.number}"


class AgentMetadata(models.Model):
    """Marketplace display fields, in the table the Next.js side reads (``agent_metadata``).
    ``run_count`` and ``last_run_at`` are maintained by the run services with atomic updates."""

    agent = models.OneToOneField(
        Agent, primary_key=True, on_delete=models.CASCADE, related_name="metadata"
    )
    category = models.CharField(max_length=100, blank=True, default="")
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    icon = models.CharField(max_length=500, blank=True, default="")
    featured = models.BooleanField(default=False)
    run_count = models.BigIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "agent_metadata"
        # "metadata" is a mass noun: the admin would otherwise say "agent metadatas".
        verbose_name_plural = "agent metadata"
        indexes = [
            # ?tag= filter on the agent list: tags @> ARRAY['...']
            GinIndex(fields=["tags"], name="agent_metadata_tags_gin"),
        ]

    def __str__(self) -> str:
        return f"metadata of {self.agent_id}"
