"""Turn the tool entries of a version snapshot into SDK tools.

A snapshot entry (written by ``agent_snapshot`` from the agent's tool attachments) is
``{"tool_id", "kind", "name", "description", "config", "parameters_schema", "requires_approval"}``;
see ``agentdeck.agents.models.Tool`` for each kind's ``config``. Secret headers are not in the
snapshot: they are read from the Tool row when the run is built, so rotating one needs no new
version. Every tool failure becomes text the model sees (``error: ...``), never a crashed run."""

from __future__ import annotations

import ast
import dataclasses
import json
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from string import Formatter
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents import FunctionTool, RunContextWrapper, function_tool
from django.conf import settings

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
MAX_EXPRESSION_CHARS = 500
MAX_EXPONENT = 1000


def evaluate_arithmetic(expression: str) -> float | int:
    """Arithmetic on numbers with + - * / // % ** and parentheses, by walking the AST: no
    ``eval``, no names, no calls, and exponents bounded so ``9**9**9`` cannot hang a worker."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError("expression too long")
    tree = ast.parse(expression, mode="eval")

    def walk(node: ast.AST) -> float | int:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool)
        ):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
                raise ValueError("exponent too large")
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](walk(node.operand))
        raise ValueError(f"unsupported syntax: {type(node).__name__}")

    return walk(tree)


@function_tool(name_override="calculator")
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression, e.g. "(2 + 3) * 4" or "2 ** 10".

    Args:
        expression: numbers with + - * / // % ** and parentheses.
    """
    try:
        return str(evaluate_arithmetic(expression))
    except (ValueError, SyntaxError, ZeroDivisionError, OverflowError) as e:
        return f"error: {e}"


@function_tool(name_override="current_time")
def current_time(timezone: str = "UTC") -> str:
    """The current date and time in a time zone, ISO 8601.

    Args:
        timezone: an IANA time zone name such as "Europe/Paris"; defaults to UTC.
    """
    try:
        return datetime.now(ZoneInfo(timezone)).isoformat(timespec="seconds")
    except (ZoneInfoNotFoundError, ValueError):
        return f"error: unknown time zone {timezone!r}"


@function_tool(name_override="http_request")
async def http_request(url: str, method: str = "GET", body: str | None = None) -> str:
    """Fetch a public web URL (GET) or send a small POST, and return the response text.

    Args:
        url: an http or https URL on the public internet.
        method: GET or POST.
        body: for POST, the request body (JSON text is sent as JSON).
    """
    from agentdeck.core.outbound import OutboundRefused, fetch

    method = method.upper()
    if method not in {"GET", "POST"}:
        return "error: method must be GET or POST"
    kwargs: dict[str, Any] = {}
    if body is not None:
        try:
            kwargs["json"] = json.loads(body)
        except ValueError:
            kwargs["content"] = body.encode()
    try:
        response = await fetch(
            method,
            url,
            timeout=settings.HTTP_TOOL_TIMEOUT_SECONDS,
            max_bytes=settings.HTTP_TOOL_MAX_RESPONSE_BYTES,
            **kwargs,
        )
    except OutboundRefused as e:
        return f"error: {e}"
    return _describe(response)


BUILTIN_TOOLS: dict[str, FunctionTool] = {
    "calculator": calculator,
    "current_time": current_time,
    "http_request": http_request,
}
HOSTED_TOOLS = ("web_search", "code_interpreter")  # OpenAI Responses API only
BUILTIN_NAMES = (*BUILTIN_TOOLS, *HOSTED_TOOLS)


def _describe(response: Any) -> str:
    text = response.text
    note = ""
    if response.truncated:
        size = f" of {response.total_bytes} bytes" if response.total_bytes else ""
        note = f"\n[truncated: first {len(response.body)} bytes{size}]"
    return f"HTTP {response.status}\n{text}{note}"


@dataclass
class BuiltTools:
    tools: list[Any] = field(default_factory=list)
    mcp_servers: list[Any] = field(default_factory=list)
    tool_ids: dict[str, str] = field(default_factory=dict)


def build_tools(
    specs: list[dict[str, Any]], *, provider_kind: str = "", builder: Any = None
) -> BuiltTools:
    from agentdeck.agents.exceptions import InvalidReference

    built = BuiltTools()
    for spec in specs:
        kind = spec.get("kind")
        name = spec.get("name", "")
        approval = bool(spec.get("requires_approval"))
        if kind == "builtin":
            # {"kind": "builtin", "name": "calculator"} is the short form tests and seeds use.
            builtin = (spec.get("config") or {}).get("builtin") or name
            if builtin in BUILTIN_TOOLS:
                built.tools.append(
                    dataclasses.replace(
                        BUILTIN_TOOLS[builtin], name=name or builtin, needs_approval=approval
                    )
                )
            elif builtin in HOSTED_TOOLS and provider_kind == "openai":
                built.tools.append(_hosted_tool(builtin))
            elif builtin in HOSTED_TOOLS:
                raise InvalidReference(
                    f"The hosted tool {builtin} needs an openai provider.", code="tool_error"
                )
            else:
                raise InvalidReference(f"Unknown built-in tool {builtin!r}.", code="tool_error")
        elif kind == "http":
            built.tools.append(http_tool(spec))
        elif kind == "mcp":
            from agentdeck.agents.runtime.mcp import build_mcp_server

            built.mcp_servers.append(build_mcp_server(spec))
            # The model calls the server's own tool names; record them against this Tool.
            if spec.get("tool_id"):
                config = spec.get("config") or {}
                for tool_name in config.get("allowed_tools") or [
                    t.get("name") for t in spec.get("discovered") or []
                ]:
                    if tool_name:
                        built.tool_ids[tool_name] = str(spec["tool_id"])
        elif kind == "agent":
            if builder is None:
                raise InvalidReference("Agent tools need the graph builder.", code="tool_error")
            built.tools.append(builder.agent_tool(spec))
        else:
            raise InvalidReference(f"Unknown tool {spec!r}.", code="tool_error")
        if spec.get("tool_id"):
            built.tool_ids[name] = str(spec["tool_id"])
    return built


