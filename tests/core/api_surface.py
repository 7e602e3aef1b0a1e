"""The API's operations, read from its own OpenAPI document, with concrete paths for one user.

The request-path tests (cursors, malformed input, methods) run over every operation this finds,
so an endpoint added later is covered without being listed here; a path parameter this module
cannot fill fails loudly instead of being skipped.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from agentdeck.accounts.services import api_key_create
from agentdeck.agents.services.agents import agent_create
from agentdeck.agents.services.conversations import conversation_create
from agentdeck.agents.services.providers import provider_create
from agentdeck.credits.services import credits_grant
from agentdeck.files import services as file_services
from tests.factories import (
    AgentRunFactory,
    ConversationItemFactory,
    ModelPriceFactory,
    ToolFactory,
    VectorIndexFactory,
)

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Operation:
    method: str
    template: str  # /api/v1/runs/{id}/events/
    query: tuple[str, ...]  # documented query parameters
    json_body: bool = False  # takes an application/json request body

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


@cache
def _schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(method: str | None = None) -> list[Operation]:
    out = []
    for template, item in _schema()["paths"].items():
        for verb, operation in item.items():
            if method and verb.upper() != method:
                continue
            query = tuple(p["name"] for p in operation.get("parameters", []) if p["in"] == "query")
            json_body = "application/json" in operation.get("requestBody", {}).get("content", {})
            out.append(Operation(verb.upper(), template, query, json_body))
    return out


def documented_methods() -> dict[str, set[str]]:
    """Path template -> the methods the document lists for it."""
    return {template: {m.upper() for m in item} for template, item in _schema()["paths"].items()}


@dataclass
class Objects:
    """One of each kind of object the API addresses by id, all owned by one user."""

    by_resource: dict[str, str]  # "runs" -> id
    version_number: int

    def path(self, template: str) -> str:
        """``template`` with its parameters filled with this user's objects."""
        resource = template.removeprefix("/api/v1/").split("/", 1)[0]

        def fill(match: re.Match) -> str:
            name = match.group(1)
            if name == "number":
                return str(self.version_number)
            if name == "file_id":
                return self.by_resource["files"]
            assert name == "id", f"tests/core/api_surface.py cannot fill {{{name}}} in {template}"
            assert resource in self.by_resource, (
                f"tests/core/api_surface.py has no {resource!r} object for {template}: add one"
            )
            return self.by_resource[resource]

        return _PARAM.sub(fill, template)

    def foreign_path(self, template: str) -> str:
        """``template`` with ids that name nothing."""
        return _PARAM.sub(lambda m: "1" if m.group(1) == "number" else str(uuid.uuid4()), template)


def make_objects(user) -> Objects:
    """Each kind of object for ``user``, with enough in every list to need a second page at
    ``page_size=1``."""
    provider = provider_create(actor=user, name="offline", kind="mock")
    provider_create(actor=user, name="offline too", kind="mock")
    agents = [
        agent_create(owner=user, name=f"Agent {n}", provider=provider, model="mock-echo")
        for n in range(2)
    ]
    agent = agents[0]
    conversation = conversation_create(owner=user, agent=agent, title="chat")
    conversation_create(owner=user, agent=agent, title="another")
    runs = [AgentRunFactory(agent=agent, status=status) for status in ("succeeded", "failed")]
    for position in range(3):
        ConversationItemFactory(conversation=conversation, position=position)
    tools = [ToolFactory(owner=user, name=f"calc{n}") for n in range(2)]
    index = VectorIndexFactory(owner=user, name="docs")
    VectorIndexFactory(owner=user, name="more")
    files = [
        file_services.file_upload(
            owner=user, name=f"note{n}.txt", data=f"note {n}".encode(), vector_indices=[index]
        )[0]
        for n in range(2)
    ]
    for n in range(2):
        credits_grant(user=user, amount=1000 + n)
        ModelPriceFactory(
            provider_kind="mock",
            model=f"surface-{n}",
            input_per_million=1,
            cached_input_per_million=1,
            output_per_million=1,
            effective_from=timezone.now(),
        )
    keys = [api_key_create(owner=user, name=f"key{n}")[0] for n in range(2)]
    return Objects(
        by_resource={
            "agents": str(agent.pk),
            "api-keys": str(keys[0].pk),
            "conversations": str(conversation.pk),
            "files": str(files[0].pk),
            "providers": str(provider.pk),
            "runs": str(runs[0].pk),
            "tools": str(tools[0].pk),
            "vector-indices": str(index.pk),
        },
        version_number=agent.current_version,
    )
