"""The SDK's MCP server objects for ``mcp`` Tools: built from a run's snapshot entry
(``build_mcp_server``) or for a refresh (``discover_tools``), with the cross-run tool-list cache,
secret headers redacted from outputs, and failures reported without the server's own words.

A server that cannot be reached or fails ``tools/list`` raises ``MCPServerUnavailable``; a
failing ``tools/call`` is not an error of the run (the SDK turns it into text the model sees).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpx
from agents.mcp import (
    MCPServer,
    MCPServerSse,
    MCPServerStreamableHttp,
    create_static_tool_filter,
)

from agentdeck.agents.exceptions import InvalidReference, ToolError
from agentdeck.agents.runtime.mcp.cache import tools_cache_key, tools_list_cache
from agentdeck.agents.runtime.mcp.guarded_http import guarded_client_factory
from agentdeck.core.exceptions import ApplicationError
from agentdeck.core.httpheaders import HeaderError, check_headers
from agentdeck.core.outbound import OutboundRefused, check_url

if TYPE_CHECKING:
    from agentdeck.agents.models import Tool

logger = logging.getLogger(__name__)

# Connect and write timeout of each HTTP request to the server.
MCP_HTTP_TIMEOUT_SECONDS = 10.0
# How long one MCP request (a tool call, tools/list) may take before it fails.
MCP_REQUEST_TIMEOUT_SECONDS = 60.0
# How long an open SSE stream may stay silent.
MCP_SSE_READ_TIMEOUT_SECONDS = 300.0
# discover_tools as a whole: connect, initialise, list.
DISCOVERY_TIMEOUT_SECONDS = 20.0


class MCPServerUnavailable(ToolError):
    """The MCP server could not be connected to, or failed to list its tools."""

    status = 502


def _describe(error: BaseException, server: str, doing: str, secrets: Iterable[str] = ()) -> str:
    """What users see of a failure: what was being done and the HTTP status or kind of error,
    never the server's own words (an MCP server's error may quote the headers it was sent, and
    a run's error is visible to everyone running a public agent). Those go to the log,
    redacted (agentdeck.core.redaction)."""
    from agentdeck.core.redaction import redact

    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    logger.info(
        "could not %s the MCP server %s: %s: %s",
        doing,
        server,
        type(error).__name__,
        redact(str(error), secrets),
    )
    reason = type(error).__name__
    cause: BaseException | None = error
    while cause is not None:
        status = getattr(getattr(cause, "response", None), "status_code", None)
        if isinstance(status, int):
            reason = f"HTTP {status}"
            break
        if isinstance(cause, httpx.HTTPError):
            reason = type(cause).__name__
            break
        cause = cause.__cause__ or cause.__context__
    return f"Could not {doing} the MCP server {server} ({reason})."


def _prime_session(session: Any, tools: list[Any]) -> bool:
    """Teach an MCP client session what a ``tools/list`` answer would have taught it, from a cached
    list: the tools' output schemas (the client validates structured results against them, and
    lists the tools itself on the first call when it has none) and, in mcp 2.x, the
    argument-to-header maps of ``x-mcp-header`` tools. These are the ``mcp`` package's internals
    (``ClientSession._absorb_tool_listing`` in 2.x, ``_tool_output_schemas`` in 1.x); when neither
    is there, this returns False and the caller asks the server instead, which is always correct.
    """
    if session is None:
        return False
    absorb = getattr(session, "_absorb_tool_listing", None)
    if callable(absorb):  # mcp 2.x
        from mcp.types import ListToolsResult

        absorb(ListToolsResult(tools=tools), complete=True)
        return True
    schemas = getattr(session, "_tool_output_schemas", None)
    if isinstance(schemas, dict):  # mcp 1.x
        for tool in tools:
            schemas[tool.name] = getattr(tool, "outputSchema", None)
        return True
    return False


class _CachedToolsMixin:
    """``list_tools`` through :data:`tools_list_cache`; connection and listing failures become
    :class:`MCPServerUnavailable`."""

    agentdeck_cache_key: tuple[Any, ...] | None = None
    agentdeck_tool_id: str | None = None
    # The values of the tool's secret headers: redacted from errors and outputs.
    agentdeck_secrets: tuple[str, ...] = ()
    _agentdeck_primed: Any = None  # the session primed from the cache
    name: str
    session: Any

    async def connect(self) -> None:
        try:
            await super().connect()  # type: ignore[misc]
        except Exception as e:
            raise MCPServerUnavailable(
                _describe(e, self.name, "connect to", self.agentdeck_secrets)
            ) from e

    async def list_tools(self, run_context: Any = None, agent: Any = None) -> list[Any]:
        key = self.agentdeck_cache_key
        if key is not None:
            cached = tools_list_cache.get(key)
            if cached is not None:
                session = self.session
                if self._agentdeck_primed is session or _prime_session(session, cached):
                    self._agentdeck_primed = session
                    return cached
        try:
            tools: list[Any] = await super().list_tools(run_context, agent)  # type: ignore[misc]
        except Exception as e:
            raise MCPServerUnavailable(
                _describe(e, self.name, "list the tools of", self.agentdeck_secrets)
            ) from e
        if key is not None:
            tools_list_cache.put(key, tools)
        return tools

    async def call_tool(
        self, tool_name: str, arguments: dict[str, Any] | None, meta: Any = None
    ) -> Any:
        """The server's answer with the values of the headers it was sent redacted: the output
        goes to the model and into the run's events, and a server that echoes its request
        would otherwise hand the tool's secret headers to everyone running the agent."""
        from agentdeck.core.redaction import redact_data, redact_known

        result = await super().call_tool(tool_name, arguments, meta)  # type: ignore[misc]
        secrets = self.agentdeck_secrets
        content = []
        for item in getattr(result, "content", None) or []:
            text = getattr(item, "text", None)
            if isinstance(text, str):
                item = item.model_copy(update={"text": redact_known(text, secrets)})
            content.append(item)
        update: dict[str, Any] = {"content": content}
        structured = getattr(result, "structuredContent", None)
        if structured is not None:
            update["structuredContent"] = redact_data(structured, secrets, patterns=False)
        return result.model_copy(update=update)

    def invalidate_tools_cache(self) -> None:
        super().invalidate_tools_cache()  # type: ignore[misc]
        if self.agentdeck_cache_key is not None:
            tools_list_cache.discard(self.agentdeck_cache_key)


