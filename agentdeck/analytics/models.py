from __future__ import annotations

from django.db import models


class RunSpan(models.Model):
    """One finished span of an Agents SDK trace, stored against the run that produced it.

    The SDK reports every unit of work of a run as a span: the task and each agent, turn, model
    call (``generation`` for Chat Completions-style models, ``response`` for the Responses API),
    function tool, handoff, guardrail, MCP tool listing and custom span. agentdeck keeps them at
    home instead of exporting them to OpenAI: :class:`agentdeck.analytics.tracing.RunSpanProcessor`
    buffers them in memory while the run executes and writes them here in one statement when the
    worker calls ``flush_run`` after the run ends.

    ``kind`` is the SDK's ``span.span_data.type`` (``agent``, ``generation``, ``response``,
    ``function``, ``handoff``, ``guardrail``, ``custom``, ``mcp_tools``, ``task``, ``turn``, ...);
    it is deliberately not a choices field, since new SDK versions add span types.

    Token columns are filled only for ``generation`` and ``response`` spans, the ones that stand
    for a single model call. ``task``/``turn``/``agent`` spans carry the SDK's running totals in
    ``data`` instead, so summing the columns over a run's spans never counts a token twice.

    ``data`` is the span's ``export()`` without the bulky model/tool ``input`` and ``output``
    (the run's events and conversation keep those), with long values truncated.
    """

    id = models.BigAutoField(primary_key=True)
    # No index of its own: the unique constraint and the ordering index below both lead with run.
    run = models.ForeignKey(
        "agents.AgentRun", on_delete=models.CASCADE, related_name="spans", db_index=False
    )
    trace_id = models.CharField(max_length=128)
    span_id = models.CharField(max_length=128)
    # Empty for a trace's root span.
    parent_id = models.CharField(max_length=128, blank=True, default="")
    kind = models.CharField(max_length=32)
    # Agent name, function name, model, guardrail name, "from -> to" for handoffs, ...
    name = models.CharField(max_length=255, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cached_input_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    model = models.CharField(max_length=200, blank=True, default="")
    # The SDK's SpanError ({"message": ..., "data": {...}}) when the span failed.
    error = models.JSONField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "run_spans"
        constraints = [
            # A span is stored once per run: flush_run can run twice (a retried task, a resumed
            # run) and relies on this with bulk_create(ignore_conflicts=True).
            models.UniqueConstraint(fields=["run", "span_id"], name="run_spans_run_span_unique"),
        ]
        indexes = [
            # A run's spans in order: admin transcript and analytics API.
            models.Index(fields=["run", "started_at"], name="run_spans_run_started"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}".strip()
