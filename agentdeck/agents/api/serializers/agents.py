"""Serializers of agents: the agent as shown, its writes, its versions and its list query."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agentdeck.agents.limits import (
    AGENT_DESCRIPTION_MAX_LENGTH,
    GUARDRAILS_SHAPE,
    JSON_SCHEMA_SHAPE,
    MAX_AGENT_HANDOFFS,
    MAX_AGENT_TOOLS,
    TAG_MAX_LENGTH,
    TOOL_DESCRIPTION_MAX_LENGTH,
)
from agentdeck.agents.models import (
    Agent,
    AgentVersion,
    Handoff,
)
from agentdeck.core.jsonshape import JSONShapeField

# --- agents --------------------------------------------------------------------------------------


class ModelSettingsSerializer(serializers.Serializer):
    temperature = serializers.FloatField(min_value=0, max_value=2, required=False, allow_null=True)
    top_p = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)
    max_output_tokens = serializers.IntegerField(
        min_value=1, max_value=1_000_000, required=False, allow_null=True
    )
    reasoning_effort = serializers.ChoiceField(
        choices=["minimal", "low", "medium", "high"], required=False, allow_null=True
    )
    tool_choice = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=200,
        help_text="auto, required, none, or a tool name.",
    )
    parallel_tool_calls = serializers.BooleanField(required=False, allow_null=True)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {name: "Unknown model setting." for name in sorted(unknown)},
                    code="unknown_field",
                )
        values = super().to_internal_value(data)
        return {k: v for k, v in values.items() if v is not None}


class AgentMetadataSerializer(serializers.Serializer):
    category = serializers.CharField(max_length=100, required=False, allow_blank=True)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=TAG_MAX_LENGTH), required=False, max_length=20
    )
    icon = serializers.CharField(max_length=500, required=False, allow_blank=True)
    featured = serializers.BooleanField(required=False, help_text="Staff only.")
    run_count = serializers.IntegerField(read_only=True)
    last_run_at = serializers.DateTimeField(read_only=True, allow_null=True)


class AgentToolSerializer(serializers.Serializer):
    tool = serializers.UUIDField()
    requires_approval = serializers.BooleanField(required=False, default=False)


class HandoffSerializer(serializers.Serializer):
    agent = serializers.UUIDField(help_text="The agent to hand off to.")
    tool_name = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
    tool_description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=TOOL_DESCRIPTION_MAX_LENGTH
    )
    input_filter = serializers.ChoiceField(
        choices=Handoff.InputFilter.choices, required=False, default=Handoff.InputFilter.NONE
    )


class AgentSerializer(serializers.ModelSerializer):
    provider = serializers.UUIDField(source="provider_id", read_only=True)
    provider_kind = serializers.CharField(source="provider.kind", read_only=True)
    owner = serializers.CharField(source="owner_id", read_only=True)
    metadata = serializers.SerializerMethodField()
    guardrails = serializers.JSONField(read_only=True)
    tools = serializers.SerializerMethodField()
    handoffs = serializers.SerializerMethodField()
    vector_index_ids = serializers.SerializerMethodField(
        help_text="The vector indices its file_search tool searches, in order."
    )

    class Meta:
        model = Agent
        fields = [
            "id",
            "owner",
            "name",
            "slug",
            "description",
            "instructions",
            "provider",
            "provider_kind",
            "model",
            "model_settings",
            "output_schema",
            "guardrails",
            "tools",
            "handoffs",
            "vector_index_ids",
            "visibility",
            "status",
            "current_version",
            "metadata",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(AgentToolSerializer(many=True))
    def get_tools(self, obj: Agent) -> list[dict[str, Any]]:
        return [
            {"tool": str(a.tool_id), "requires_approval": a.requires_approval}
            for a in obj.tool_attachments.all()
        ]

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_vector_index_ids(self, obj: Agent) -> list[str]:
        # .all() (Meta.ordering is position, id) so a prefetch of vector_index_attachments
        # serves it.
        return [str(a.index_id) for a in obj.vector_index_attachments.all()]

    @extend_schema_field(HandoffSerializer(many=True))
    def get_handoffs(self, obj: Agent) -> list[dict[str, Any]]:
        return [
            {
                "agent": str(h.to_agent_id),
                "tool_name": h.tool_name,
                "tool_description": h.tool_description,
                "input_filter": h.input_filter,
            }
            for h in obj.handoffs.all()
        ]

    @extend_schema_field(AgentMetadataSerializer)
    def get_metadata(self, obj: Agent) -> dict[str, Any]:
        meta = getattr(obj, "metadata", None)
        if meta is None:
            return {}
        return AgentMetadataSerializer(meta).data


class AgentWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=AGENT_DESCRIPTION_MAX_LENGTH
    )
    instructions = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=100_000
    )
    provider = serializers.UUIDField()
    model = serializers.CharField(max_length=200)
    model_settings = ModelSettingsSerializer(required=False)
    output_schema = JSONShapeField(
        shape=JSON_SCHEMA_SHAPE,
        required=False,
        allow_null=True,
        help_text="JSON Schema of a structured final output.",
    )
    visibility = serializers.ChoiceField(
        choices=Agent.Visibility.choices, required=False, default=Agent.Visibility.PRIVATE
    )
    status = serializers.ChoiceField(
        choices=Agent.Status.choices, required=False, help_text="Staff only."
    )
    metadata = AgentMetadataSerializer(required=False)
    guardrails = JSONShapeField(
        shape=GUARDRAILS_SHAPE,
        required=False,
        help_text='{"input": [...], "output": [...]}: blocklist, regex, max_length, pii, json_schema, moderation.',
    )
    tools = serializers.ListField(
        child=AgentToolSerializer(),
        required=False,
        max_length=MAX_AGENT_TOOLS,
        help_text="Replaces the attached tools.",
    )
    handoffs = serializers.ListField(
        child=HandoffSerializer(),
        required=False,
        max_length=MAX_AGENT_HANDOFFS,
        help_text="Replaces the handoffs.",
    )
    vector_index_ids = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=20,
        help_text="Replaces the vector indices (your own) the agent searches with its built-in "
        "file_search tool; an empty list removes the tool.",
    )


class AgentVersionSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by_id", read_only=True, allow_null=True)

    class Meta:
        model = AgentVersion
        fields = ["number", "snapshot", "note", "created_by", "created_at"]
        read_only_fields = fields


class AgentListQuerySerializer(serializers.Serializer):
    # Bounded like what they match: a LIKE pattern of a megabyte scans as long as it is.
    search = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    tag = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=TAG_MAX_LENGTH,
    )
    mine = serializers.BooleanField(required=False, default=False)
    # allow_blank documents what DRF does with `?status=`: an empty value is no filter.
    visibility = serializers.ChoiceField(
        choices=Agent.Visibility.choices, required=False, default="", allow_blank=True
    )
    status = serializers.ChoiceField(
        choices=Agent.Status.choices, required=False, default="", allow_blank=True
    )
