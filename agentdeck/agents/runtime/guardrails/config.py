"""Guardrail configuration: the types, their fields and limits, and the validation that
normalises an agent's ``guardrails`` field before it is saved (the manual is docs/guardrails.md).

Validation refuses what could hurt at run time, not only what is malformed: regex patterns whose
backtracking is exponential, and ``moderation`` on a provider that is not OpenAI."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import Any

from agentdeck.agents.runtime.guardrails.pii import PII_KINDS
from agentdeck.core.exceptions import ApplicationError

SIDES = ("input", "output")
GUARDRAIL_TYPES = ("blocklist", "regex", "max_length", "pii", "json_schema", "moderation")
MAX_GUARDRAILS_PER_SIDE = 20
MAX_NAME_CHARS = 64
MAX_BLOCKLIST_WORDS = 500
MAX_WORD_CHARS = 200
MAX_PATTERNS = 50
MAX_PATTERN_CHARS = 500
MAX_REGEX_SCAN_CHARS = 50_000
MAX_LENGTH_LIMIT = 1_000_000
REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
PII_ACTIONS = ("block", "redact")
MODERATION_MODEL = "omni-moderation-latest"
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
# The openai package's attribute names (``self_harm_intent``) -> the API's (``self-harm/intent``).
CATEGORY_ALIASES = {
    **{c: c for c in MODERATION_CATEGORIES},
    **{c.replace("/", "_").replace("-", "_"): c for c in MODERATION_CATEGORIES},
}

# type -> (required fields, optional fields with their defaults)
_FIELDS: dict[str, tuple[frozenset[str], dict[str, Any]]] = {
    "blocklist": (frozenset({"words"}), {"case_sensitive": False}),
    "regex": (frozenset({"patterns"}), {"flags": ""}),
    "max_length": (frozenset({"max_chars"}), {}),
    "pii": (frozenset(), {"detect": list(PII_KINDS), "action": "block"}),
    "json_schema": (frozenset({"schema"}), {}),
    "moderation": (frozenset(), {"categories": []}),
}


class _Invalid(Exception):
    """A field-level problem; ``normalise`` prefixes it with the entry's position."""


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, code="invalid_guardrails")


def validate_guardrails(config: Any, *, provider_kind: str) -> dict[str, Any]:
    """Normalise and validate an agent's guardrail config before it is saved.

    Returns ``{"input": [...], "output": [...]}`` with every entry's ``name`` and optional fields
    filled in. Raises ``ApplicationError(code="invalid_guardrails")`` naming the offending entry,
    e.g. ``input[1]: unknown type 'foo'``."""
    return normalise(config, provider_kind=str(provider_kind))