class StreamableHttpMCPServer(_CachedToolsMixin, MCPServerStreamableHttp):
    pass


class SseMCPServer(_CachedToolsMixin, MCPServerSse):
    pass


SERVER_CLASSES: dict[str, type[StreamableHttpMCPServer] | type[SseMCPServer]] = {
    "streamable_http": StreamableHttpMCPServer,
    "sse": SseMCPServer,
}


def _make_server(
    *,
    name: str,
    config: dict[str, Any],
    headers: dict[str, str],
    cache_key: tuple[Any, ...] | None,
    request_timeout: float = MCP_REQUEST_TIMEOUT_SECONDS,
    requires_approval: bool = False,
) -> StreamableHttpMCPServer | SseMCPServer:
    transport = config.get("transport") or "streamable_http"
    if transport not in SERVER_CLASSES:
        raise InvalidReference(f"Unknown MCP transport {transport!r}.", code="tool_error")
    allowed = list(config.get("allowed_tools") or [])
    server = SERVER_CLASSES[transport](
        params={
            "url": config["url"],
            "headers": headers,
            "timeout": MCP_HTTP_TIMEOUT_SECONDS,
            "sse_read_timeout": MCP_SSE_READ_TIMEOUT_SECONDS,
            "httpx_client_factory": guarded_client_factory,
        },
        name=name,
        cache_tools_list=True,
        client_session_timeout_seconds=request_timeout,
        tool_filter=create_static_tool_filter(allowed_tool_names=allowed) if allowed else None,
        # The attachment's requires_approval covers every tool of the server.
        require_approval="always" if requires_approval else None,
    )
    server.agentdeck_cache_key = cache_key
    return server


def _headers(
    config: dict[str, Any], secret_headers_encrypted: str
) -> tuple[dict[str, str], list[str]]:
    """The config's headers, then the decrypted secret ones (which win); and the secret values,
    which are also added to the current (run's) redaction scope. Raises ``HeaderError`` if one
    cannot be sent (stored before the API refused such values): the HTTP client would raise deep
    inside the MCP session instead."""
    from agentdeck.core.crypto import decrypt_secret

    headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
    if secret_headers_encrypted:
        from agentdeck.core.redaction import add_secrets

        secret = json.loads(decrypt_secret(secret_headers_encrypted))
        headers.update({str(k): str(v) for k, v in secret.items()})
        secrets = [headers[str(k)] for k in secret]
        add_secrets(secrets)
    else:
        secrets = []
    check_headers(headers)
    return headers, secrets


