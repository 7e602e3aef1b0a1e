"""MCP server tools: the OpenAI Agents SDK's MCP client, configured from a ``Tool`` of kind ``mcp``.

A ``mcp`` Tool's ``config`` is ``{"url", "transport": "streamable_http" | "sse",
"allowed_tools": [...], "headers": {...}}``; secret headers live encrypted on the Tool row.
``servers`` builds the SDK server objects (for a run, or to list the tools on a refresh),
``cache`` keeps their tool lists between runs, and ``guarded_http`` is their SSRF-guarded HTTP
client. Callers import from this package.
"""

from __future__ import annotations

from agentdeck.agents.runtime.mcp.cache import TOOLS_CACHE_TTL_SECONDS, tools_list_cache
from agentdeck.agents.runtime.mcp.guarded_http import guarded_client_factory
from agentdeck.agents.runtime.mcp.servers import (
    MCP_HTTP_TIMEOUT_SECONDS,
    MCP_REQUEST_TIMEOUT_SECONDS,
    MCPServerUnavailable,
    build_mcp_server,
    discover_tools,
)

__all__ = [
    "MCP_HTTP_TIMEOUT_SECONDS",
    "MCP_REQUEST_TIMEOUT_SECONDS",
    "TOOLS_CACHE_TTL_SECONDS",
    "MCPServerUnavailable",
    "build_mcp_server",
    "discover_tools",
    "guarded_client_factory",
    "tools_list_cache",
]
