"""Agents: create, update (a new version when behaviour changes), restore a version, set
status, delete. What an agent is made of is checked and written in ``agent_parts``."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone
from django.utils.text import slugify

from agentdeck.accounts.models import User
from agentdeck.agents.exceptions import InvalidReference
from agentdeck.agents.models import (
    Agent,
    AgentMetadata,
    AgentRun,
    AgentVersion,
    Provider,
    Tool,
)
from agentdeck.agents.models.run import ACTIVE_STATUSES
from agentdeck.agents.services.agent_parts import (
    agent_guardrails_validate,
    agent_handoffs_set,
    agent_provider_check,
    agent_snapshot,
    agent_tool_names_check,
    agent_tools_set,
    agent_vector_indices_set,
    output_schema_validate,
)
from agentdeck.core.exceptions import Conflict, NotFound, PermissionDenied
from agentdeck.files.models import VectorIndex

# Fields whose change alters how the agent behaves, and so makes a new version.
BEHAVIOUR_FIELDS = (
    "name",
    "instructions",
    "provider",
    "model",
    "model_settings",
    "output_schema",
    "guardrails",
)
METADATA_FIELDS = ("category", "tags", "icon", "featured")
# Marketplace placement is the platform's choice: only staff set it; from others it is ignored.
STAFF_METADATA_FIELDS = ("featured",)


def agent_check_can_change(*, agent: Agent, actor: User) -> None:
    """Only the owner (or staff) changes, restores or deletes an agent, public or not: 403.
    Views call it before they validate the body, so a stranger learns nothing from its errors."""
    if actor.pk != agent.owner_id and not actor.is_staff:
        raise PermissionDenied("Only the owner can change this agent.")


def _metadata_values(metadata: dict[str, Any] | None, *, actor: User) -> dict[str, Any]:
    """The marketplace fields ``actor`` may set, of those given."""
    return {
        k: v
        for k, v in (metadata or {}).items()
        if k in METADATA_FIELDS and (actor.is_staff or k not in STAFF_METADATA_FIELDS)
    }


def _unique_slug(owner: User, name: str, exclude_id: Any = None) -> str:
    base = slugify(name)[:200] or "agent"
    taken = set(
        Agent.objects.filter(owner=owner, slug__startswith=base)
        .exclude(pk=exclude_id)
        .values_list("slug", flat=True)
    )
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _new_version(*, agent: Agent, actor: User | None, note: str = "") -> AgentVersion:
    agent.current_version += 1
    agent.save(update_fields=["current_version", "updated_at"])
    return AgentVersion.objects.create(
        agent=agent,
        number=agent.current_version,
        snapshot=agent_snapshot(agent),
        created_by=actor,
        note=note,
    )


@transaction.atomic
def agent_create(
    *,
    owner: User,
    name: str,
    provider: Provider,
    model: str,
    actor: User | None = None,
    instructions: str = "",
    description: str = "",
    model_settings: dict[str, Any] | None = None,
    output_schema: dict[str, Any] | None = None,
    visibility: str = Agent.Visibility.PRIVATE,
    metadata: dict[str, Any] | None = None,
    guardrails: dict[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
    handoffs: list[dict[str, Any]] | None = None,
    vector_indices: list[VectorIndex] | None = None,
) -> Agent:
    """Create an agent with version 1 and its marketplace metadata row. ``vector_indices``
    (``VectorIndex`` rows of the owner) give it the ``file_search`` tool. ``actor`` (who asks;
    the owner unless given) sets the staff-only metadata only if staff."""
    agent_provider_check(provider=provider, owner=owner, model=model)
    output_schema_validate(output_schema)
    if guardrails:
        guardrails = agent_guardrails_validate(guardrails, provider_kind=provider.kind)
    agent = Agent.objects.create(
        owner=owner,
        name=name,
        slug=_unique_slug(owner, name),
        description=description,
        instructions=instructions,
        provider=provider,
        model=model,
        model_settings=model_settings or {},
        output_schema=output_schema,
        guardrails=guardrails or {},
        visibility=visibility,
    )
    if tools:
        agent_tools_set(agent=agent, tools=tools)
    if handoffs:
        agent_handoffs_set(agent=agent, handoffs=handoffs)
    if vector_indices:
        agent_vector_indices_set(agent=agent, indices=vector_indices)
        agent_tool_names_check(agent)
    AgentMetadata.objects.create(agent=agent, **_metadata_values(metadata, actor=actor or owner))
    _new_version(agent=agent, actor=owner, note="created")
    return agent


@transaction.atomic
def agent_update(
    *,
    agent: Agent,
    actor: User,
    metadata: dict[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
    handoffs: list[dict[str, Any]] | None = None,
    vector_indices: list[VectorIndex] | None = None,
    **fields: Any,
) -> Agent:
    """Apply changes; a change to any behaviour field, the tools, the handoffs or the vector
    indices makes a new immutable version.

    The agent row is locked first, so two concurrent edits get consecutive version numbers
    instead of colliding on (agent, number).

    Only staff suspend or activate an agent (``status``, 403 ``staff_only``) or set its
    staff-only metadata (ignored from others).
    """
    if "status" in fields and not actor.is_staff:
        raise PermissionDenied("Only staff can suspend or activate agents.", code="staff_only")
    agent = Agent.objects.select_for_update().select_related("provider").get(pk=agent.pk)
    if "guardrails" in fields:
        provider = fields.get("provider", agent.provider)
        fields["guardrails"] = agent_guardrails_validate(
            fields["guardrails"] or {}, provider_kind=provider.kind
        )
    changed = {k for k, v in fields.items() if getattr(agent, k) != v}
    graph_changes = (tools, handoffs, vector_indices)
    before = agent_snapshot(agent) if any(g is not None for g in graph_changes) else None
    if tools is not None:
        agent_tools_set(agent=agent, tools=tools)
    if handoffs is not None:
        agent_handoffs_set(agent=agent, handoffs=handoffs)
    if vector_indices is not None:
        agent_vector_indices_set(agent=agent, indices=vector_indices)
    if tools is not None or vector_indices is not None:
        agent_tool_names_check(agent)
    if before is not None:
        after = agent_snapshot(agent)
        if before["tools"] != after["tools"]:
            changed.add("tools")
        if before["handoffs"] != after["handoffs"]:
            changed.add("handoffs")
        if before.get("vector_index_ids") != after.get("vector_index_ids"):
            changed.add("vector_indices")
    if "provider" in changed or "model" in changed:
        agent_provider_check(
            provider=fields.get("provider", agent.provider),
            owner=agent.owner,
            model=fields.get("model", agent.model),
        )
    if "output_schema" in changed:
        output_schema_validate(fields["output_schema"])
    for name in changed & set(fields):
        setattr(agent, name, fields[name])
    if "name" in changed:
        agent.slug = _unique_slug(agent.owner, agent.name, exclude_id=agent.pk)
    if changed & set(fields):
        agent.save()
    versioned = changed & {*BEHAVIOUR_FIELDS, "tools", "handoffs", "vector_indices"}
    if versioned:
        _new_version(agent=agent, actor=actor, note="updated " + ", ".join(sorted(versioned)))
    values = _metadata_values(metadata, actor=actor)
    if values:
        # update() skips auto_now; the Next.js side reads updated_at from this shared table.
        AgentMetadata.objects.filter(agent=agent).update(**values, updated_at=timezone.now())
    return agent


@transaction.atomic
def agent_version_restore(*, agent: Agent, number: int, actor: User) -> Agent:
    """Make version ``number``'s behaviour current again, as a new version (history is never
    rewritten)."""
    version = AgentVersion.objects.filter(agent=agent, number=number).first()
    if version is None:
        raise NotFound(f"Agent has no version {number}.")
    snap = version.snapshot
    provider = Provider.objects.filter(pk=snap["provider_id"]).first()
    if provider is None:
        raise InvalidReference("That version's provider no longer exists.", code="invalid_provider")
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    # The same checks as an edit: the provider may have been disabled or stopped offering the
    # model since that version was made.
    agent_provider_check(provider=provider, owner=agent.owner, model=snap["model"])
    if snap["name"] != agent.name:
        agent.slug = _unique_slug(agent.owner, snap["name"], exclude_id=agent.pk)
    agent.name = snap["name"]
    agent.instructions = snap.get("instructions", "")
    agent.provider = provider
    agent.model = snap["model"]
    agent.model_settings = snap.get("model_settings") or {}
    agent.output_schema = snap.get("output_schema")
    agent.guardrails = snap.get("guardrails") or {}
    agent.save()
    # Tools, handoffs and vector indices come back too, where they still exist.
    tools = {
        str(t.pk): t
        for t in Tool.objects.filter(
            pk__in=[t["tool_id"] for t in snap.get("tools", []) if t.get("tool_id")]
        )
    }
    agent_tools_set(
        agent=agent,
        tools=[
            {"tool": tools[t["tool_id"]], "requires_approval": t.get("requires_approval", False)}
            for t in snap.get("tools", [])
            if t.get("tool_id") in tools
        ],
    )
    targets = {
        str(a.pk): a
        for a in Agent.objects.filter(pk__in=[h["to_agent_id"] for h in snap.get("handoffs", [])])
    }
    agent_handoffs_set(
        agent=agent,
        handoffs=[
            {**h, "to_agent": targets[h["to_agent_id"]]}
            for h in snap.get("handoffs", [])
            if h["to_agent_id"] in targets
        ],
    )
    wanted = [str(i) for i in snap.get("vector_index_ids") or []]
    indices = {str(i.pk): i for i in VectorIndex.objects.filter(pk__in=wanted, owner=agent.owner)}
    agent_vector_indices_set(agent=agent, indices=[indices[i] for i in wanted if i in indices])
    agent_tool_names_check(agent)
    _new_version(agent=agent, actor=actor, note=f"restored version {number}")
    return agent


def agent_set_status(*, agent: Agent, status: str) -> Agent:
    Agent.objects.filter(pk=agent.pk).update(status=status)
    agent.refresh_from_db(fields=["status", "updated_at"])
    return agent


@transaction.atomic
def agent_delete(*, agent: Agent) -> None:
    """Delete an agent with its versions, runs (and their events) and conversations.

    1. Refuse (409 ``agent_busy``) while a run is in flight: its worker would write to rows that
       are gone and its credit hold would never be settled.
    2. Delete the runs first: each run PROTECTs the version it pinned, so deleting the agent
       alone fails on the versions it cascades to.
    3. A run started between 1 and the delete makes the collector raise ProtectedError before
       any row is deleted; it is answered like 1 and the transaction rolls back.
    """
    if AgentRun.objects.filter(agent=agent, status__in=ACTIVE_STATUSES).exists():
        raise Conflict("This agent has runs in flight; cancel them first.", code="agent_busy")
    AgentRun.objects.filter(agent=agent).delete()
    try:
        agent.delete()
    except ProtectedError:
        raise Conflict(
            "This agent has runs in flight; cancel them first.", code="agent_busy"
        ) from None
