from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone
from django.utils.text import slugify

from agentdeck.accounts.models import User
from agentdeck.agents.exceptions import InvalidReference, ModelNotAvailable
from agentdeck.agents.limits import GUARDRAILS_SHAPE, JSON_SCHEMA_SHAPE
from agentdeck.agents.models import (
    Agent,
    AgentMetadata,
    AgentRun,
    AgentTool,
    AgentVersion,
    Handoff,
    Provider,
    Tool,
)
from agentdeck.agents.models.run import ACTIVE_STATUSES
from agentdeck.core.exceptions import ApplicationError, Conflict, NotFound, PermissionDenied
from agentdeck.core.jsonshape import check_shape, shape_errors_as
from agentdeck.files.models import AgentVectorIndex, VectorIndex

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


def agent_snapshot(agent: Agent) -> dict[str, Any]:
    """Everything a run needs to rebuild this agent exactly; stored in ``AgentVersion.snapshot``.

    ``vector_index_ids`` (the indices its ``file_search`` tool searches, in position order) is
    present only when there are some: versions of agents without indices look as they did
    before indices existed, and a missing key means none everywhere it is read.
    """
    index_ids = [str(a.index_id) for a in agent.vector_index_attachments.order_by("position", "id")]
    return {
        "name": agent.name,
        "instructions": agent.instructions,
        "provider_id": str(agent.provider_id),
        "provider_kind": agent.provider.kind,
        "model": agent.model,
        "model_settings": dict(agent.model_settings or {}),
        "output_schema": agent.output_schema,
        "guardrails": agent.guardrails or {},
        "tools": [
            {
                "tool_id": str(a.tool_id),
                "kind": a.tool.kind,
                "name": a.tool.name,
                "description": a.tool.description,
                "config": a.tool.config,
                "parameters_schema": a.tool.parameters_schema,
                "requires_approval": a.requires_approval,
                **({"discovered": a.tool.discovered} if a.tool.kind == "mcp" else {}),
            }
            for a in agent.tool_attachments.select_related("tool").order_by("position", "id")
        ],
        "handoffs": [
            {
                "to_agent_id": str(h.to_agent_id),
                "tool_name": h.tool_name,
                "tool_description": h.tool_description,
                "input_filter": h.input_filter,
            }
            for h in agent.handoffs.order_by("position", "created_at")
        ],
        **({"vector_index_ids": index_ids} if index_ids else {}),
    }


def _set_tools(*, agent: Agent, tools: list[dict[str, Any]]) -> None:
    """Replace the agent's tool attachments: ``[{"tool": Tool, "requires_approval": bool}]``."""
    seen = set()
    for entry in tools:
        tool = entry["tool"]
        if tool.owner_id != agent.owner_id:
            raise InvalidReference(f"Unknown tool {tool.id}.", code="invalid_tool")
        if tool.pk in seen:
            raise InvalidReference(f"Tool {tool.name} is attached twice.", code="invalid_tool")
        seen.add(tool.pk)
        builtin = (tool.config or {}).get("builtin")
        if (
            builtin in ("web_search", "code_interpreter")
            and agent.provider.kind != Provider.Kind.OPENAI
        ):
            raise InvalidReference(
                f"The hosted tool {builtin} needs an openai provider.", code="invalid_tool"
            )
    names = [e["tool"].name for e in tools]
    if len(names) != len(set(names)):
        raise InvalidReference("Two attached tools share a name.", code="invalid_tool")
    AgentTool.objects.filter(agent=agent).delete()
    AgentTool.objects.bulk_create(
        [
            AgentTool(
                agent=agent,
                tool=e["tool"],
                requires_approval=bool(e.get("requires_approval")),
                position=i,
            )
            for i, e in enumerate(tools)
        ]
    )


def _set_vector_indices(*, agent: Agent, indices: list[VectorIndex]) -> None:
    """Replace the vector indices the agent's ``file_search`` tool searches (in this order).
    Each must be the agent owner's own; none twice."""
    seen = set()
    for index in indices:
        if index.owner_id != agent.owner_id:
            raise InvalidReference(f"Unknown vector index {index.pk}.", code="invalid_vector_index")
        if index.pk in seen:
            raise InvalidReference(
                f"Vector index {index.name} is attached twice.", code="invalid_vector_index"
            )
        seen.add(index.pk)
    AgentVectorIndex.objects.filter(agent=agent).delete()
    AgentVectorIndex.objects.bulk_create(
        [AgentVectorIndex(agent=agent, index=index, position=i) for i, index in enumerate(indices)]
    )


def _check_tool_names(agent: Agent) -> None:
    """An agent with vector indices gets the built-in ``file_search`` tool; an attached tool of
    that name would make two tools the model cannot tell apart."""
    from agentdeck.files.tool import TOOL_NAME

    if (
        agent.vector_index_attachments.exists()
        and agent.tool_attachments.filter(tool__name=TOOL_NAME).exists()
    ):
        raise InvalidReference(
            f"An agent with vector indices has a built-in {TOOL_NAME} tool; "
            f"rename the attached tool called {TOOL_NAME}.",
            code="invalid_tool",
        )


