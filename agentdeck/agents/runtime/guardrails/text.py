"""The text a guardrail checks: the user's text of the newest turn on the input side, the final
output (as text or as a JSON value) on the output side. Input items may be dicts or SDK objects."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from agentdeck.agents.runtime.items import (
    TEXT_PART_TYPES,
    content_text,
    field,
    is_user_message,
)


def latest_user_text(input: str | list[Any]) -> str:
    """The user's text of the newest turn: the input itself when it is a string, else the text of
    the user messages at the end of the item list (system and developer messages in between are
    skipped; an assistant message, tool call or tool output ends the turn)."""
    if isinstance(input, str):
        return input
    texts: list[str] = []
    for item in reversed(list(input or [])):
        role = field(item, "role")
        if role in ("system", "developer") and field(item, "type") in (None, "message"):
            continue
        if not is_user_message(item):
            break
        texts.append(content_text(field(item, "content"), part_types=TEXT_PART_TYPES))
    return "\n".join(t for t in reversed(texts) if t)


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(as_json_value(value), ensure_ascii=False, default=str)


def as_json_value(value: Any) -> Any:
    if hasattr(value, "model_dump") and callable(value.model_dump):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value
