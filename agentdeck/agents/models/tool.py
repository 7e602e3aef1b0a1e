from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from agentdeck.core.models import TimestampedModel


class Tool(TimestampedModel):
    """Something an agent can call. ``kind`` decides what ``config`` holds:

    * ``builtin``: ``{"builtin": "calculator" | "current_time" | "http_request" | "web_search" |
      "code_interpreter"}`` (the last two are OpenAI hosted tools, passed through for ``openai``
      providers only);
    * ``http``: ``{"method", "url_template", "headers", "timeout_seconds", "max_response_bytes"}``
      with ``parameters_schema`` (JSON Schema of the arguments, validated on save and again at call
      time) and secret headers in ``secret_headers_encrypted`` (never returned);
    * ``mcp``: ``{"url", "transport": "streamable_http" | "sse", "allowed_tools": [...]}`` with
      ``discovered`` (the server's tools, stored by ``POST .../refresh/``) and secret headers;
    * ``agent``: ``{"agent_id"}``: another agent, run as a tool.

    ``name`` is what the model sees (a function name), unique per owner.
    """

    class Kind(models.TextChoices):
        BUILTIN = "builtin", "Built-in"
        HTTP = "http", "HTTP endpoint"
        MCP = "mcp", "MCP server"
        AGENT = "agent", "Agent as tool"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tools"
    )
    name = models.CharField(max_length=64)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    config = models.JSONField(default=dict, blank=True)
    parameters_schema = models.JSONField(null=True, blank=True)
    secret_headers_encrypted = models.TextField(blank=True, default="")
    discovered = models.JSONField(default=list, blank=True)
    discovered_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "tools"
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="tools_owner_name_unique"),
            models.CheckConstraint(
                condition=models.Q(kind__in=["builtin", "http", "mcp", "agent"]),
                name="tools_kind_valid",
            ),
        ]
        indexes = [
            # GET /api/v1/tools/: one owner's tools, newest first.
            models.Index(fields=["owner", "-created_at"], name="tools_owner_created"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class AgentTool(models.Model):
    """A tool attached to an agent; ``requires_approval`` pauses runs before each call."""

    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.CASCADE, related_name="tool_attachments"
    )
    tool = models.ForeignKey(Tool, on_delete=models.PROTECT, related_name="attachments")
    requires_approval = models.BooleanField(default=False)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "agent_tools"
        constraints = [models.UniqueConstraint(fields=["agent", "tool"], name="agent_tools_unique")]
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.agent_id} -> {self.tool_id}"


class Handoff(models.Model):
    """``from_agent`` may hand the conversation to ``to_agent``. ``input_filter`` trims what the
    receiving agent sees (``remove_tool_history`` drops tool calls and outputs)."""

    class InputFilter(models.TextChoices):
        NONE = "none", "Everything"
        REMOVE_TOOL_HISTORY = "remove_tool_history", "Drop tool calls and outputs"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    from_agent = models.ForeignKey(
        "agents.Agent", on_delete=models.CASCADE, related_name="handoffs"
    )
    to_agent = models.ForeignKey(
        "agents.Agent", on_delete=models.PROTECT, related_name="handoffs_in"
    )
    tool_name = models.CharField(max_length=64, blank=True, default="")
    tool_description = models.TextField(blank=True, default="")
    input_filter = models.CharField(
        max_length=32, choices=InputFilter.choices, default=InputFilter.NONE
    )
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "handoffs"
        constraints = [
            models.UniqueConstraint(fields=["from_agent", "to_agent"], name="handoffs_pair_unique"),
            models.CheckConstraint(
                condition=~models.Q(from_agent=models.F("to_agent")), name="handoffs_not_self"
            ),
        ]
        ordering = ["position", "created_at"]

    def __str__(self) -> str:
        return f"{self.from_agent_id} -> {self.to_agent_id}"


class ToolCall(models.Model):
    """One tool call of a run: what was asked, what came back, how long it took.

    Status: ``started`` -> ``succeeded`` | ``failed``; with approval:
    ``pending_approval`` -> ``rejected`` | ``started`` -> ...; ``expired`` when nobody answered.
    """

    class Status(models.TextChoices):
        PENDING_APPROVAL = "pending_approval", "Waiting for approval"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Approval expired"
        STARTED = "started", "Started"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey("agents.AgentRun", on_delete=models.CASCADE, related_name="tool_calls")
    call_id = models.CharField(max_length=200)
    agent_name = models.CharField(max_length=200, blank=True, default="")
    tool = models.ForeignKey(
        Tool, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    tool_name = models.CharField(max_length=200)
    arguments = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.STARTED)
    output = models.TextField(blank=True, default="")
    output_size = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    approval_message = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "tool_calls"
        constraints = [
            models.UniqueConstraint(fields=["run", "call_id"], name="tool_calls_run_call_unique")
        ]
        indexes = [
            # Admin: a tool's calls and error rate over the last 24 h.
            models.Index(fields=["tool", "-created_at"], name="tool_calls_tool_created"),
        ]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.tool_name} ({self.status})"
