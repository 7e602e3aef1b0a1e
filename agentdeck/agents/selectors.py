from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from agentdeck.accounts.models import User
from agentdeck.agents.models import (
    Agent,
    AgentRun,
    Conversation,
    ConversationItem,
    Provider,
    RunEvent,
)
from agentdeck.core.lookups import PkLookup
from agentdeck.core.permissions import scope_to_owner

# Every run reads its agents' providers when it builds the agent graph (agentdeck.core.lookups).
provider_get_by_pk = PkLookup(Provider)


def providers_visible_to(user: User) -> QuerySet[Provider]:
    """Shared providers and the user's own (staff: all)."""
    qs = Provider.objects.all()
    if user.is_staff:
        return qs
    return qs.filter(Q(owner__isnull=True) | Q(owner=user))


def agents_visible_to(user: User) -> QuerySet[Agent]:
    """Agents a user may see and run: their own and public ones (staff: all)."""
    qs = Agent.objects.select_related("provider", "metadata", "owner").prefetch_related(
        "tool_attachments", "handoffs", "vector_index_attachments"
    )
    if user.is_staff:
        return qs
    return qs.filter(Q(owner=user) | Q(visibility=Agent.Visibility.PUBLIC))


def agent_list(
    *,
    user: User,
    search: str = "",
    tag: str = "",
    mine: bool = False,
    visibility: str = "",
    status: str = "",
) -> QuerySet[Agent]:
    qs = agents_visible_to(user)
    if mine:
        qs = qs.filter(owner=user)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(description__icontains=search))
    if tag:
        qs = qs.filter(metadata__tags__contains=[tag])
    if visibility:
        qs = qs.filter(visibility=visibility)
    if status:
        qs = qs.filter(status=status)
    return qs


def run_list(
    *,
    user: User,
    agent_id: str | None = None,
    status: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[AgentRun]:
    # "hold": the run serializer shows each run's cost (one query for the page, not one per run).
    qs = scope_to_owner(AgentRun.objects.select_related("agent", "agent_version", "hold"), user)
    if agent_id:
        qs = qs.filter(agent_id=agent_id)
    if status:
        qs = qs.filter(status=status)
    if created_after:
        qs = qs.filter(created_at__gte=created_after)
    if created_before:
        qs = qs.filter(created_at__lt=created_before)
    return qs


def run_events_after(*, run: AgentRun, after: int = 0, limit: int = 1000) -> QuerySet[RunEvent]:
    return RunEvent.objects.filter(run=run, seq__gt=after).order_by("seq")[:limit]


def conversations_visible_to(user: User) -> QuerySet[Conversation]:
    return scope_to_owner(Conversation.objects.select_related("agent"), user)


def conversation_items(*, conversation: Conversation) -> QuerySet[ConversationItem]:
    return ConversationItem.objects.filter(conversation=conversation).order_by("position")
