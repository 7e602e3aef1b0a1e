from __future__ import annotations

from agentdeck.accounts.models import User
from agentdeck.agents.exceptions import ConversationBusy
from agentdeck.agents.models import Agent, AgentRun, Conversation
from agentdeck.agents.models.run import ACTIVE_STATUSES


def conversation_create(*, owner: User, agent: Agent, title: str = "") -> Conversation:
    return Conversation.objects.create(owner=owner, agent=agent, title=title)


def conversation_update(*, conversation: Conversation, title: str) -> Conversation:
    conversation.title = title
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    if AgentRun.objects.filter(conversation=conversation, status__in=ACTIVE_STATUSES).exists():
        raise ConversationBusy("A run is in flight on this conversation; cancel it first.")
    conversation.delete()