def normalise(config: Any, *, provider_kind: str | None) -> dict[str, Any]:
    """``provider_kind=None`` skips the provider check (the config was validated on save)."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise _invalid('guardrails must be an object: {"input": [...], "output": [...]}.')
    unknown = sorted(str(k) for k in config if k not in SIDES)
    if unknown:
        raise _invalid(f"guardrails: unknown key '{unknown[0]}' (expected 'input' and 'output').")
    result: dict[str, Any] = {}
    for side in SIDES:
        entries = config.get(side)
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise _invalid(f"guardrails.{side} must be a list.")
        if len(entries) > MAX_GUARDRAILS_PER_SIDE:
            raise _invalid(
                f"guardrails.{side}: at most {MAX_GUARDRAILS_PER_SIDE} guardrails are allowed."
            )
        normalised: list[dict[str, Any]] = []
        names: set[str] = set()
        for index, entry in enumerate(entries):
            where = f"{side}[{index}]"
            try:
                item = _normalise_entry(entry, side=side, provider_kind=provider_kind)
            except _Invalid as e:
                raise _invalid(f"{where}: {e}") from None
            if item["name"] in names:
                raise _invalid(
                    f"{where}: duplicate name '{item['name']}'; give each {side} guardrail a "
                    'distinct "name".'
                )
            names.add(item["name"])
            normalised.append(item)
        result[side] = normalised
    return result


def _normalise_entry(entry: Any, *, side: str, provider_kind: str | None) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise _Invalid('each guardrail must be an object with a "type".')
    kind = entry.get("type")
    if kind is None:
        raise _Invalid('missing "type".')
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise _Invalid(f"unknown type {kind!r} (expected one of {', '.join(GUARDRAIL_TYPES)}).")
    required, optional = _FIELDS[kind]
    allowed = {"type", "name"} | required | set(optional)
    for key in entry:
        if key not in allowed:
            raise _Invalid(
                f"unknown field {str(key)!r} for type '{kind}' "
                f"(allowed: {', '.join(sorted(allowed))})."
            )
    for key in sorted(required):
        if key not in entry:
            raise _Invalid(f"missing field '{key}' for type '{kind}'.")

    name = entry.get("name")
    if name is None:
        name = kind
    if not isinstance(name, str) or not name.strip():
        raise _Invalid('"name" must be a non-empty string.')
    name = name.strip()
    if len(name) > MAX_NAME_CHARS:
        raise _Invalid(f'"name" must be at most {MAX_NAME_CHARS} characters.')

    values = {
        **copy.deepcopy(optional),
        **{k: v for k, v in entry.items() if k not in ("type", "name")},
    }
    fields = _VALIDATORS[kind](values, side, provider_kind)
    return {"type": kind, "name": name, **fields}


def _check_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"'{field}' must be true or false.")
    return value


def _check_string_list(value: Any, field: str, *, max_items: int, max_chars: int) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _Invalid(f"'{field}' must be a non-empty list of strings.")
    if len(value) > max_items:
        raise _Invalid(f"'{field}' may hold at most {max_items} entries.")
    result: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise _Invalid(f"'{field}[{i}]' must be a non-empty string.")
        if len(item) > max_chars:
            raise _Invalid(f"'{field}[{i}]' is longer than {max_chars} characters.")
        result.append(item)
    return result


def _validate_blocklist(
    values: dict[str, Any], side: str, provider_kind: str | None
) -> dict[str, Any]:
    words = _check_string_list(
        values["words"], "words", max_items=MAX_BLOCKLIST_WORDS, max_chars=MAX_WORD_CHARS
    )
    return {
        "words": [w.strip() for w in words],
        "case_sensitive": _check_bool(values["case_sensitive"], "case_sensitive"),
    }


def _validate_regex(values: dict[str, Any], side: str, provider_kind: str | None) -> dict[str, Any]:
    patterns = values["patterns"]
    if not isinstance(patterns, list) or not patterns:
        raise _Invalid("'patterns' must be a non-empty list of strings.")
    if len(patterns) > MAX_PATTERNS:
        raise _Invalid(f"'patterns' may hold at most {MAX_PATTERNS} entries.")
    flags = values["flags"]
    if not isinstance(flags, str) or any(f not in REGEX_FLAGS for f in flags):
        raise _Invalid(f"'flags' must be a string made of {', '.join(REGEX_FLAGS)}.")
    flags = "".join(f for f in REGEX_FLAGS if f in flags)
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str) or not pattern:
            raise _Invalid(f"'patterns[{i}]' must be a non-empty string.")
        if len(pattern) > MAX_PATTERN_CHARS:
            raise _Invalid(f"'patterns[{i}]' is longer than {MAX_PATTERN_CHARS} characters.")
        try:
            re.compile(pattern, regex_flags(flags))
        except (re.error, ValueError, OverflowError, RecursionError) as e:
            raise _Invalid(f"'patterns[{i}]' is not a valid regular expression: {e}") from None
        if _has_nested_quantifier(pattern, regex_flags(flags)):
            raise _Invalid(
                f"'patterns[{i}]' repeats a group that itself has a variable-length quantifier "
                "(like (a+)+), which can take exponential time; use a possessive quantifier "
                "(a++) or an atomic group (?>...)."
            )
    return {"patterns": list(patterns), "flags": flags}


def _validate_max_length(
    values: dict[str, Any], side: str, provider_kind: str | None
) -> dict[str, Any]:
    max_chars = values["max_chars"]
    if (
        not isinstance(max_chars, int)
        or isinstance(max_chars, bool)
        or not 1 <= max_chars <= MAX_LENGTH_LIMIT
    ):
        raise _Invalid(f"'max_chars' must be an integer from 1 to {MAX_LENGTH_LIMIT}.")
    return {"max_chars": max_chars}


def _validate_pii(values: dict[str, Any], side: str, provider_kind: str | None) -> dict[str, Any]:
    detect = values["detect"]
    if not isinstance(detect, list) or not detect:
        raise _Invalid(f"'detect' must be a non-empty list of {', '.join(PII_KINDS)}.")
    for item in detect:
        if item not in PII_KINDS:
            raise _Invalid(f"'detect' has unknown kind {item!r} (expected {', '.join(PII_KINDS)}).")
    action = values["action"]
    if action not in PII_ACTIONS:
        raise _Invalid(f"'action' must be one of {', '.join(PII_ACTIONS)}.")
    return {"detect": [k for k in PII_KINDS if k in detect], "action": action}


def _validate_json_schema(
    values: dict[str, Any], side: str, provider_kind: str | None
) -> dict[str, Any]:
    if side != "output":
        raise _Invalid(
            "type 'json_schema' checks the final output; it is allowed on the output side only."
        )
    schema = values["schema"]
    if not isinstance(schema, dict):
        raise _Invalid("'schema' must be a JSON Schema object.")
    if not isinstance(schema.get("$schema", ""), str):
        raise _Invalid("'schema' is not valid JSON Schema at $schema: it must be a URI string.")
    from jsonschema.exceptions import SchemaError

    try:
        schema_validator_class(schema).check_schema(schema)
    except SchemaError as e:
        where = "/".join(str(p) for p in e.path) or "(root)"
        raise _Invalid(f"'schema' is not valid JSON Schema at {where}: {e.message}") from None
    return {"schema": schema}


def _validate_moderation(
    values: dict[str, Any], side: str, provider_kind: str | None
) -> dict[str, Any]:
    if provider_kind is not None and provider_kind != "openai":
        raise _Invalid(
            "type 'moderation' calls OpenAI's moderation endpoint and needs a provider of kind "
            f"'openai'; this agent's provider is of kind '{provider_kind}'."
        )
    categories = values["categories"]
    if categories is None:
        categories = []
    if not isinstance(categories, list):
        raise _Invalid("'categories' must be a list of moderation categories.")
    result: list[str] = []
    for item in categories:
        canonical = CATEGORY_ALIASES.get(item) if isinstance(item, str) else None
        if canonical is None:
            raise _Invalid(
                f"'categories' has unknown category {item!r} "
                f"(expected {', '.join(MODERATION_CATEGORIES)})."
            )
        if canonical not in result:
            result.append(canonical)
    return {"categories": result}


_VALIDATORS: dict[str, Callable[[dict[str, Any], str, str | None], dict[str, Any]]] = {
    "blocklist": _validate_blocklist,
    "regex": _validate_regex,
    "max_length": _validate_max_length,
    "pii": _validate_pii,
    "json_schema": _validate_json_schema,
    "moderation": _validate_moderation,
}


def regex_flags(flags: str) -> int:
    value = 0
    for f in flags:
        value |= REGEX_FLAGS[f]
    return value


def schema_validator_class(schema: dict[str, Any]) -> Any:
    from jsonschema import Draft202012Validator
    from jsonschema.validators import validator_for

    return validator_for(schema, default=Draft202012Validator)


def _has_nested_quantifier(pattern: str, flags: int) -> bool:
    """Whether a repeated group (max > 1) contains a variable-length quantifier: the shape of
    patterns like ``(a+)+`` whose backtracking is exponential. Possessive quantifiers and atomic
    groups do not backtrack, so they are exempt."""
    try:
        from re import _constants as sre_constants  # type: ignore[attr-defined]
        from re import _parser as sre_parse  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - other Pythons: length limits still apply
        return False
    try:
        parsed = sre_parse.parse(pattern, flags)
    except Exception:  # pragma: no cover - compile() accepted it
        return False
    repeats = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT}
    exempt = {sre_constants.POSSESSIVE_REPEAT, sre_constants.ATOMIC_GROUP}

    def children(av: Any) -> Iterator[Any]:
        if isinstance(av, sre_parse.SubPattern):
            yield av
        elif isinstance(av, (tuple, list)):
            for x in av:
                yield from children(x)

    def has_variable_repeat(sub: Any) -> bool:
        for op, av in sub:
            if op in exempt:
                continue
            if op in repeats:
                lo, hi, _body = av
                if hi != lo and hi > 1:
                    return True
            if any(has_variable_repeat(child) for child in children(av)):
                return True
        return False

    def walk(sub: Any) -> bool:
        for op, av in sub:
            if op in exempt:
                continue
            if op in repeats:
                _lo, hi, body = av
                if hi > 1 and has_variable_repeat(body):
                    return True
            if any(walk(child) for child in children(av)):
                return True
        return False

    return walk(parsed)
