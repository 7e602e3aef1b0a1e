"""Untrusted JSON text into Python values: the one loader every request body and JSON-carrying
form field goes through (:class:`agentdeck.core.parsers.StrictJSONParser`, multipart fields).

It refuses, with :class:`JSONInputError`, what parses but breaks something further in:

- nesting deeper than ``JSON_MAX_DEPTH``: the stdlib decoder recurses once per level and raises
  ``RecursionError`` near 1,000 (a 500), and so would every serializer and walker after it. The
  depth is measured on the text, without recursion, before anything is decoded;
- NUL (``\\u0000``): PostgreSQL's ``text`` and ``jsonb`` cannot store it;
- lone surrogates (``\\ud800`` unpaired): they cannot be encoded as UTF-8, so the first write or
  log line that touches them fails;
- ``NaN``, ``Infinity`` and numbers too large for a double (``1e999``): not JSON, and jsonb
  refuses them.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from django.conf import settings

# A JSON string literal, escapes included (the unrolled form: linear, no backtracking).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# Escapes that can decode to a character we refuse; only then is the decoded value walked.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_REFUSED_CHAR = re.compile("[\x00\ud800-\udfff]")


class JSONInputError(ValueError):
    """The text is not JSON we accept; ``str(exc)`` says why, for a 400 ``parse_error``."""


def max_depth() -> int:
    depth: int = settings.JSON_MAX_DEPTH
    return depth


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in ``text`` (0 for a scalar), outside string literals."""
    if "[" not in text and "{" not in text:
        return 0
    skeleton = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in skeleton), default=0)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise JSONInputError(f"The number {literal[:40]} is out of range.")
    return value


def _refuse_constant(name: str) -> Any:
    raise JSONInputError(f"{name} is not valid JSON.")


def check_strings(value: Any) -> None:
    """Raise :class:`JSONInputError` if any string in ``value`` (keys included) holds NUL or a
    lone surrogate. Iterative, so it is safe on values of any depth."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str):
                    _check_text(key)
                stack.append(child)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def refused_character(text: str) -> tuple[str, str] | None:
    """``(code, message)`` if ``text`` holds a character no text agentdeck keeps may hold (NUL,
    a lone surrogate), else None. The codes are DRF's own for the same refusal in a CharField.
    Also used for query strings, headers and form fields (agentdeck.core.requestinput)."""
    match = _REFUSED_CHAR.search(text)
    if match is None:
        return None
    if match.group() == "\x00":
        return "null_characters_not_allowed", "may not contain the NUL character (\\u0000)."
    return "surrogate_characters_not_allowed", "may not contain unpaired UTF-16 surrogates."


def _check_text(text: str) -> None:
    refused = refused_character(text)
    if refused is not None:
        raise JSONInputError(f"Strings {refused[1]}")


def loads(text: str | bytes, *, depth: int | None = None) -> Any:
    """Decode ``text`` (bytes must be UTF-8) or raise :class:`JSONInputError`.

    1. Decode bytes as UTF-8 (invalid bytes are refused, never replaced).
    2. Measure the nesting on the text and refuse anything deeper than ``depth``
       (``JSON_MAX_DEPTH`` by default) before the recursive decoder sees it.
    3. Decode strictly: no NaN/Infinity, no out-of-range numbers, no control characters.
    4. If the text has an escape that could decode to NUL or a surrogate, walk the result and
       refuse any string that holds one (paired surrogates have become one character by then).
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONInputError(f"The body is not valid UTF-8 (byte {exc.start}).") from None
    limit = max_depth() if depth is None else depth
    # No deeper than it has opening brackets: most bodies are measured by counting alone.
    if text.count("[") + text.count("{") > limit and nesting_depth(text) > limit:
        raise JSONInputError(f"JSON nests deeper than {limit} levels.")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except JSONInputError:
        raise
    except (ValueError, RecursionError) as exc:
        raise JSONInputError(f"Invalid JSON: {exc}") from None
    if _SUSPECT_ESCAPE.search(text):
        check_strings(value)
    return value
