"""Reads of the agents domain with any logic: what a user may see, lists with their filters,
and the ids in a request body resolved to rows the caller may use."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db.models import Count, Max, Model, Q, QuerySet
from django.utils import timezone

from agentdeck.accounts.models import User
from agentdeck.agents.exceptions import InvalidReference
from agentdeck.agents.models import (
    Agent,
    AgentRun,
    AgentVersion,
    Conversation,
    ConversationItem,
    Provider,
    RunEvent,
    Tool,
    ToolCall,
)
from agentdeck.core.lookups import PkLookup
from agentdeck.core.permissions import scope_to_owner

M = TypeVar("M", bound=Model)

# Every run reads its agents' providers when it builds the agent graph (agentdeck.core.lookups).
provider_get_by_pk = PkLookup(Provider)


def providers_visible_to(user: User) -> QuerySet[Provider]:
    """Shared providers and the user's own (staff: all)."""
    qs = Provider.objects.all()
    if user.is_staff:
        return qs
    return qs.filter(Q(owner__isnull=True) | Q(owner=user))


def provider_resolve(*, user: User, provider_id: Any) -> Provider:
    """The provider an agent names, if ``user`` may use it (else 400 ``invalid_provider``)."""
    provider = providers_visible_to(user).filter(pk=provider_id).first()
    if provider is None:
        raise InvalidReference(
            "Unknown provider.",
            code="invalid_provider",
            extra={
                "errors": [
                    {"field": "provider", "code": "does_not_exist", "detail": "No such provider."}
                ]
            },
        )
    return provider


def _visibility(qs: QuerySet[Agent], user: User) -> QuerySet[Agent]:
    if user.is_staff:
        return qs
    return qs.filter(Q(owner=user) | Q(visibility=Agent.Visibility.PUBLIC))


def agents_visible_to(user: User) -> QuerySet[Agent]:
    """Agents a user may see and run: their own and public ones (staff: all)."""
    qs = Agent.objects.select_related("provider", "metadata", "owner").prefetch_related(
        "tool_attachments", "handoffs", "vector_index_attachments"
    )
    return _visibility(qs, user)


def agents_runnable_by(user: User) -> QuerySet[Agent]:
    """The agents of :func:`agents_visible_to`, read as starting a run needs them: the agent row
    and its provider, not its tool, handoff and index links (three queries on every POST
    .../runs/), nor its owner and metadata (two joins the query compiler builds every time)."""
    return _visibility(Agent.objects.select_related("provider"), user)


def agent_get(*, user: User, agent_id: Any) -> Agent:
    """An agent as the API shows it, after a change."""
    return agents_visible_to(user).get(pk=agent_id)


def agent_version_list(*, agent: Agent) -> QuerySet[AgentVersion]:
    return AgentVersion.objects.filter(agent=agent).order_by("-number")


def agents_with_run_stats(queryset: QuerySet[Agent]) -> QuerySet[Agent]:
    """For the admin's list: each agent's runs over the last 24 hours and its last run."""
    since = timezone.now() - timedelta(hours=24)
    return queryset.annotate(
        _runs_24h=Count("runs", filter=Q(runs__created_at__gte=since)),
        _last_run=Max("runs__created_at"),
    )


def rows_by_ids(queryset: QuerySet[M], ids: Sequence[Any]) -> tuple[list[M], list[str]]:
    """The rows of ``queryset`` with these primary keys in the order asked, and the ids it does
    not hold (unknown, or not the caller's) as strings; one query however many ids.

    The one resolver of the id lists in request bodies: an agent's tools, handoffs and vector
    indices, an upload's vector indices. Each caller words its own error for what is missing.
    """
    found = {row.pk: row for row in queryset.filter(pk__in=ids)}
    missing = [str(i) for i in ids if i not in found]
    return [found[i] for i in ids if i in found], missing


