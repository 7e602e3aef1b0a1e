"""Bounds on the client JSON of the agents domain: what agents, tools, runs and OpenAPI imports
may hold (``agentdeck.core.jsonshape``). One module so the limits can be read, and changed,
together; the serializers check them with a 400 naming the field, and services that take the
same values from other callers check them again.

Each bound is far above what a real definition needs (the largest JSON Schema in OpenAI's
function-calling examples is a few kilobytes) and far below what would hurt PostgreSQL, the
JSON Schema validator or a model's context.
"""

from __future__ import annotations

from agentdeck.core.jsonshape import JSONShape

# A JSON Schema written by a user: an agent's output_schema, an http tool's parameters_schema
# (OpenAPI imports included, with the component schemas they use copied into $defs).
# Any root: a schema that is not an object is refused by the domain's own check, with its own
# code (invalid_output_schema, invalid_schema).
JSON_SCHEMA_SHAPE = JSONShape(
    root="any",
    max_keys=256,
    max_depth=32,
    max_key_length=256,
    max_string_length=8192,
    max_items=1000,
    max_bytes=128 * 1024,
)

# {"input": [...], "output": [...]}: the guardrails validator bounds the entries per side
# (MAX_GUARDRAILS_PER_SIDE) and each entry's fields; this bounds the whole, which can carry a
# json_schema guardrail's schema, so it is a schema's bound.
GUARDRAILS_SHAPE = JSON_SCHEMA_SHAPE

# A tool's config: a handful of keys, headers (agentdeck.core.httpheaders bounds them again),
# an MCP server's allowed_tools.
TOOL_CONFIG_SHAPE = JSONShape(
    root="object",
    max_keys=64,
    max_depth=2,
    max_key_length=128,
    max_string_length=4096,
    max_items=128,
    max_bytes=64 * 1024,
)

# A run's metadata: the caller's labels, stored with the run and shown back.
RUN_METADATA_SHAPE = JSONShape(
    root="object",
    max_keys=32,
    max_depth=3,
    max_key_length=64,
    max_string_length=1024,
    max_items=64,
    max_bytes=16 * 1024,
)

# An OpenAPI document to import: big public APIs' documents run to a few megabytes; the
# operations imported from one are bounded separately (MAX_IMPORTED_OPERATIONS).
OPENAPI_DOCUMENT_SHAPE = JSONShape(
    root="object",
    max_keys=5000,
    max_depth=64,
    max_key_length=1024,
    max_string_length=100_000,
    max_items=5000,
    max_bytes=4 * 1024 * 1024,
)
MAX_IMPORTED_OPERATIONS = 128

# Lists and texts in agent and tool definitions. OpenAI accepts at most 128 tools per request;
# a graph has at most MAX_GRAPH_AGENTS (agentdeck.agents.runtime.graph) agents.
MAX_AGENT_TOOLS = 128
MAX_AGENT_HANDOFFS = 25
TOOL_DESCRIPTION_MAX_LENGTH = 4096
# A marketplace tag; ?tag= filters by one, so it is bounded the same.
TAG_MAX_LENGTH = 50
AGENT_DESCRIPTION_MAX_LENGTH = 4096
# Approvals answered in one request: a run waits on the calls of one model turn.
MAX_APPROVAL_DECISIONS = 128
APPROVAL_MESSAGE_MAX_LENGTH = 4096
