"""Build the SDK agent graph of a run: the pinned agent, its tools, the agents it can hand off
to, the agents it uses as tools, and their guardrails.

An agent with vector indices also gets the built-in ``file_search`` tool
(``agentdeck.files.tool``) over them.

Handoff targets and agents used as tools run their *current* version, resolved when the run is
built (only the run's own agent is pinned by the run). Mutual handoffs (A -> B -> A) are
allowed: agents are created first and their handoff lists filled in afterwards. A target the
run's owner may not run (someone else's private agent) or a suspended one fails the run with
``tool_error`` rather than being skipped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents import Agent as SDKAgent
from agents import FunctionTool, Handoff, ItemHelpers, RunResult, RunResultStreaming, handoff
from agents.extensions import handoff_filters

from agentdeck.agents.exceptions import ToolError
from agentdeck.agents.models import Agent, AgentVersion, Provider
from agentdeck.agents.runtime import events as ev
from agentdeck.agents.runtime.builder import (
    JsonSchemaOutput,
    build_model,
    build_model_settings,
    openai_client,
)
from agentdeck.agents.runtime.clients import current_client_pool
from agentdeck.agents.runtime.tools import build_tools
from agentdeck.agents.selectors import provider_get_by_pk

MAX_GRAPH_AGENTS = 25


class GraphError(ToolError):
    pass


@dataclass
class RunGraph:
    agent: SDKAgent
    # SDK agent name -> model name (usage is keyed by model).
    model_names: dict[str, str] = field(default_factory=dict)
    # Usage of nested runs (agents used as tools), added to the parent run's usage.
    nested_usage: dict[str, dict[str, int]] = field(default_factory=dict)
    # MCP servers the run must connect before starting (and clean up after).
    mcp_servers: list[Any] = field(default_factory=list)
    # SDK tool name -> Tool id, for tool call records.
    tool_ids: dict[str, str] = field(default_factory=dict)
    guardrails: dict[str, Any] = field(default_factory=dict)
    provider_kind: str = ""
    # HTTP clients of the models that no client pool holds (none was current: see
    # agentdeck.agents.runtime.clients), closed when the run ends. A pool closes its own.
    clients: list[Any] = field(default_factory=list)


class GraphBuilder:
    def __init__(self, *, owner_id: str) -> None:
        self.owner_id = owner_id
        self.graph: RunGraph | None = None
        self._agents: dict[str, SDKAgent] = {}
        self._providers: dict[str, Provider] = {}

    def build(self, snapshot: dict[str, Any]) -> RunGraph:
        graph = RunGraph(
            # Set just below: ``_agent`` reads ``self.graph``, so the graph exists first.
            agent=None,  # type: ignore[arg-type]
            guardrails=snapshot.get("guardrails") or {},
            provider_kind=snapshot.get("provider_kind", ""),
        )
        self.graph = graph
        graph.agent = self._agent(snapshot, key="__root__")
        return graph

    # --- pieces ----------------------------------------------------------------------------------

    def _provider(self, provider_id: str) -> Provider:
        if provider_id not in self._providers:
            provider = provider_get_by_pk(provider_id)
            if provider is None:
                raise GraphError("An agent's provider no longer exists.")
            self._providers[provider_id] = provider
        return self._providers[provider_id]

    def _target_snapshot(self, agent_id: str) -> dict[str, Any]:
        agent = Agent.objects.filter(pk=agent_id).first()
        if agent is None:
            raise GraphError(f"Agent {agent_id} no longer exists.")
        if agent.owner_id != self.owner_id and agent.visibility != Agent.Visibility.PUBLIC:
            raise GraphError(f"Agent {agent.name} is private to its owner.")
        if agent.status != Agent.Status.ACTIVE:
            raise GraphError(f"Agent {agent.name} is suspended.")
        snapshot: dict[str, Any] = AgentVersion.objects.get(
            agent=agent, number=agent.current_version
        ).snapshot
        return snapshot

    def _agent(self, snapshot: dict[str, Any], *, key: str) -> SDKAgent:
        if key in self._agents:
            return self._agents[key]
        if len(self._agents) >= MAX_GRAPH_AGENTS:
            raise GraphError(f"The agent graph has more than {MAX_GRAPH_AGENTS} agents.")
        from agentdeck.agents.runtime.guardrails import build_guardrails

        graph = self.graph
        assert graph is not None
        provider = self._provider(str(snapshot["provider_id"]))
        output_schema = snapshot.get("output_schema")
        guardrail_config = snapshot.get("guardrails") or {}
        input_guardrails, output_guardrails = build_guardrails(
            guardrail_config, moderation_client_factory=lambda: openai_client(provider)
        )
        model = build_model(provider, snapshot["model"])
        client = getattr(model, "_client", None)
        pool = current_client_pool()
        if client is not None and (pool is None or not pool.holds(client)):
            graph.clients.append(client)
        agent = SDKAgent(
            name=snapshot["name"],
            instructions=snapshot.get("instructions") or None,
            model=model,
            model_settings=build_model_settings(snapshot.get("model_settings") or {}),
            output_type=JsonSchemaOutput(output_schema) if output_schema else None,
            input_guardrails=input_guardrails if key == "__root__" else [],
            output_guardrails=output_guardrails,
        )
        self._agents[key] = agent
        graph.model_names[agent.name] = snapshot["model"]

        built = build_tools(snapshot.get("tools") or [], provider_kind=provider.kind, builder=self)
        agent.tools = built.tools
        if snapshot.get("vector_index_ids"):
            agent.tools.append(self._file_search(snapshot, built.tools))
        graph.mcp_servers.extend(built.mcp_servers)
        agent.mcp_servers = built.mcp_servers
        graph.tool_ids.update(built.tool_ids)

        handoffs: list[SDKAgent[Any] | Handoff[Any, Any]] = []
        for spec in snapshot.get("handoffs") or []:
            target_id = str(spec["to_agent_id"])
            target = self._agent(self._target_snapshot(target_id), key=target_id)
            kwargs: dict[str, Any] = {}
            if spec.get("tool_name"):
                kwargs["tool_name_override"] = spec["tool_name"]
            if spec.get("tool_description"):
                kwargs["tool_description_override"] = spec["tool_description"]
            if spec.get("input_filter") == "remove_tool_history":
                kwargs["input_filter"] = handoff_filters.remove_all_tools
            handoffs.append(handoff(target, **kwargs))
        agent.handoffs = handoffs
        return agent

    def _file_search(self, snapshot: dict[str, Any], tools: list[Any]) -> FunctionTool:
        """The built-in ``file_search`` tool over the version's vector indices.

        An attached tool with the same name fails the run (``tool_error``) rather than dropping
        either tool: the services refuse that combination when an agent is saved, so only an
        older version can carry it, and silently answering without the files would be worse.
        """
        from agentdeck.files.tool import TOOL_NAME, file_search_tool

        if any(getattr(t, "name", None) == TOOL_NAME for t in tools):
            raise GraphError(
                f"Agent {snapshot['name']} has a tool named {TOOL_NAME}, which is the name of "
                "its built-in file search tool."
            )
        return file_search_tool(list(snapshot["vector_index_ids"]))

    def agent_tool(self, spec: dict[str, Any]) -> FunctionTool:
        """An agent used as a tool: a nested run whose usage is added to this run's."""
        graph = self.graph
        assert graph is not None
        target_id = str((spec.get("config") or {}).get("agent_id", ""))
        snapshot = self._target_snapshot(target_id)
        # A separate builder: the nested agent's handoffs and tools are its own graph.
        nested = GraphBuilder(owner_id=self.owner_id).build(snapshot)
        graph.model_names.update(nested.model_names)
        graph.mcp_servers.extend(nested.mcp_servers)
        graph.clients.extend(nested.clients)
        nested_model = snapshot["model"]

        async def extract(result: RunResult | RunResultStreaming) -> str:
            # The nested run's own model responses: its context wrapper may be shared with the
            # parent run, so its usage total would count the parent's requests too.
            for response in result.raw_responses:
                usage = response.usage
                ev.add_usage(
                    graph.nested_usage,
                    nested_model,
                    {
                        "requests": usage.requests or 1,
                        "input_tokens": usage.input_tokens,
                        "cached_input_tokens": getattr(
                            usage.input_tokens_details, "cached_tokens", 0
                        )
                        or 0,
                        "output_tokens": usage.output_tokens,
                        "reasoning_tokens": getattr(
                            usage.output_tokens_details, "reasoning_tokens", 0
                        )
                        or 0,
                        "total_tokens": usage.total_tokens,
                    },
                )
            for model, counts in nested.nested_usage.items():
                ev.add_usage(graph.nested_usage, model, counts)
            output = result.final_output
            if isinstance(output, str):
                return output
            return ItemHelpers.text_message_outputs(result.new_items) or str(ev.jsonable(output))

        return nested.agent.as_tool(
            tool_name=spec["name"],
            tool_description=spec.get("description") or f"Ask the agent {snapshot['name']}.",
            custom_output_extractor=extract,
            needs_approval=bool(spec.get("requires_approval")),
        )
