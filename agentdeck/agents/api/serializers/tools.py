"""Serializers of tools: the tool as shown (secret header names only), writes, OpenAPI import."""

from __future__ import annotations

from rest_framework import serializers

from agentdeck.agents.limits import (
    JSON_SCHEMA_SHAPE,
    OPENAPI_DOCUMENT_SHAPE,
    TOOL_CONFIG_SHAPE,
    TOOL_DESCRIPTION_MAX_LENGTH,
)
from agentdeck.agents.models import (
    Tool,
)
from agentdeck.core.httpheaders import (
    HeadersField,
)
from agentdeck.core.jsonshape import JSONShapeField

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
