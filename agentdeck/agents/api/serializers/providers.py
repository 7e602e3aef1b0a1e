"""Serializers of providers: the public view (no key, header names only) and writes."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from agentdeck.agents.models import (
    Provider,
)
from agentdeck.core.httpheaders import (
    API_KEY_MAX_LENGTH,
    MAX_HEADERS,
    HeadersField,
    validate_api_key,
)

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