def _set_handoffs(*, agent: Agent, handoffs: list[dict[str, Any]]) -> None:
    """Replace the agent's handoffs: ``[{"to_agent": Agent, "tool_name"?, "tool_description"?,
    "input_filter"?}]``; targets must be agents the owner may run, never the agent itself."""
    targets = set()
    for entry in handoffs:
        target = entry["to_agent"]
        if target.pk == agent.pk:
            raise InvalidReference("An agent cannot hand off to itself.", code="invalid_handoff")
        if target.owner_id != agent.owner_id and target.visibility != Agent.Visibility.PUBLIC:
            raise InvalidReference(f"Unknown agent {target.id}.", code="invalid_handoff")
        if target.pk in targets:
            raise InvalidReference(f"Agent {target.name} appears twice.", code="invalid_handoff")
        targets.add(target.pk)
    Handoff.objects.filter(from_agent=agent).delete()
    Handoff.objects.bulk_create(
        [
            Handoff(
                from_agent=agent,
                to_agent=e["to_agent"],
                tool_name=e.get("tool_name") or "",
                tool_description=e.get("tool_description") or "",
                input_filter=e.get("input_filter") or Handoff.InputFilter.NONE,
                position=i,
            )
            for i, e in enumerate(handoffs)
        ]
    )


def _validate_guardrails(guardrails: Any, *, provider_kind: str) -> dict[str, Any]:
    from agentdeck.agents.runtime.guardrails import validate_guardrails

    # The API checks the bounds first, as a field error; this is for other callers.
    with shape_errors_as("guardrails", code="invalid_guardrails"):
        check_shape(guardrails, GUARDRAILS_SHAPE)
    return validate_guardrails(guardrails, provider_kind=provider_kind)


def output_schema_validate(schema: Any) -> None:
    if schema is None:
        return
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict):
        raise ApplicationError("output_schema must be a JSON object.", code="invalid_output_schema")
    with shape_errors_as("output_schema", code="invalid_output_schema"):
        check_shape(schema, JSON_SCHEMA_SHAPE)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        where = "/".join(str(p) for p in e.path) or "(root)"
        raise ApplicationError(
            f"output_schema is not valid JSON Schema at {where}: {e.message}",
            code="invalid_output_schema",
        ) from None


def _check_provider(*, provider: Provider, owner: User, model: str) -> None:
    visible = provider.owner_id is None or provider.owner_id == owner.pk
    if not visible:
        raise InvalidReference("Unknown provider.", code="invalid_provider")
    if not provider.enabled:
        raise InvalidReference(f"Provider {provider.name} is disabled.", code="provider_disabled")
    if provider.models_cache and model not in provider.models_cache:
        raise ModelNotAvailable(
            f"Provider {provider.name} does not offer model {model!r}.",
            extra={"available_models": provider.models_cache[:100]},
        )
    if provider.kind == Provider.Kind.MOCK:
        from agentdeck.agents.runtime.mock_model import MOCK_MODELS

        if model not in MOCK_MODELS:
            raise ModelNotAvailable(
                f"The mock provider offers only {', '.join(MOCK_MODELS)}.",
                extra={"available_models": list(MOCK_MODELS)},
            )


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
    _check_provider(provider=provider, owner=owner, model=model)
    output_schema_validate(output_schema)
    if guardrails:
        guardrails = _validate_guardrails(guardrails, provider_kind=provider.kind)
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
        _set_tools(agent=agent, tools=tools)
    if handoffs:
        _set_handoffs(agent=agent, handoffs=handoffs)
    if vector_indices:
        _set_vector_indices(agent=agent, indices=vector_indices)
        _check_tool_names(agent)
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
        fields["guardrails"] = _validate_guardrails(
            fields["guardrails"] or {}, provider_kind=provider.kind
        )
    changed = {k for k, v in fields.items() if getattr(agent, k) != v}
    graph_changes = (tools, handoffs, vector_indices)
    before = agent_snapshot(agent) if any(g is not None for g in graph_changes) else None
    if tools is not None:
        _set_tools(agent=agent, tools=tools)
    if handoffs is not None:
        _set_handoffs(agent=agent, handoffs=handoffs)
    if vector_indices is not None:
        _set_vector_indices(agent=agent, indices=vector_indices)
    if tools is not None or vector_indices is not None:
        _check_tool_names(agent)
    if before is not None:
        after = agent_snapshot(agent)
        if before["tools"] != after["tools"]:
            changed.add("tools")
        if before["handoffs"] != after["handoffs"]:
            changed.add("handoffs")
        if before.get("vector_index_ids") != after.get("vector_index_ids"):
            changed.add("vector_indices")
    if "provider" in changed or "model" in changed:
        _check_provider(
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
    _check_provider(provider=provider, owner=agent.owner, model=snap["model"])
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
    _set_tools(
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
    _set_handoffs(
        agent=agent,
        handoffs=[
            {**h, "to_agent": targets[h["to_agent_id"]]}
            for h in snap.get("handoffs", [])
            if h["to_agent_id"] in targets
        ],
    )
    wanted = [str(i) for i in snap.get("vector_index_ids") or []]
    indices = {str(i.pk): i for i in VectorIndex.objects.filter(pk__in=wanted, owner=agent.owner)}
    _set_vector_indices(agent=agent, indices=[indices[i] for i in wanted if i in indices])
    _check_tool_names(agent)
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
