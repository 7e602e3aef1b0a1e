"""Serializers of runs: start, the run as shown, its events, tool calls and approvals."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agentdeck.agents.limits import (
    APPROVAL_MESSAGE_MAX_LENGTH,
    MAX_APPROVAL_DECISIONS,
    RUN_METADATA_SHAPE,
)
from agentdeck.agents.models import (
    AgentRun,
    RunEvent,
    ToolCall,
)
from agentdeck.agents.runtime.events import EVENT_TYPES
from agentdeck.core.jsonshape import JSONShapeField

# --- runs ----------------------------------------------------------------------------------------


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "minItems": 1, "items": {"type": "object"}},
        ],
        "description": "Text, or a list of SDK input items (e.g. {role, content}).",
    }
)
class RunInputField(serializers.JSONField):
    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if isinstance(value, str):
            if not value.strip():
                raise serializers.ValidationError("Input must not be empty.", code="blank")
            return value
        if isinstance(value, list):
            if not value:
                raise serializers.ValidationError("Input must not be empty.", code="blank")
            if not all(isinstance(item, dict) for item in value):
                raise serializers.ValidationError("Input items must be objects.", code="invalid")
            return value
        raise serializers.ValidationError(
            "Input must be text or a list of input items.", code="invalid"
        )


class RunCreateSerializer(serializers.Serializer):
    input = RunInputField()
    conversation_id = serializers.UUIDField(required=False, allow_null=True)
    mode = serializers.ChoiceField(
        choices=AgentRun.Mode.choices, required=False, default=AgentRun.Mode.BACKGROUND
    )
    max_turns = serializers.IntegerField(required=False, min_value=1, default=10)
    metadata = JSONShapeField(
        shape=RUN_METADATA_SHAPE,
        required=False,
        default=dict,
        help_text="Your labels for the run, stored and shown back.",
    )

    def validate_max_turns(self, value: int) -> int:
        if value > settings.RUN_MAX_TURNS_LIMIT:
            raise serializers.ValidationError(
                f"At most {settings.RUN_MAX_TURNS_LIMIT}.", code="max_value"
            )
        return value


class RunErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class RunTimingsSerializer(serializers.Serializer):
    queued_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    first_token_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class RunCostSerializer(serializers.Serializer):
    held = serializers.IntegerField(
        help_text="Micro-credits reserved at the start (the run's cap)."
    )
    captured = serializers.IntegerField(help_text="What the run cost.")
    refunded = serializers.IntegerField()
    captured_credits = serializers.CharField()
    settled = serializers.BooleanField()


class RunSerializer(serializers.ModelSerializer):
    agent = serializers.UUIDField(source="agent_id", read_only=True)
    agent_version = serializers.IntegerField(source="agent_version.number", read_only=True)
    conversation = serializers.UUIDField(source="conversation_id", read_only=True, allow_null=True)
    error = serializers.SerializerMethodField()
    timings = serializers.SerializerMethodField()
    cancel_requested = serializers.SerializerMethodField()
    cost = serializers.SerializerMethodField()
    input = serializers.JSONField(read_only=True)
    output = serializers.JSONField(read_only=True, allow_null=True)
    pending_approvals = serializers.JSONField(
        read_only=True,
        help_text=(
            "requires_action: the calls waiting for a person: [{call_id, tool, arguments, agent, approved?}]."
        ),
    )
    usage = serializers.JSONField(
        read_only=True,
        help_text=(
            "Per model: requests, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens."
        ),
    )

    class Meta:
        model = AgentRun
        fields = [
            "id",
            "agent",
            "agent_version",
            "conversation",
            "status",
            "mode",
            "input",
            "output",
            "last_agent",
            "error",
            "usage",
            "max_turns",
            "metadata",
            "timings",
            "cancel_requested",
            "pending_approvals",
            "approval_deadline",
            "cost",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(RunErrorSerializer(allow_null=True))
    def get_error(self, obj: AgentRun) -> dict[str, str] | None:
        return {"code": obj.error_code, "message": obj.error_message} if obj.error_code else None

    @extend_schema_field(RunTimingsSerializer)
    def get_timings(self, obj: AgentRun) -> dict[str, Any]:
        return RunTimingsSerializer(
            {
                "queued_at": obj.created_at,
                "started_at": obj.started_at,
                "first_token_at": obj.first_token_at,
                "finished_at": obj.finished_at,
            }
        ).data

    @extend_schema_field(RunCostSerializer(allow_null=True))
    def get_cost(self, obj: AgentRun) -> dict[str, Any] | None:
        from agentdeck.credits.units import to_credits

        hold = getattr(obj, "hold", None) if hasattr(obj, "hold") else None
        if hold is None:
            return None
        return {
            "held": hold.amount,
            "captured": hold.captured,
            "refunded": hold.refunded,
            "captured_credits": str(to_credits(hold.captured)),
            "settled": hold.status == "settled",
        }

    def get_cancel_requested(self, obj: AgentRun) -> bool:
        return obj.cancel_requested_at is not None


class RunEventSerializer(serializers.ModelSerializer):
    run_id = serializers.UUIDField(read_only=True)
    type = serializers.ChoiceField(choices=sorted(EVENT_TYPES), read_only=True)
    # DRF's metaclass takes declared fields off the class: Serializer.data stays the property.
    data = serializers.JSONField(read_only=True)  # type: ignore[assignment]

    class Meta:
        model = RunEvent
        fields = ["seq", "type", "run_id", "created_at", "data"]
        read_only_fields = fields


class RunEventPageSerializer(serializers.Serializer):
    results = RunEventSerializer(many=True)
    next_after = serializers.IntegerField(help_text="Pass as ?after= to continue.")
    finished = serializers.BooleanField(
        help_text="The run is over and every event has been returned."
    )


class RunEventsQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(min_value=0, required=False, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=1000, required=False, default=500)


class RunListQuerySerializer(serializers.Serializer):
    agent = serializers.UUIDField(required=False)
    # allow_blank documents what DRF does with `?status=`: an empty value is no filter.
    status = serializers.ChoiceField(
        choices=AgentRun.Status.choices, required=False, allow_blank=True
    )
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class ToolCallSerializer(serializers.ModelSerializer):
    tool = serializers.UUIDField(source="tool_id", read_only=True, allow_null=True)
    arguments = serializers.JSONField(read_only=True)

    class Meta:
        model = ToolCall
        fields = [
            "call_id",
            "tool",
            "tool_name",
            "agent_name",
            "arguments",
            "status",
            "output",
            "output_size",
            "error",
            "approval_message",
            "started_at",
            "finished_at",
            "duration_ms",
            "created_at",
        ]
        read_only_fields = fields


class ApprovalDecisionSerializer(serializers.Serializer):
    call_id = serializers.CharField(max_length=200)
    approved = serializers.BooleanField()
    message = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=APPROVAL_MESSAGE_MAX_LENGTH,
        help_text="Shown to the model (for a rejection: why).",
    )


class ApprovalsSerializer(serializers.Serializer):
    decisions = serializers.ListField(
        child=ApprovalDecisionSerializer(), allow_empty=False, max_length=MAX_APPROVAL_DECISIONS
    )
