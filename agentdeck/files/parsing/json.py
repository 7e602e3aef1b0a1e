"""JSON: a ``path.to.key: value`` line per leaf."""

from __future__ import annotations

import json

from agentdeck.files.exceptions import ParseError
from agentdeck.files.parsing.base import too_much_text
from agentdeck.files.parsing.text import decoded


def parse_json(data: bytes, max_chars: int) -> list[str]:
    text = decoded(data)
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise ParseError("json_invalid", "The JSON nests too deeply.") from exc
    except ValueError as exc:
        raise ParseError("json_invalid", f"The JSON does not parse: {exc}") from exc
    return [_flatten_json(value, max_chars)]


def _flatten_json(value: object, max_chars: int) -> str:
    """One ``path.to.key: value`` line per leaf (``items[2].name: x``), in document order, so a
    chunk of the text still says where each value sits. Iterative: depth is not a risk."""
    lines: list[str] = []
    total = 0
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict) and node:
            keys = list(node)
            stack.extend(
                (f"{path}.{key}" if path else str(key), node[key]) for key in reversed(keys)
            )
            continue
        if isinstance(node, list) and node:
            stack.extend((f"{path}[{i}]", node[i]) for i in reversed(range(len(node))))
            continue
        if isinstance(node, str):
            leaf = node
        elif isinstance(node, dict):
            leaf = "{}"
        else:  # numbers, booleans, null, []
            leaf = json.dumps(node)
        line = f"{path}: {leaf}" if path else leaf
        total += len(line) + 1
        if total > max_chars:
            raise too_much_text(max_chars)
        lines.append(line)
    return "\n".join(lines)
