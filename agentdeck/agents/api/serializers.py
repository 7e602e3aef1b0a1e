from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agentdeck.agents.limits import (
    AGENT_DESCRIPTION_MAX_LENGTH,
    APPROVAL_MESSAGE_MAX_LENGTH,
    GUARDRAILS_SHAPE,
    JSON_SCHEMA_SHAPE,
    MAX_AGENT_HANDOFFS,
    MAX_AGENT_TOOLS,
    MAX_APPROVAL_DECISIONS,
    OPENAPI_DOCUMENT_SHAPE,
    RUN_METADATA_SHAPE,
    TAG_MAX_LENGTH,
    TOOL_CONFIG_SHAPE,
    TOOL_DESCRIPTION_MAX_LENGTH,
)
from agentdeck.agents.models import (
    Agent,
    AgentRun,
    AgentVersion,
    Conversation,
    ConversationItem,
    Handoff,
    Provider,
    RunEvent,
    Tool,
    ToolCall,
)
from agentdeck.agents.runtime.events import EVENT_TYPES
from agentdeck.core.httpheaders import (
    API_KEY_MAX_LENGTH,
    MAX_HEADERS,
    HeadersField,
    validate_api_key,
)
from agentdeck.core.jsonshape import JSONShapeField

# --- providers -----------------------------------------------------------------------------------


class ProviderSerializer(serializers.ModelSerializer):
    # Blank for the kind's default endpoint (openai, mock): documented as "a URL or empty".
    base_url = serializers.URLField(read_only=True, allow_blank=True)
    shared = serializers.BooleanField(source="is_shared", read_only=True)
    has_api_key = serializers.BooleanField(read_only=True)
    extra_headers = serializers.SerializerMethodField(
        help_text="Header names; values are never returned."
    )

    class Meta:
        model = Provider
        fields = [
            "id",
            "name",
            "kind",
            "base_url",
            "default_model",
            "enabled",
            "shared",
            "has_api_key",
            "extra_headers",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_extra_headers(self, obj: Provider) -> dict[str, str]:
        return {name: "********" for name in (obj.extra_headers or {})}


class ProviderWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=Provider.Kind.choices)
    base_url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    api_key = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        trim_whitespace=True,
        max_length=API_KEY_MAX_LENGTH,
        validators=[validate_api_key],
        help_text="Stored encrypted; never returned. Empty string removes it. Visible ASCII "
        "characters only (it is sent in an HTTP header).",
    )
    extra_headers = HeadersField(
        required=False,
        help_text=f"Sent with every request to the provider: {{name: value}}, at most "
        f"{MAX_HEADERS}; names are RFC 9110 tokens, values visible ASCII.",
    )
    default_model = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )
    enabled = serializers.BooleanField(required=False, default=True)
    shared = serializers.BooleanField(
        required=False, default=False, help_text="Staff only: usable by everyone."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind = attrs.get("kind") or getattr(self.instance, "kind", None)
        base_url = attrs.get("base_url", getattr(self.instance, "base_url", ""))
        if kind == Provider.Kind.OPENAI_COMPATIBLE and not base_url:
            raise serializers.ValidationError(
                {"base_url": "An openai_compatible provider needs a base URL."}, code="required"
            )
        return attrs


class ProviderModelsSerializer(serializers.Serializer):
    models = serializers.ListField(child=serializers.CharField())
    listable = serializers.BooleanField(
        help_text="False when the provider's API cannot list its models."
    )


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
    data = serializers.JSONField(read_only=True)

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


# --- conversations -------------------------------------------------------------------------------


class ConversationSerializer(serializers.ModelSerializer):
    agent = serializers.UUIDField(source="agent_id", read_only=True)

    class Meta:
        model = Conversation
        fields = ["id", "agent", "title", "created_at", "updated_at"]
        read_only_fields = fields


class ConversationCreateSerializer(serializers.Serializer):
    agent = serializers.UUIDField()
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class ConversationUpdateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200, allow_blank=True)


class ConversationItemSerializer(serializers.ModelSerializer):
    run = serializers.UUIDField(source="run_id", read_only=True, allow_null=True)
    data = serializers.JSONField(read_only=True)

    class Meta:
        model = ConversationItem
        fields = ["position", "data", "run", "created_at"]
        read_only_fields = fields


# --- tools ---------------------------------------------------------------------------------------


class ToolSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner_id", read_only=True)
    config = serializers.JSONField(read_only=True)
    parameters_schema = serializers.JSONField(read_only=True, allow_null=True)
    discovered = serializers.JSONField(
        read_only=True, help_text="MCP: the server's tools, from .../refresh/."
    )
    secret_header_names = serializers.SerializerMethodField(
        help_text="Names only; values are never returned."
    )

    class Meta:
        model = Tool
        fields = [
            "id",
            "owner",
            "name",
            "description",
            "kind",
            "config",
            "parameters_schema",
            "secret_header_names",
            "discovered",
            "discovered_at",
            "enabled",
            "last_used_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_secret_header_names(self, obj: Tool) -> list[str]:
        if not obj.secret_headers_encrypted:
            return []
        import json

        from agentdeck.core.crypto import SecretDecryptionError, decrypt_secret

        try:
            return sorted(json.loads(decrypt_secret(obj.secret_headers_encrypted)))
        except (SecretDecryptionError, ValueError):
            return []


class ToolWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=TOOL_DESCRIPTION_MAX_LENGTH
    )
    kind = serializers.ChoiceField(choices=Tool.Kind.choices)
    config = JSONShapeField(
        shape=TOOL_CONFIG_SHAPE,
        required=False,
        default=dict,
        help_text=(
            "builtin: {builtin}; http: {method, url_template, headers, timeout_seconds, max_response_bytes}; "
            "mcp: {url, transport, allowed_tools}; agent: {agent_id}."
        ),
    )
    parameters_schema = JSONShapeField(
        shape=JSON_SCHEMA_SHAPE,
        required=False,
        allow_null=True,
        help_text="http: JSON Schema of the arguments.",
    )
    secret_headers = HeadersField(
        required=False,
        write_only=True,
        help_text="Sent with every call, stored encrypted, never returned; {} removes them.",
    )
    enabled = serializers.BooleanField(required=False, default=True)


class OpenApiImportSerializer(serializers.Serializer):
    document = JSONShapeField(shape=OPENAPI_DOCUMENT_SHAPE, help_text="An OpenAPI 3 document.")
    base_url = serializers.URLField(required=False, allow_blank=True, default="", max_length=500)
    prefix = serializers.CharField(required=False, allow_blank=True, default="", max_length=20)
    secret_headers = HeadersField(required=False, write_only=True)


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
