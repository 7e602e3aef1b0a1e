from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from agentdeck.core.models import TimestampedModel


class Conversation(TimestampedModel):
    """Multi-turn history with one agent. Its items are the SDK's input items, stored by
    ``agentdeck.agents.runtime.session.DjangoSession``. At most one run is in flight per
    conversation (a partial unique index on ``agent_runs`` enforces it)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True, default="")
    # Next position to hand out; advanced under the row lock writers take (see DjangoSession).
    next_position = models.BigIntegerField(default=0)

    class Meta:
        db_table = "conversations"
        indexes = [
            # GET /api/v1/conversations/: the caller's conversations, newest first.
            models.Index(fields=["owner", "-created_at"], name="conversations_owner_created"),
        ]

    def __str__(self) -> str:
        return self.title or str(self.id)


class ConversationItem(models.Model):
    """One SDK input item (a message, a tool call, a tool output, ...) at a gapless position."""

    id = models.BigAutoField(primary_key=True)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="items")
    position = models.BigIntegerField()
    data = models.JSONField()
    run = models.ForeignKey(
        "agents.AgentRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "conversation_items"
        constraints = [
            # Also the index for reading a conversation in order and for "the last N items".
            models.UniqueConstraint(
                fields=["conversation", "position"], name="conversation_items_position_unique"
            ),
        ]
        ordering = ["position"]

    def __str__(self) -> str:
        return f"{self.conversation_id}@{self.position}"
