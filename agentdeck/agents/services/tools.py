"""Tools: create, change, delete, import from OpenAPI, refresh MCP servers."""

from __future__ import annotations

import json
import re
from string import Formatter
from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from agentdeck.accounts.models import User
from agentdeck.agents.models import Agent, Tool
from agentdeck.core.crypto import encrypt_secret
from agentdeck.core.exceptions import ApplicationError, Conflict

TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MCP_TRANSPORTS = ("streamable_http", "sse")
_UNSET: Any = object()


class InvalidTool(ApplicationError):
    status = 400
    code = "invalid_tool"
    title = "Invalid tool"


def _check_public_url(url: str, field: str) -> None:
    from agentdeck.core.outbound import OutboundRefused, check_url

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidTool(f"{field} must be an http or https URL.")
    try:
        check_url(url)
    except OutboundRefused as e:
        raise InvalidTool(f"{field} is not allowed: {e}", code="url_not_allowed") from None


def validate_tool(
    *,
    owner: User,
    kind: str,
    name: str,
    config: dict[str, Any],
    parameters_schema: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Check a tool definition for its kind; returns the normalised (config, parameters_schema)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    from agentdeck.agents.runtime.tools import BUILTIN_NAMES

    if not TOOL_NAME_RE.match(name or ""):
        raise InvalidTool(
            "name must be 1-64 letters, digits, '_' or '-' (the model calls it by this name)."
        )
    config = dict(config or {})
    if kind == Tool.Kind.BUILTIN:
        if config.get("builtin") not in BUILTIN_NAMES:
            raise InvalidTool(f"config.builtin must be one of {', '.join(BUILTIN_NAMES)}.")
        return {"builtin": config["builtin"]}, None
    if kind == Tool.Kind.HTTP:
        method = str(config.get("method", "GET")).upper()
        if method not in HTTP_METHODS:
            raise InvalidTool(f"config.method must be one of {', '.join(HTTP_METHODS)}.")
        template = config.get("url_template")
        if not isinstance(template, str) or not template:
            raise InvalidTool("config.url_template is required.")
        placeholders = [f for _, f, _, _ in Formatter().parse(template) if f]
        host = urlsplit(template).netloc
        if "{" in host:
            raise InvalidTool("config.url_template may not put arguments in the host.")
        _check_public_url(template.format(**{p: "x" for p in placeholders}), "config.url_template")
        schema = parameters_schema or {"type": "object", "properties": {}}
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as e:
            raise InvalidTool(
                f"parameters_schema is not valid JSON Schema: {e.message}", code="invalid_schema"
            ) from None
        if schema.get("type") != "object":
            raise InvalidTool("parameters_schema must describe an object.", code="invalid_schema")
        missing = [p for p in placeholders if p not in (schema.get("properties") or {})]
        if missing:
            raise InvalidTool(
                f"URL placeholders missing from parameters_schema: {', '.join(missing)}."
            )
        headers = config.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise InvalidTool("config.headers must map names to strings.")
        out = {
            "method": method,
            "url_template": template,
            "headers": headers,
            "timeout_seconds": float(config.get("timeout_seconds") or 15),
            "max_response_bytes": int(config.get("max_response_bytes") or 200_000),
        }
        if not 0 < out["timeout_seconds"] <= 120 or not 0 < out["max_response_bytes"] <= 5_000_000:
            raise InvalidTool(
                "timeout_seconds must be in (0, 120] and max_response_bytes in (0, 5 MB]."
            )
        return out, schema
    if kind == Tool.Kind.MCP:
        url = config.get("url")
        if not isinstance(url, str):
            raise InvalidTool("config.url is required.")
        _check_public_url(url, "config.url")
        transport = config.get("transport", "streamable_http")
        if transport not in MCP_TRANSPORTS:
            raise InvalidTool(f"config.transport must be one of {', '.join(MCP_TRANSPORTS)}.")
        allowed = config.get("allowed_tools") or []
        if not isinstance(allowed, list) or not all(isinstance(t, str) for t in allowed):
            raise InvalidTool("config.allowed_tools must be a list of tool names.")
        return {
            "url": url,
            "transport": transport,
            "allowed_tools": allowed,
            "headers": config.get("headers") or {},
        }, None
    if kind == Tool.Kind.AGENT:
        agent_id = config.get("agent_id")
        agent = Agent.objects.filter(pk=agent_id).first() if agent_id else None
        if agent is None or (
            agent.owner_id != owner.pk and agent.visibility != Agent.Visibility.PUBLIC
        ):
            raise InvalidTool(
                "config.agent_id must be an agent you may run.", code="invalid_reference"
            )
        return {"agent_id": str(agent.id)}, None
    raise InvalidTool(f"Unknown tool kind {kind!r}.")


@transaction.atomic
def tool_create(
    *,
    owner: User,
    name: str,
    kind: str,
    description: str = "",
    config: dict[str, Any] | None = None,
    parameters_schema: dict[str, Any] | None = None,
    secret_headers: dict[str, str] | None = None,
    enabled: bool = True,
) -> Tool:
    config, parameters_schema = validate_tool(
        owner=owner, kind=kind, name=name, config=config or {}, parameters_schema=parameters_schema
    )
    try:
        with transaction.atomic():
            return Tool.objects.create(
                owner=owner,
                name=name,
                kind=kind,
                description=description,
                config=config,
                parameters_schema=parameters_schema,
                enabled=enabled,
                secret_headers_encrypted=encrypt_secret(json.dumps(secret_headers))
                if secret_headers
                else "",
            )
    except IntegrityError:
        raise Conflict(f"You already have a tool named {name!r}.", code="tool_name_taken") from None


@transaction.atomic
def tool_update(
    *, tool: Tool, secret_headers: dict[str, str] | None = _UNSET, **fields: Any
) -> Tool:
    """Change a tool; omit ``secret_headers`` to keep them, pass ``{}`` to remove them. Agents
    that use it see the change on their next version (snapshots copy the definition)."""
    for name, value in fields.items():
        setattr(tool, name, value)
    tool.config, tool.parameters_schema = validate_tool(
        owner=tool.owner,
        kind=tool.kind,
        name=tool.name,
        config=tool.config,
        parameters_schema=tool.parameters_schema,
    )
    if secret_headers is not _UNSET and secret_headers is not None:
        tool.secret_headers_encrypted = (
            encrypt_secret(json.dumps(secret_headers)) if secret_headers else ""
        )
    try:
        with transaction.atomic():
            tool.save()
    except IntegrityError:
        raise Conflict(
            f"You already have a tool named {tool.name!r}.", code="tool_name_taken"
        ) from None
    return tool


def tool_delete(*, tool: Tool) -> None:
    try:
        tool.delete()
    except ProtectedError:
        raise Conflict("Agents still use this tool; detach it first.", code="tool_in_use") from None


def _operation_name(method: str, path: str, operation: dict[str, Any]) -> str:
    raw = operation.get("operationId") or f"{method}_{path}"
    name = re.sub(r"[^a-zA-Z0-9_-]+", "_", raw).strip("_")[:64]
    return name or method


@transaction.atomic
def tools_import_openapi(
    *,
    owner: User,
    document: dict[str, Any],
    base_url: str = "",
    prefix: str = "",
    secret_headers: dict[str, str] | None = None,
) -> list[Tool]:
    """One ``http`` tool per operation of an OpenAPI 3 document: path and query parameters and
    a JSON request body's properties become the arguments' JSON Schema."""
    if not str(document.get("openapi", "")).startswith("3."):
        raise InvalidTool("Only OpenAPI 3 documents can be imported.", code="invalid_openapi")
    servers = document.get("servers") or []
    base = (base_url or (servers[0].get("url") if servers else "") or "").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise InvalidTool(
            "The document has no absolute server URL; pass base_url.", code="invalid_openapi"
        )
    created = []
    for path, item in (document.get("paths") or {}).items():
        for method, operation in item.items():
            if method.upper() not in HTTP_METHODS or not isinstance(operation, dict):
                continue
            properties: dict[str, Any] = {}
            required: list[str] = []
            for parameter in [
                *(item.get("parameters") or []),
                *(operation.get("parameters") or []),
            ]:
                if "$ref" in parameter or parameter.get("in") not in ("path", "query"):
                    continue
                properties[parameter["name"]] = {
                    **(parameter.get("schema") or {"type": "string"}),
                    **(
                        {"description": parameter["description"]}
                        if parameter.get("description")
                        else {}
                    ),
                }
                if parameter.get("required") or parameter.get("in") == "path":
                    required.append(parameter["name"])
            body = ((operation.get("requestBody") or {}).get("content") or {}).get(
                "application/json"
            ) or {}
            body_schema = body.get("schema") or {}
            if body_schema.get("type") == "object":
                properties.update(body_schema.get("properties") or {})
                required += list(body_schema.get("required") or [])
            schema = {"type": "object", "properties": properties}
            if required:
                schema["required"] = sorted(set(required))
            created.append(
                tool_create(
                    owner=owner,
                    name=(prefix + _operation_name(method, path, operation))[:64],
                    kind=Tool.Kind.HTTP,
                    description=operation.get("summary")
                    or operation.get("description")
                    or f"{method.upper()} {path}",
                    config={"method": method.upper(), "url_template": base + path},
                    parameters_schema=schema,
                    secret_headers=secret_headers,
                )
            )
    if not created:
        raise InvalidTool("The document has no operations to import.", code="invalid_openapi")
    return created


def tool_refresh_mcp(*, tool: Tool) -> Tool:
    """Ask the MCP server which tools it offers and store them (``discovered``)."""
    from agentdeck.agents.runtime.mcp import discover_tools

    if tool.kind != Tool.Kind.MCP:
        raise InvalidTool("Only MCP tools can be refreshed.", code="not_mcp")
    tools = discover_tools(tool)
    tool.discovered = tools
    tool.discovered_at = timezone.now()
    tool.save(update_fields=["discovered", "discovered_at", "updated_at"])
    return tool
