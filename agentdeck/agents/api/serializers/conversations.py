"""Serializers of conversations and their history."""

from __future__ import annotations

from rest_framework import serializers

from agentdeck.agents.models import (
    Conversation,
    ConversationItem,
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
    # DRF's metaclass takes declared fields off the class: Serializer.data stays the property.
    data = serializers.JSONField(read_only=True)  # type: ignore[assignment]

    class Meta:
        model = ConversationItem
        fields = ["position", "data", "run", "created_at"]
        read_only_fields = fields