def _hosted_tool(name: str) -> Any:
    from agents import CodeInterpreterTool, WebSearchTool

    if name == "web_search":
        return WebSearchTool()
    return CodeInterpreterTool(
        tool_config={"type": "code_interpreter", "container": {"type": "auto"}}
    )


def http_tool(spec: dict[str, Any]) -> FunctionTool:
    """A user-defined HTTP endpoint as a function tool.

    ``url_template`` placeholders (``https://api.example.com/items/{item_id}``) are filled from the
    arguments, URL-encoded; the remaining arguments go in the query string for GET and DELETE
    and as a JSON body otherwise. Arguments are validated against ``parameters_schema`` before
    any request is made (the model sees the validation error and may retry).
    """
    from jsonschema import Draft202012Validator

    config = spec.get("config") or {}
    schema = spec.get("parameters_schema") or {"type": "object", "properties": {}}
    validator = Draft202012Validator(schema)
    method = str(config.get("method", "GET")).upper()
    template = config["url_template"]
    placeholders = {f for _, f, _, _ in Formatter().parse(template) if f}
    timeout = float(config.get("timeout_seconds") or settings.HTTP_TOOL_TIMEOUT_SECONDS)
    max_bytes = int(config.get("max_response_bytes") or settings.HTTP_TOOL_MAX_RESPONSE_BYTES)
    tool_id = spec.get("tool_id")

    async def invoke(ctx: RunContextWrapper[Any], raw_arguments: str) -> str:
        from asgiref.sync import sync_to_async

        # Here, not at the top: httpheaders imports DRF, which needs configured settings, and
        # this module (the calculator) is imported without them by benchmarks/run_overhead.py.
        from agentdeck.core.httpheaders import HeaderError, check_headers
        from agentdeck.core.outbound import OutboundRefused, fetch
        from agentdeck.core.redaction import add_secrets, redact_known

        try:
            arguments = json.loads(raw_arguments or "{}")
        except ValueError:
            return "error: arguments are not valid JSON"
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "(root)"
            return f"error: invalid arguments at {where}: {errors[0].message}"
        missing = [p for p in placeholders if p not in arguments]
        if missing:
            return f"error: missing arguments for the URL: {', '.join(sorted(missing))}"
        url = template.format(**{p: quote(str(arguments[p]), safe="") for p in placeholders})
        rest = {k: v for k, v in arguments.items() if k not in placeholders}
        headers = dict(config.get("headers") or {})
        secrets: list[str] = []
        if tool_id:
            secret_headers = await sync_to_async(_secret_headers)(tool_id)
            headers.update(secret_headers)
            secrets = [str(v) for v in secret_headers.values()]
            add_secrets(secrets)
        try:
            check_headers(headers)
        except HeaderError as e:
            # Stored before the API refused such values; the HTTP client would raise, failing
            # the whole run with internal_error. The call fails instead, saying why.
            return f"error: the tool's headers cannot be sent ({e}); its owner must set them again"
        kwargs: dict[str, Any] = {"headers": headers}
        if method in {"GET", "DELETE"}:
            kwargs["params"] = {
                k: v if isinstance(v, str) else json.dumps(v) for k, v in rest.items()
            }
        elif rest:
            kwargs["json"] = rest
        try:
            response = await fetch(method, url, timeout=timeout, max_bytes=max_bytes, **kwargs)
        except OutboundRefused as e:
            return f"error: {e}"
        # The output goes to the model and into the run's events: a server that echoes its
        # request must not hand the tool's secret headers to everyone running the agent.
        return redact_known(_describe(response), secrets)

    return FunctionTool(
        name=spec["name"],
        description=spec.get("description") or f"{method} {template}",
        params_json_schema=schema,
        on_invoke_tool=invoke,
        strict_json_schema=False,
        needs_approval=bool(spec.get("requires_approval")),
    )


def _secret_headers(tool_id: str) -> dict[str, str]:
    from agentdeck.agents.models import Tool
    from agentdeck.core.crypto import decrypt_secret

    tool = Tool.objects.filter(pk=tool_id).only("secret_headers_encrypted").first()
    if tool is None or not tool.secret_headers_encrypted:
        return {}
    headers: dict[str, str] = json.loads(decrypt_secret(tool.secret_headers_encrypted))
    return headers
