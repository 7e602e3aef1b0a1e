"""Input and output serializers of the identity API."""

from __future__ import annotations

from rest_framework import serializers

from agentdeck.accounts.models import ApiKey, User
from agentdeck.accounts.permissions import usable_scopes


class MeSerializer(serializers.ModelSerializer):
    is_staff = serializers.BooleanField(read_only=True)
    auth_method = serializers.SerializerMethodField(help_text="`jwt` or `api_key`.")
    scopes = serializers.SerializerMethodField(
        help_text="The scopes the caller can use: the API key's own (`credits:grant` only on a "
        "staff member's key), or `read` and `write` for a JWT."
    )

    class Meta:
        model = User
        fields = [
            "id",
            "email",
            "name",
            "image",
            "role",
            "is_staff",
            "created_at",
            "auth_method",
            "scopes",
        ]
        read_only_fields = fields

    def get_auth_method(self, obj: User) -> str:
        return "api_key" if isinstance(self.context["request"].auth, ApiKey) else "jwt"

    def get_scopes(self, obj: User) -> list[str]:
        return sorted(usable_scopes(obj, self.context["request"].auth))


class ApiKeySerializer(serializers.ModelSerializer):
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "is_active",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "created_at",
        ]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKey.Scope.choices),
        required=False,
        allow_empty=False,
        max_length=len(ApiKey.Scope.choices),
        help_text="Defaults to every scope (`read`, `write`).",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]
        read_only_fields = fields
