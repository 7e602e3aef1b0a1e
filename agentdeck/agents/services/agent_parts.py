"""What an agent is made of, checked and written: its tools, vector indices and handoffs (each
list replaced as a whole), the checks on its provider, guardrails and output schema, and the
snapshot each version stores. ``agentdeck.agents.services.agents`` composes these."""

from __future__ import annotations

from typing import Any

from agentdeck.accounts.models import User
from agentdeck.agents.exceptions import InvalidReference, ModelNotAvailable
from agentdeck.agents.limits import GUARDRAILS_SHAPE, JSON_SCHEMA_SHAPE
from agentdeck.agents.models import Agent, AgentTool, Handoff, Provider
from agentdeck.core.exceptions import ApplicationError
from agentdeck.core.jsonshape import check_shape, shape_errors_as
from agentdeck.files.models import AgentVectorIndex, VectorIndex


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


def agent_tools_set(*, agent: Agent, tools: list[dict[str, Any]]) -> None:
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


def agent_vector_indices_set(*, agent: Agent, indices: list[VectorIndex]) -> None:
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


def agent_tool_names_check(agent: Agent) -> None:
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


def agent_handoffs_set(*, agent: Agent, handoffs: list[dict[str, Any]]) -> None:
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


def agent_guardrails_validate(guardrails: Any, *, provider_kind: str) -> dict[str, Any]:
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


def agent_provider_check(*, provider: Provider, owner: User, model: str) -> None:
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
