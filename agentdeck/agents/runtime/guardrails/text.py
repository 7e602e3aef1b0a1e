"""The text a guardrail checks: the user's text of the newest turn on the input side, the final
output (as text or as a JSON value) on the output side. Input items may be dicts or SDK objects."""

from __future__ import annotations

import dataclasses
import json
from typing import Any


def _get(item: Any, key: str) -> Any:
    if isinstance(item, dict):
        return item.get(key)
    return getattr(item, key, None)


def is_user_message(item: Any) -> bool:
    return _get(item, "role") == "user" and _get(item, "type") in (None, "message")


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            _get(part, "text")
            for part in content
            if _get(part, "type") in ("input_text", "text") and isinstance(_get(part, "text"), str)
        ]
        return "\n".join(texts)
    return ""


def latest_user_text(input: str | list[Any]) -> str:
    """The user's text of the newest turn: the input itself when it is a string, else the text of
    the user messages at the end of the item list (system and developer messages in between are
    skipped; an assistant message, tool call or tool output ends the turn)."""
    if isinstance(input, str):
        return input
    texts: list[str] = []
    for item in reversed(list(input or [])):
        role = _get(item, "role")
        if role in ("system", "developer") and _get(item, "type") in (None, "message"):
            continue
        if not is_user_message(item):
            break
        texts.append(_content_text(_get(item, "content")))
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
