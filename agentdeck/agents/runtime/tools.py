"""Built-in tools an agent version can reference in its snapshot as
``{"kind": "builtin", "name": "<name>"}``. (Tool records, HTTP and MCP tools build on this.)"""

from __future__ import annotations

import ast
import operator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents import FunctionTool, function_tool

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_EXPRESSION_CHARS = 500
MAX_EXPONENT = 1000


def evaluate_arithmetic(expression: str) -> float | int:
    """Arithmetic on numbers with + - * / // % ** and parentheses, by walking the AST: no
    ``eval``, no names, no calls, and exponents bounded so ``9**9**9`` cannot hang a worker."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError("expression too long")
    tree = ast.parse(expression, mode="eval")

    def walk(node: ast.AST) -> Any:
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


BUILTIN_TOOLS: dict[str, FunctionTool] = {"calculator": calculator, "current_time": current_time}


def build_tools(specs: list[dict[str, Any]]) -> list[FunctionTool]:
    tools = []
    for spec in specs:
        if spec.get("kind") == "builtin" and spec.get("name") in BUILTIN_TOOLS:
            tools.append(BUILTIN_TOOLS[spec["name"]])
        else:
            from agentdeck.agents.exceptions import InvalidReference

            raise InvalidReference(f"Unknown tool {spec!r}.", code="invalid_tool")
    return tools
