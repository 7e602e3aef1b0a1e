"""Redact-mode ``pii`` guardrails: they do not stop the run but rewrite the user's input before
the run starts and the final output before it is stored (so raw deltas must not be streamed)."""

from __future__ import annotations

import copy
from typing import Any

from agentdeck.agents.runtime.guardrails.config import normalise
from agentdeck.agents.runtime.guardrails.pii import PII_KINDS, redact_text
from agentdeck.agents.runtime.items import TEXT_PART_TYPES, is_user_message


def _redact_kinds(config: dict[str, Any] | None, side: str) -> list[str]:
    kinds: set[str] = set()
    for entry in normalise(config, provider_kind=None)[side]:
        if entry["type"] == "pii" and entry["action"] == "redact":
            kinds.update(entry["detect"])
    return [k for k in PII_KINDS if k in kinds]


def redact_input(config: dict[str, Any] | None, input: str | list[Any]) -> str | list[Any]:
    """The run input with input-side redact-mode ``pii`` applied to the user's text (a string
    input, or the content of each ``role: "user"`` message in an item list). Returns a new
    object; list items are copied, never modified in place."""
    kinds = _redact_kinds(config, "input")
    if isinstance(input, str):
        return redact_text(input, kinds) if kinds else input
    items = [copy.deepcopy(item) for item in input or []]
    if not kinds:
        return items
    for item in items:
        if not isinstance(item, dict) or not is_user_message(item):
            continue
        content = item.get("content")
        if isinstance(content, str):
            item["content"] = redact_text(content, kinds)
        elif isinstance(content, list):
            for part in content:
                if (
                    isinstance(part, dict)
                    and part.get("type") in TEXT_PART_TYPES
                    and isinstance(part.get("text"), str)
                ):
                    part["text"] = redact_text(part["text"], kinds)
    return items


def output_redaction_enabled(config: dict[str, Any] | None) -> bool:
    """Whether the output side has a redact-mode ``pii`` guardrail (then raw text deltas must
    not be streamed)."""
    return bool(_redact_kinds(config, "output"))


def redact_output(config: dict[str, Any] | None, text: str) -> str:
    """``text`` with output-side redact-mode ``pii`` applied."""
    kinds = _redact_kinds(config, "output")
    return redact_text(text, kinds) if kinds else text
