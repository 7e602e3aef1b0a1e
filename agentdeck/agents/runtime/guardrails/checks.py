"""One check per guardrail type: an async function of the checked value that returns ``None``
when it passes, else a detail saying what tripped it (without repeating a match in full)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from agentdeck.agents.runtime.guardrails.config import (
    CATEGORY_ALIASES,
    MAX_REGEX_SCAN_CHARS,
    MODERATION_MODEL,
    regex_flags,
    schema_validator_class,
)
from agentdeck.agents.runtime.guardrails.pii import find_pii, mask_pii
from agentdeck.agents.runtime.guardrails.text import as_json_value, as_text
from agentdeck.core.exceptions import ApplicationError

# A check receives the checked value (a string on the input side, the final output on the
# output side) and returns None when it passes, else a detail saying what tripped it.
Check = Callable[[Any], Awaitable[str | None]]

_DETAIL_MAX_CHARS = 300


def truncate_detail(text: str) -> str:
    return text if len(text) <= _DETAIL_MAX_CHARS else text[: _DETAIL_MAX_CHARS - 1] + "…"


def _blocklist_check(entry: dict[str, Any]) -> Check:
    words: list[str] = entry["words"]
    case_sensitive: bool = entry["case_sensitive"]
    flags = 0 if case_sensitive else re.IGNORECASE
    # (masked word, tokens that must all occur for a match, pattern): the cheap substring test
    # skips the regex for words that cannot match, which keeps long texts and lists fast.
    terms: list[tuple[list[str], re.Pattern[str]]] = []
    for word in words:
        tokens = word.split()
        body = r"\s+".join(re.escape(token) for token in tokens)
        prefix = r"(?<!\w)" if re.match(r"\w", word[0]) else ""
        suffix = r"(?!\w)" if re.match(r"\w", word[-1]) else ""
        needles = tokens if case_sensitive else [t.casefold() for t in tokens]
        terms.append((needles, re.compile(f"{prefix}{body}{suffix}", flags)))

    async def check(value: Any) -> str | None:
        text = as_text(value)
        haystack = text if case_sensitive else text.casefold()
        for index, (needles, pattern) in enumerate(terms):
            if all(n in haystack for n in needles) and pattern.search(text):
                return f'matched blocked term #{index + 1} ("{_mask_word(words[index])}")'
        return None

    return check


def _regex_check(entry: dict[str, Any]) -> Check:
    flags = regex_flags(entry["flags"])
    patterns = [re.compile(p, flags) for p in entry["patterns"]]

    async def check(value: Any) -> str | None:
        text = as_text(value)
        if len(text) > MAX_REGEX_SCAN_CHARS:
            return (
                f"text is {len(text)} characters; regex guardrails scan at most "
                f"{MAX_REGEX_SCAN_CHARS}"
            )
        for i, pattern in enumerate(patterns):
            m = pattern.search(text)
            if m is not None:
                return f"pattern #{i + 1} matched ({len(m.group(0))} characters)"
        return None

    return check


def _max_length_check(entry: dict[str, Any], side: str) -> Check:
    limit: int = entry["max_chars"]

    async def check(value: Any) -> str | None:
        length = len(as_text(value))
        if length > limit:
            return f"{side} is {length} characters; the limit is {limit}"
        return None

    return check


def _pii_check(entry: dict[str, Any]) -> Check:
    kinds: list[str] = entry["detect"]

    async def check(value: Any) -> str | None:
        matches = find_pii(as_text(value), kinds)
        if not matches:
            return None
        shown = ", ".join(mask_pii(m) for m in matches[:3])
        more = f" and {len(matches) - 3} more" if len(matches) > 3 else ""
        return f"found {shown}{more}"

    return check


def _json_schema_check(entry: dict[str, Any]) -> Check:
    schema: dict[str, Any] = entry["schema"]
    validator = schema_validator_class(schema)(schema)

    async def check(value: Any) -> str | None:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                return f"output is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
        else:
            value = as_json_value(value)
        try:
            errors = sorted(validator.iter_errors(value), key=lambda err: list(err.path))
        except Exception as e:  # e.g. a $ref that does not resolve: fail closed
            return truncate_detail(f"the schema could not be applied: {type(e).__name__}: {e}")
        if not errors:
            return None
        where = "/".join(str(p) for p in errors[0].path) or "(root)"
        return truncate_detail(f"output does not match the schema at {where}: {errors[0].message}")

    return check


class LazyClient:
    """Calls the factory on first use only (runs that never reach a moderation check, and
    configs without one, never build a client)."""

    def __init__(self, factory: Callable[[], Any] | None) -> None:
        self._factory = factory
        self._client: Any = None

    def get(self) -> Any:
        if self._client is None:
            if self._factory is None:
                raise ApplicationError(
                    "A moderation guardrail needs an OpenAI client, and none was given.",
                    code="invalid_guardrails",
                )
            self._client = self._factory()
        return self._client


def _category_flags(categories: Any) -> dict[str, bool]:
    """{api category name: flagged} from an openai ``Categories`` model or a look-alike."""
    raw: Any = None
    if isinstance(categories, dict):
        raw = categories
    elif callable(getattr(categories, "model_dump", None)):
        try:
            raw = categories.model_dump(by_alias=True)
        except TypeError:
            raw = categories.model_dump()
    elif categories is not None:
        raw = {
            name: getattr(categories, name, None)
            for name in CATEGORY_ALIASES
            if name.isidentifier()
        }
    flags: dict[str, bool] = {}
    for key, value in (raw or {}).items():
        canonical = CATEGORY_ALIASES.get(str(key), str(key))
        flags[canonical] = flags.get(canonical, False) or value is True
    return flags


def _moderation_check(entry: dict[str, Any], client: LazyClient) -> Check:
    wanted: list[str] = entry["categories"]

    async def check(value: Any) -> str | None:
        text = as_text(value)
        if not text.strip():
            return None
        response = await client.get().moderations.create(model=MODERATION_MODEL, input=text)
        flagged_any = False
        hits: list[str] = []
        for result in getattr(response, "results", None) or []:
            flagged_any = flagged_any or bool(getattr(result, "flagged", False))
            for category, on in _category_flags(getattr(result, "categories", None)).items():
                if on and category not in hits:
                    hits.append(category)
        if wanted:
            relevant = [c for c in hits if c in wanted]
            return f"flagged for {', '.join(relevant)}" if relevant else None
        if not flagged_any:
            return None
        return f"flagged for {', '.join(hits)}" if hits else "flagged by moderation"

    return check


def make_check(entry: dict[str, Any], side: str, client: LazyClient) -> Check:
    kind = entry["type"]
    if kind == "blocklist":
        return _blocklist_check(entry)
    if kind == "regex":
        return _regex_check(entry)
    if kind == "max_length":
        return _max_length_check(entry, side)
    if kind == "pii":
        return _pii_check(entry)
    if kind == "json_schema":
        return _json_schema_check(entry)
    return _moderation_check(entry, client)


def _mask_word(word: str) -> str:
    if len(word) <= 2:
        return "*" * len(word)
    return word[:1] + "*" * (min(len(word), 12) - 1)