def build_mcp_server(spec: dict[str, Any]) -> MCPServer:
    """The SDK server for a snapshot entry ``{"tool_id", "kind": "mcp", "name", "config", ...}``,
    named after the Tool, not yet connected. With ``requires_approval`` every call to one of its
    tools pauses the run for approval.

    Synchronous: it checks the URL (DNS) and reads the Tool row for the secret headers and
    ``updated_at`` (the graph is built in a sync thread). Raises ``InvalidReference`` with
    ``code="tool_error"`` when the outbound policy refuses the URL, the Tool row is gone or its
    secret headers cannot be decrypted. An entry without ``tool_id`` gets no secret headers and
    no cross-run tool-list cache."""
    from agentdeck.agents.models import Tool
    from agentdeck.core.crypto import SecretDecryptionError

    config = dict(spec.get("config") or {})
    name = spec.get("name") or "mcp"
    url = config.get("url")
    if not isinstance(url, str) or not url:
        raise InvalidReference(f"The MCP tool {name} has no URL.", code="tool_error")
    try:
        check_url(url)
    except OutboundRefused as e:
        raise InvalidReference(
            f"The URL of the MCP tool {name} is not allowed: {e}", code="tool_error"
        ) from e
    tool_id = str(spec["tool_id"]) if spec.get("tool_id") else None
    row = None
    if tool_id:
        row = Tool.objects.filter(pk=tool_id).only("secret_headers_encrypted", "updated_at").first()
        if row is None:
            raise InvalidReference(f"The MCP tool {name} no longer exists.", code="tool_error")
    try:
        headers, secrets = _headers(config, row.secret_headers_encrypted if row else "")
    except HeaderError as e:
        raise InvalidReference(
            f"The headers of the MCP tool {name} cannot be sent: {e} Set them again.",
            code="tool_error",
        ) from None
    except (SecretDecryptionError, ValueError) as e:
        raise InvalidReference(
            f"The secret headers of the MCP tool {name} cannot be read.", code="tool_error"
        ) from e
    cache_key = None
    if row is not None:
        cache_key = tools_cache_key(
            tool_id=str(row.pk),
            stamp=row.updated_at.isoformat(),
            url=url,
            transport=config.get("transport") or "streamable_http",
            headers=headers,
            allowed=list(config.get("allowed_tools") or []),
        )
    server = _make_server(
        name=name,
        config=config,
        headers=headers,
        cache_key=cache_key,
        requires_approval=bool(spec.get("requires_approval")),
    )
    server.agentdeck_tool_id = tool_id
    server.agentdeck_secrets = tuple(secrets)
    return server


def discover_tools(tool: Tool) -> list[dict[str, Any]]:
    """Connect to ``tool``'s MCP server and list its tools: ``[{"name", "description",
    "input_schema"}]``, only those in ``allowed_tools`` when that is set.

    Always asks the server (the cross-run cache is neither read nor filled). Synchronous, for a
    request thread (it runs the async client with ``async_to_sync``). Raises ``ApplicationError``
    with ``code="mcp_unreachable"`` (502) when the outbound policy refuses the URL or the server
    cannot be reached, times out (``DISCOVERY_TIMEOUT_SECONDS`` in all) or does not speak MCP."""
    from asgiref.sync import async_to_sync

    config = dict(tool.config or {})
    try:
        check_url(config.get("url") or "")
    except OutboundRefused as e:
        raise ApplicationError(
            f"The MCP server URL is not allowed: {e}", code="mcp_unreachable", status=502
        ) from e
    try:
        headers, secrets = _headers(config, tool.secret_headers_encrypted)
    except HeaderError as e:
        raise ApplicationError(
            f"The tool's headers cannot be sent: {e} Set them again.",
            code="invalid_tool",
            status=409,
        ) from None
    server = _make_server(
        name=tool.name,
        config=config,
        headers=headers,
        cache_key=None,
        request_timeout=DISCOVERY_TIMEOUT_SECONDS,
    )
    server.agentdeck_secrets = tuple(secrets)

    async def listing() -> list[Any]:
        async with asyncio.timeout(DISCOVERY_TIMEOUT_SECONDS), server:
            return await server.list_tools()

    try:
        tools = async_to_sync(listing)()
    except TimeoutError as e:
        raise ApplicationError(
            f"The MCP server did not answer within {DISCOVERY_TIMEOUT_SECONDS:g} s.",
            code="mcp_unreachable",
            status=502,
        ) from e
    except MCPServerUnavailable as e:
        logger.info("MCP discovery for tool %s failed: %s", tool.pk, e.detail)
        raise ApplicationError(e.detail, code="mcp_unreachable", status=502) from e
    return [
        {"name": t.name, "description": t.description or "", "input_schema": _input_schema(t)}
        for t in tools
    ]


def _input_schema(tool: Any) -> dict[str, Any]:
    schema = getattr(tool, "input_schema", None)
    if schema is None:  # mcp 1.x spells it inputSchema
        schema = getattr(tool, "inputSchema", None)
    return dict(schema or {"type": "object", "properties": {}})
