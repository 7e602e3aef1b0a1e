"""Tools: create, change, delete, import from OpenAPI, refresh MCP servers."""

from __future__ import annotations

import json
import re
import uuid
from string import Formatter
from typing import Any, TypeGuard, cast
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from agentdeck.accounts.models import User
from agentdeck.agents.limits import JSON_SCHEMA_SHAPE, TOOL_CONFIG_SHAPE
from agentdeck.agents.models import Agent, Tool
from agentdeck.agents.services.openapi_import import InvalidOpenAPI, openapi_read
from agentdeck.core.crypto import encrypt_secret
from agentdeck.core.exceptions import ApplicationError, Conflict
from agentdeck.core.httpheaders import HeaderError, check_headers
from agentdeck.core.jsonshape import check_shape, shape_errors_as

TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# A URL placeholder names an argument: {city}, {pet-id}. No attribute or index lookups
# ({a.b}, {a[0]}), positions ({0}), conversions or format specs, which str.format would apply.
PLACEHOLDER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MCP_TRANSPORTS = ("streamable_http", "sse")
_UNSET: Any = object()


class InvalidTool(ApplicationError):
    status = 400
    code = "invalid_tool"
    title = "Invalid tool"


def _check_public_url(url: str, field: str) -> None:
    from agentdeck.core.outbound import OutboundRefused, check_url

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsed lazily: an invalid port raises here)
    except ValueError:
        raise InvalidTool(f"{field} is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidTool(f"{field} must be an http or https URL.")
    try:
        check_url(url)
    except OutboundRefused as e:
        raise InvalidTool(f"{field} is not allowed: {e}", code="url_not_allowed") from None


def _url_placeholders(template: str) -> list[str]:
    try:
        fields = [(f, conversion, spec) for _, f, spec, conversion in Formatter().parse(template)]
    except ValueError as e:  # a lone "{" or "}"
        raise InvalidTool(f"config.url_template is not a valid template: {e}.") from None
    names = []
    for field, conversion, spec in fields:
        if field is None:
            continue
        if not PLACEHOLDER_RE.fullmatch(field) or conversion or spec:
            raise InvalidTool(
                f"config.url_template: placeholders are {{name}} of an argument, not "
                f"{{{field[:40]}}}."
            )
        names.append(field)
    return names


def _number(config: dict[str, Any], key: str, default: float, kind: type) -> Any:
    value = config.get(key)
    if value is None or value == "":
        return kind(default)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidTool(f"config.{key} must be a number.")
    try:
        return kind(value)
    except (ValueError, OverflowError):
        raise InvalidTool(f"config.{key} must be a number.") from None


def _checked_headers(headers: Any, field: str) -> dict[str, str]:
    try:
        check_headers(headers)
    except HeaderError as e:
        raise InvalidTool(f"{field}: {e}") from None
    return cast(dict[str, str], headers)  # check_headers has just made sure


def tool_validate(
    *,
    owner: User,
    kind: str,
    name: str,
    config: dict[str, Any],
    parameters_schema: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Check a tool definition for its kind; returns the normalised (config, parameters_schema).
    Every field can be any JSON (the API bounds its size, ``agentdeck.agents.limits``): a wrong
    type is a 400 ``invalid_tool``/``invalid_schema`` like a wrong value."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    from agentdeck.agents.runtime.tools import BUILTIN_NAMES

    if not isinstance(name, str) or not TOOL_NAME_RE.match(name):
        raise InvalidTool(
            "name must be 1-64 letters, digits, '_' or '-' (the model calls it by this name)."
        )
    if not isinstance(config, dict | None):
        raise InvalidTool("config must be an object.")
    config = dict(config or {})
    # The API checks these bounds first, as field errors; this is for other callers.
    with shape_errors_as("config", code="invalid_tool", error=InvalidTool):
        check_shape(config, TOOL_CONFIG_SHAPE)
    with shape_errors_as("parameters_schema", code="invalid_schema", error=InvalidTool):
        check_shape(parameters_schema, JSON_SCHEMA_SHAPE)
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
        placeholders = _url_placeholders(template)
        try:
            host = urlsplit(template).netloc
        except ValueError:
            raise InvalidTool("config.url_template is not a valid URL.") from None
        if "{" in host:
            raise InvalidTool("config.url_template may not put arguments in the host.")
        _check_public_url(template.format(**{p: "x" for p in placeholders}), "config.url_template")
        if not isinstance(parameters_schema, dict | None):
            raise InvalidTool("parameters_schema must be a JSON object.", code="invalid_schema")
        schema = parameters_schema or {"type": "object", "properties": {}}
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as e:
            raise InvalidTool(
                f"parameters_schema is not valid JSON Schema: {e.message}", code="invalid_schema"
            ) from None
        if schema.get("type") != "object":
            raise InvalidTool("parameters_schema must describe an object.", code="invalid_schema")
        properties = schema.get("properties") or {}
        missing = [
            p for p in placeholders if not isinstance(properties, dict) or p not in properties
        ]
        if missing:
            raise InvalidTool(
                f"URL placeholders missing from parameters_schema: {', '.join(missing)}."
            )
        out = {
            "method": method,
            "url_template": template,
            "headers": _checked_headers(config.get("headers") or {}, "config.headers"),
            "timeout_seconds": _number(config, "timeout_seconds", 15, float),
            "max_response_bytes": _number(config, "max_response_bytes", 200_000, int),
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
            "headers": _checked_headers(config.get("headers") or {}, "config.headers"),
        }, None
    if kind == Tool.Kind.AGENT:
        agent_id = config.get("agent_id")
        agent = Agent.objects.filter(pk=agent_id).first() if _is_uuid(agent_id) else None
        if agent is None or (
            agent.owner_id != owner.pk and agent.visibility != Agent.Visibility.PUBLIC
        ):
            raise InvalidTool(
                "config.agent_id must be an agent you may run.", code="invalid_reference"
            )
        return {"agent_id": str(agent.id)}, None
    raise InvalidTool(f"Unknown tool kind {kind!r}.")


def _is_uuid(value: object) -> TypeGuard[str]:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


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
    config, parameters_schema = tool_validate(
        owner=owner, kind=kind, name=name, config=config or {}, parameters_schema=parameters_schema
    )
    if secret_headers:
        _checked_headers(secret_headers, "secret_headers")
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
    *,
    tool: Tool,
    kind: str | None = None,
    secret_headers: dict[str, str] | None = _UNSET,
    **fields: Any,
) -> Tool:
    """Change a tool; omit ``secret_headers`` to keep them, pass ``{}`` to remove them. Agents
    that use it see the change on their next version (snapshots copy the definition). The kind
    never changes (its config would mean something else): 400 ``invalid_tool``."""
    if kind is not None and kind != tool.kind:
        raise InvalidTool("A tool's kind cannot change; create another tool.")
    for name, value in fields.items():
        setattr(tool, name, value)
    tool.config, tool.parameters_schema = tool_validate(
        owner=tool.owner,
        kind=tool.kind,
        name=tool.name,
        config=tool.config,
        parameters_schema=tool.parameters_schema,
    )
    if secret_headers is not _UNSET and secret_headers is not None:
        _checked_headers(secret_headers, "secret_headers")
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


def _operation_name(method: str, path: str, operation_id: str) -> str:
    raw = operation_id or f"{method}_{path}"
    name = re.sub(r"[^a-zA-Z0-9_-]+", "_", raw).strip("_")[:64]
    return name or method


@transaction.atomic
def tool_import_openapi(
    *,
    owner: User,
    document: dict[str, Any],
    base_url: str = "",
    prefix: str = "",
    secret_headers: dict[str, str] | None = None,
) -> list[Tool]:
    """One ``http`` tool per operation of an OpenAPI 3 document
    (``agentdeck.agents.services.openapi_import``): path and query parameters and a JSON
    request body's properties become the arguments' JSON Schema. All or nothing: a document
    that is malformed anywhere, or an operation that makes an invalid tool, is a 400
    ``invalid_openapi`` naming the place, and no tool is created."""
    base, operations = openapi_read(document, base_url=base_url)
    created = []
    for op in operations:
        name = (prefix + _operation_name(op.method.lower(), op.path, op.operation_id))[:64]
        try:
            created.append(
                tool_create(
                    owner=owner,
                    name=name,
                    kind=Tool.Kind.HTTP,
                    description=op.description,
                    config={"method": op.method, "url_template": base + op.path},
                    parameters_schema=op.parameters_schema,
                    secret_headers=secret_headers,
                )
            )
        except InvalidTool as e:
            raise InvalidOpenAPI(f"paths.{op.path}.{op.method.lower()}: {e.detail}") from None
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
