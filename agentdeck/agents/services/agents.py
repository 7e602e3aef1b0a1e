from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone
from django.utils.text import slugify

from agentdeck.accounts.models import User
from agentdeck.agents.exceptions import InvalidReference, ModelNotAvailable
from agentdeck.agents.models import Agent, AgentMetadata, AgentRun, AgentVersion, Provider
from agentdeck.agents.models.run import ACTIVE_STATUSES
from agentdeck.core.exceptions import ApplicationError, Conflict, NotFound

# Fields whose change alters how the agent behaves, and so makes a new version.
BEHAVIOUR_FIELDS = ("name", "instructions", "provider", "model", "model_settings", "output_schema")
METADATA_FIELDS = ("category", "tags", "icon", "featured")


def agent_snapshot(agent: Agent) -> dict[str, Any]:
    """Everything a run needs to rebuild this agent exactly; stored in ``AgentVersion.snapshot``."""
    return {
        "name": agent.name,
        "instructions": agent.instructions,
        "provider_id": str(agent.provider_id),
        "provider_kind": agent.provider.kind,
        "model": agent.model,
        "model_settings": dict(agent.model_settings or {}),
        "output_schema": agent.output_schema,
        "tools": [],
        "handoffs": [],
    }


def validate_output_schema(schema: Any) -> None:
    if schema is None:
        return
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict):
        raise ApplicationError("output_schema must be a JSON object.", code="invalid_output_schema")
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
    instructions: str = "",
    description: str = "",
    model_settings: dict[str, Any] | None = None,
    output_schema: dict[str, Any] | None = None,
    visibility: str = Agent.Visibility.PRIVATE,
    metadata: dict[str, Any] | None = None,
) -> Agent:
    """Create an agent with version 1 and its marketplace metadata row."""
    _check_provider(provider=provider, owner=owner, model=model)
    validate_output_schema(output_schema)
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
        visibility=visibility,
    )
    AgentMetadata.objects.create(
        agent=agent, **{k: v for k, v in (metadata or {}).items() if k in METADATA_FIELDS}
    )
    _new_version(agent=agent, actor=owner, note="created")
    return agent


@transaction.atomic
def agent_update(
    *, agent: Agent, actor: User, metadata: dict[str, Any] | None = None, **fields: Any
) -> Agent:
    """Apply changes; a change to any behaviour field makes a new immutable version.

    The agent row is locked first, so two concurrent edits get consecutive version numbers
    instead of colliding on (agent, number).
    """
    agent = Agent.objects.select_for_update().select_related("provider").get(pk=agent.pk)
    changed = {k for k, v in fields.items() if getattr(agent, k) != v}
    if "provider" in changed or "model" in changed:
        _check_provider(
            provider=fields.get("provider", agent.provider),
            owner=agent.owner,
            model=fields.get("model", agent.model),
        )
    if "output_schema" in changed:
        validate_output_schema(fields["output_schema"])
    for name in changed:
        setattr(agent, name, fields[name])
    if "name" in changed:
        agent.slug = _unique_slug(agent.owner, agent.name, exclude_id=agent.pk)
    if changed:
        agent.save()
    if changed & set(BEHAVIOUR_FIELDS):
        _new_version(
            agent=agent,
            actor=actor,
            note="updated " + ", ".join(sorted(changed & set(BEHAVIOUR_FIELDS))),
        )
    values = {k: v for k, v in (metadata or {}).items() if k in METADATA_FIELDS}
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
    agent.save()
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
