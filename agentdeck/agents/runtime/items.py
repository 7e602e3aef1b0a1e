"""Reading SDK input items, which arrive as dicts (parsed JSON) or as pydantic models (the SDK's
own): the guardrails read the user's text from them, the mock model the whole conversation."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

# The content parts of a user message that carry typed text (``input_image`` and ``input_file``
# carry none): what the guardrails check and redact.
TEXT_PART_TYPES = ("input_text", "text")


def field(item: Any, key: str) -> Any:
    """A field of an input item (or of one of its content parts); None when it has none."""
    if isinstance(item, Mapping):
        return item.get(key)
    return getattr(item, key, None)


def is_user_message(item: Any) -> bool:
    return field(item, "role") == "user" and field(item, "type") in (None, "message")


def content_text(content: Any, *, part_types: Collection[str] | None = None) -> str:
    """The text of a message's content: a string, or the parts of a list joined by newlines (a
    part's ``text``, else its ``refusal``; a bare string part as it is). ``part_types`` keeps
    only the parts of those types (then bare strings, which have no type, are left out)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts: list[str] = []
        for part in content:
            if part_types is not None and field(part, "type") not in part_types:
                continue
            if isinstance(part, str):
                texts.append(part)
                continue
            text = field(part, "text")
            if not isinstance(text, str):
                text = field(part, "refusal")
            if isinstance(text, str):
                texts.append(text)
        return "\n".join(texts)
    return str(content)