def agent_references_resolve(*, user: User, values: dict[str, Any]) -> dict[str, Any]:
    """An agent's validated write ``values`` with their ids turned into rows ``user`` may use.

    ``provider`` (400 ``invalid_provider``), ``vector_index_ids`` (becomes ``vector_indices``,
    the user's own; 400 ``invalid_vector_index``), ``tools`` (the user's own; 400
    ``invalid_tool``) and ``handoffs`` (agents the user may see; 400 ``invalid_handoff``), each
    only when present, checked in that order; an error names every unknown id.
    """
    # Imported here: files.selectors builds on rows_by_ids of this module.
    from agentdeck.files.selectors import vector_indices_by_id

    values = dict(values)
    if "provider" in values:
        values["provider"] = provider_resolve(user=user, provider_id=values["provider"])
    if "vector_index_ids" in values:
        indices, missing = vector_indices_by_id(user=user, ids=values.pop("vector_index_ids"))
        if missing:
            raise InvalidReference(
                f"Unknown vector index(es): {', '.join(missing)}.", code="invalid_vector_index"
            )
        values["vector_indices"] = indices
    if "tools" in values:
        entries = values["tools"]
        tools, missing = rows_by_ids(Tool.objects.filter(owner=user), [e["tool"] for e in entries])
        if missing:
            raise InvalidReference(f"Unknown tool(s): {', '.join(missing)}.", code="invalid_tool")
        values["tools"] = [
            {"tool": tool, "requires_approval": e["requires_approval"]}
            for tool, e in zip(tools, entries, strict=True)
        ]
    if "handoffs" in values:
        entries = values["handoffs"]
        agents, missing = rows_by_ids(agents_visible_to(user), [e["agent"] for e in entries])
        if missing:
            raise InvalidReference(
                f"Unknown agent(s): {', '.join(missing)}.", code="invalid_handoff"
            )
        values["handoffs"] = [
            {**{k: v for k, v in e.items() if k != "agent"}, "to_agent": agent}
            for agent, e in zip(agents, entries, strict=True)
        ]
    return values


def _visible_or_invalid(queryset: QuerySet[M], pk: Any, message: str, code: str) -> M:
    row = queryset.filter(pk=pk).first()
    if row is None:
        raise InvalidReference(message, code=code)
    return row


def agent_resolve(*, user: User, agent_id: Any) -> Agent:
    """An agent a body names (a conversation's), if ``user`` may see it (else 400
    ``invalid_agent``)."""
    return _visible_or_invalid(agents_visible_to(user), agent_id, "Unknown agent.", "invalid_agent")


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


def run_get(*, run_id: Any) -> AgentRun:
    """A run as the API shows it after a change (an approval, the end of a wait)."""
    return AgentRun.objects.select_related("agent_version").get(pk=run_id)


def run_is_visible(*, user: User, run_id: Any) -> bool:
    return run_list(user=user).filter(pk=run_id).exists()


def run_tool_calls(*, run: AgentRun) -> QuerySet[ToolCall]:
    return run.tool_calls.order_by("created_at", "id")


def run_events_after(*, run: AgentRun, after: int = 0, limit: int = 1000) -> QuerySet[RunEvent]:
    return RunEvent.objects.filter(run=run, seq__gt=after).order_by("seq")[:limit]


def conversations_visible_to(user: User) -> QuerySet[Conversation]:
    return scope_to_owner(Conversation.objects.select_related("agent"), user)


def conversation_resolve(*, user: User, conversation_id: Any) -> Conversation:
    """The conversation a run continues, if it is ``user``'s (else 400
    ``invalid_conversation``)."""
    return _visible_or_invalid(
        conversations_visible_to(user),
        conversation_id,
        "Unknown conversation.",
        "invalid_conversation",
    )


def conversation_items(*, conversation: Conversation) -> QuerySet[ConversationItem]:
    return ConversationItem.objects.filter(conversation=conversation).order_by("position")


def tools_visible_to(user: User) -> QuerySet[Tool]:
    return scope_to_owner(Tool.objects.all(), user)


def tools_with_call_stats(queryset: QuerySet[Tool]) -> QuerySet[Tool]:
    """For the admin's list: each tool's calls and failed calls over the last 24 hours."""
    since = timezone.now() - timedelta(hours=24)
    return queryset.annotate(
        _calls=Count("calls", filter=Q(calls__created_at__gte=since)),
        _errors=Count(
            "calls", filter=Q(calls__created_at__gte=since, calls__status=ToolCall.Status.FAILED)
        ),
    )
