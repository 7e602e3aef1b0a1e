r"""Guardrails: checks that stop a run when its input or its final output breaks a rule.

An agent's ``guardrails`` field is ``{"input": [...], "output": [...]}``. Each entry is an object
with a ``"type"``, an optional ``"name"`` (it defaults to the type; names must be unique on each
side, so give two guardrails of the same type distinct names) and the fields of its type. Fields
not listed below are refused, and so is a config with more than ``MAX_GUARDRAILS_PER_SIDE``
(20) entries on a side.

When a guardrail trips, the run fails with the error code ``guardrail_tripped`` and a
``guardrail.tripped`` event ``{guardrail, kind, detail}`` (``kind`` is ``input`` or ``output``).
``detail`` says what matched without repeating it in full (a matched e-mail address is shown as
``j***@example.com``, a card number by its last four digits, a blocked word masked).

What is checked
---------------
* Input guardrails check the user's text of the newest turn: the run's input when it is a
  string, or the text of the trailing user messages when it is a list of input items
  (``{"role": "user", "content": "..."}`` or content parts ``{"type": "input_text", ...}``).
  Earlier conversation history is not checked again. They run *before* the model is called, so
  input that trips a guardrail never reaches the provider.
* Output guardrails check the agent's final output: its text, or, for an agent with an output
  schema, the structured value (serialised as JSON for the text-based types).

Types
-----
``blocklist``
    ``{"type": "blocklist", "words": ["secret project", "acme"], "case_sensitive": false}``

    Trips when any of ``words`` (1 to 500 words or phrases, each at most 200 characters) occurs.
    Whole words only: ``"acme"`` matches ``Acme!`` but not ``acmes``; the words of a phrase may be
    separated by any whitespace. ``case_sensitive`` defaults to ``false``.

``regex``
    ``{"type": "regex", "patterns": ["\\bDROP\\s+TABLE\\b"], "flags": "i"}``

    Trips when any of ``patterns`` (1 to 50 Python regular expressions, each at most 500
    characters) matches anywhere in the text. ``flags`` is a string of ``i`` (ignore case),
    ``m`` (multi-line ``^``/``$``), ``s`` (``.`` matches newlines) and ``x`` (verbose); it
    defaults to ``""``. Patterns must compile, and patterns with a variable-length quantifier
    nested inside another repeated group (such as ``(a+)+`` or ``(\w+\s?)*``) are refused
    because they can take exponential time; write them with a possessive quantifier (``a++``) or
    an atomic group (``(?>...)``) instead. Only texts up to ``MAX_REGEX_SCAN_CHARS`` (50,000)
    characters are scanned: a longer text trips the guardrail rather than going unchecked.

``max_length``
    ``{"type": "max_length", "max_chars": 2000}``

    Trips when the text is longer than ``max_chars`` characters (1 to 1,000,000). Mostly useful on
    the input side; allowed on both.

``pii``
    ``{"type": "pii", "detect": ["email", "phone", "card"], "action": "block"}``

    Personal data. ``detect`` lists what to look for (default: all three):

    - ``email``: e-mail addresses.
    - ``phone``: phone numbers of 7 to 15 digits written with separators (spaces, dashes, dots, an
      area code in parentheses), e.g. ``+1 415-555-0132``, ``(415) 555 0132``,
      ``+44 20 7946 0958``. Without a leading ``+`` the number must be split into groups, so plain
      numbers (``12345``, ``4155550132``), dates (``2026-11-24``), IPv4 addresses, decimals and
      thousands-grouped amounts (``1 000 000``) are not phone numbers.
    - ``card``: payment card numbers of 13 to 19 digits, optionally grouped with spaces or dashes,
      that pass the Luhn check.

    ``action`` is ``block`` (default: the guardrail trips) or ``redact``: the run is not stopped;
    matches are replaced by ``[redacted email]``, ``[redacted phone]`` or ``[redacted card]``. On
    the input side the user messages are redacted before the run starts (the model and the stored
    conversation only see the redacted text); on the output side the final text and completed
    messages are redacted, and the run's text is then not streamed token by token.

``json_schema`` (output only)
    ``{"type": "json_schema", "schema": {"type": "object", "required": ["answer"]}}``

    Trips unless the final output (a structured value, or a text containing JSON) validates
    against ``schema``, which must itself be valid JSON Schema (draft 2020-12 unless the schema's
    ``$schema`` names another draft).

``moderation``
    ``{"type": "moderation", "categories": ["harassment", "self-harm"]}``

    Sends the text to OpenAI's moderation endpoint (model ``omni-moderation-latest``) with the
    agent's provider credentials; only allowed when the agent's provider is of kind ``openai``.
    Trips when the text is flagged, or, when ``categories`` is given, only when one of those
    categories is flagged. Categories: ``harassment``, ``harassment/threatening``, ``hate``,
    ``hate/threatening``, ``illicit``, ``illicit/violent``, ``self-harm``,
    ``self-harm/instructions``, ``self-harm/intent``, ``sexual``, ``sexual/minors``,
    ``violence``, ``violence/graphic`` (``self_harm``-style spellings are accepted too). If the
    moderation call fails, the run fails.

Example::

    {
        "input": [
            {"type": "max_length", "max_chars": 4000},
            {"type": "pii", "detect": ["card"], "action": "block"},
            {"type": "pii", "name": "mask-contacts", "detect": ["email", "phone"],
             "action": "redact"}
        ],
        "output": [
            {"type": "blocklist", "name": "no-codenames", "words": ["Project Falcon"]}
        ]
    }
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrail,
    OutputGuardrail,
    RunContextWrapper,
)
from agents.exceptions import (
    InputGuardrailTripwireTriggered,
    OutputGuardrailTripwireTriggered,
    ToolInputGuardrailTripwireTriggered,
    ToolOutputGuardrailTripwireTriggered,
)

from agentdeck.core.exceptions import ApplicationError

__all__ = [
    "GUARDRAIL_TYPES",
    "MODERATION_CATEGORIES",
    "MODERATION_MODEL",
    "PII_KINDS",
    "build_guardrails",
    "find_pii",
    "latest_user_text",
    "output_redaction_enabled",
    "redact_input",
    "redact_output",
    "redact_text",
    "tripped_guardrail_info",
    "validate_guardrails",
]

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
PII_KINDS = ("email", "phone", "card")
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
_CATEGORY_ALIASES = {
    **{c: c for c in MODERATION_CATEGORIES},
    **{c.replace("/", "_").replace("-", "_"): c for c in MODERATION_CATEGORIES},
}
_DETAIL_MAX_CHARS = 300

# type -> (required fields, optional fields with their defaults)
_FIELDS: dict[str, tuple[frozenset[str], dict[str, Any]]] = {
    "blocklist": (frozenset({"words"}), {"case_sensitive": False}),
    "regex": (frozenset({"patterns"}), {"flags": ""}),
    "max_length": (frozenset({"max_chars"}), {}),
    "pii": (frozenset(), {"detect": list(PII_KINDS), "action": "block"}),
    "json_schema": (frozenset({"schema"}), {}),
    "moderation": (frozenset(), {"categories": []}),
}


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


class _Invalid(Exception):
    """A field-level problem; ``_normalise`` prefixes it with the entry's position."""


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, code="invalid_guardrails")


def validate_guardrails(config: Any, *, provider_kind: str) -> dict[str, Any]:
    """Normalise and validate an agent's guardrail config before it is saved.

    Returns ``{"input": [...], "output": [...]}`` with every entry's ``name`` and optional fields
    filled in. Raises ``ApplicationError(code="invalid_guardrails")`` naming the offending entry,
    e.g. ``input[1]: unknown type 'foo'``."""
    return _normalise(config, provider_kind=str(provider_kind))


def _normalise(config: Any, *, provider_kind: str | None) -> dict[str, Any]:
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
            re.compile(pattern, _regex_flags(flags))
        except (re.error, ValueError, OverflowError, RecursionError) as e:
            raise _Invalid(f"'patterns[{i}]' is not a valid regular expression: {e}") from None
        if _has_nested_quantifier(pattern, _regex_flags(flags)):
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
        _schema_validator_class(schema).check_schema(schema)
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
        canonical = _CATEGORY_ALIASES.get(item) if isinstance(item, str) else None
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


def _regex_flags(flags: str) -> int:
    value = 0
    for f in flags:
        value |= REGEX_FLAGS[f]
    return value


def _schema_validator_class(schema: dict[str, Any]) -> Any:
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


# --------------------------------------------------------------------------------------------
# PII detection
# --------------------------------------------------------------------------------------------

_EMAIL_RE = re.compile(r"(?<![\w.%+-])[\w.%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![A-Za-z0-9-])")
# Candidates only; _is_phone decides. Separators are single spaces, dashes or dots.
_PHONE_RE = re.compile(
    r"(?<![\w+])(?P<plus>\+ ?)?(?:\d{1,4}[ .-]?)?(?P<area>\(\d{1,5}\)[ .-]?)?"
    r"\d{1,15}(?:[ .-]\d{1,15})*(?!\w)"
)
_CARD_RE = re.compile(r"(?<!\w)\d(?:[ -]?\d){12,18}(?!\w)")
_DATE_RES = (
    re.compile(r"(\d{4})[-./ ](\d{1,2})[-./ ](\d{1,2})"),
    re.compile(r"(\d{1,2})[-./ ](\d{1,2})[-./ ](\d{4})"),
)
_IPV4_RE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_THOUSANDS_RE = re.compile(r"\d{1,3}(?:\.\d{3})+|\d{1,3}(?: \d{3})+")
_REDACTION_LABELS = {kind: f"[redacted {kind}]" for kind in PII_KINDS}


@dataclass(frozen=True)
class PIIMatch:
    kind: str
    start: int
    end: int
    value: str


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _looks_like_date(text: str) -> bool:
    for pattern in _DATE_RES:
        m = pattern.fullmatch(text)
        if m is None:
            continue
        a, b, c = (int(x) for x in m.groups())
        if pattern is _DATE_RES[0]:
            year, month, day = a, b, c
        else:  # day-first or month-first
            year, month, day = c, min(a, b), max(a, b)
        if 1000 <= year <= 2999 and 1 <= month <= 12 and 1 <= day <= 31:
            return True
    return False


def _is_phone(match: re.Match[str]) -> bool:
    text = match.group(0)
    groups = re.findall(r"\d+", text)
    if not 7 <= sum(len(g) for g in groups) <= 15:
        return False
    if match.group("plus"):
        return True
    if len(groups) < 2:
        return False  # a plain run of digits: an ID or an amount more often than a phone
    if any(len(g) > 4 for g in groups[:-1]) or len(groups[-1]) > 8:
        return False
    if not match.group("area"):
        separators = set(re.findall(r"[ .-]", text))
        if "." in separators and (separators != {"."} or len(groups) == 2):
            return False  # "12.5-13.75", a decimal
        if _looks_like_date(text) or _IPV4_RE.fullmatch(text) or _THOUSANDS_RE.fullmatch(text):
            return False
    return True


def find_pii(text: str, kinds: Sequence[str] = PII_KINDS) -> list[PIIMatch]:
    """Non-overlapping PII matches of the given kinds, in order of position. A span found as a
    card is not also reported as a phone number."""
    found: list[PIIMatch] = []
    if "card" in kinds:
        for m in _CARD_RE.finditer(text):
            if _luhn_ok(re.sub(r"\D", "", m.group(0))):
                found.append(PIIMatch("card", m.start(), m.end(), m.group(0)))
    if "email" in kinds:
        found.extend(
            PIIMatch("email", m.start(), m.end(), m.group(0)) for m in _EMAIL_RE.finditer(text)
        )
    if "phone" in kinds:
        found.extend(
            PIIMatch("phone", m.start(), m.end(), m.group(0))
            for m in _PHONE_RE.finditer(text)
            if _is_phone(m)
        )
    priority = {"card": 0, "email": 1, "phone": 2}
    found.sort(key=lambda m: (m.start, priority[m.kind], -m.end))
    result: list[PIIMatch] = []
    for match in found:
        if result and match.start < result[-1].end:
            continue
        result.append(match)
    return result


def redact_text(text: str, kinds: Sequence[str] = PII_KINDS) -> str:
    """``text`` with each PII match replaced by ``[redacted <kind>]``."""
    matches = find_pii(text, kinds)
    if not matches:
        return text
    parts: list[str] = []
    position = 0
    for m in matches:
        parts.append(text[position : m.start])
        parts.append(_REDACTION_LABELS[m.kind])
        position = m.end
    parts.append(text[position:])
    return "".join(parts)


def _mask_pii(match: PIIMatch) -> str:
    digits = re.sub(r"\D", "", match.value)
    if match.kind == "card":
        return f"card ending {digits[-4:]}"
    if match.kind == "phone":
        return f"phone ending {digits[-2:]}"
    local, _, domain = match.value.partition("@")
    return f"email {local[:1]}***@{domain}"


def _mask_word(word: str) -> str:
    if len(word) <= 2:
        return "*" * len(word)
    return word[:1] + "*" * (min(len(word), 12) - 1)


# --------------------------------------------------------------------------------------------
# Text extraction
# --------------------------------------------------------------------------------------------


def _get(item: Any, key: str) -> Any:
    if isinstance(item, dict):
        return item.get(key)
    return getattr(item, key, None)


def _is_user_message(item: Any) -> bool:
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
        if not _is_user_message(item):
            break
        texts.append(_content_text(_get(item, "content")))
    return "\n".join(t for t in reversed(texts) if t)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(_as_json_value(value), ensure_ascii=False, default=str)


def _as_json_value(value: Any) -> Any:
    if hasattr(value, "model_dump") and callable(value.model_dump):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------

# A check receives the checked value (a string on the input side, the final output on the
# output side) and returns None when it passes, else a detail saying what tripped it.
_Check = Callable[[Any], Awaitable[str | None]]


def _truncate(text: str) -> str:
    return text if len(text) <= _DETAIL_MAX_CHARS else text[: _DETAIL_MAX_CHARS - 1] + "…"


def _blocklist_check(entry: dict[str, Any]) -> _Check:
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
        text = _as_text(value)
        haystack = text if case_sensitive else text.casefold()
        for index, (needles, pattern) in enumerate(terms):
            if all(n in haystack for n in needles) and pattern.search(text):
                return f'matched blocked term #{index + 1} ("{_mask_word(words[index])}")'
        return None

    return check


def _regex_check(entry: dict[str, Any]) -> _Check:
    flags = _regex_flags(entry["flags"])
    patterns = [re.compile(p, flags) for p in entry["patterns"]]

    async def check(value: Any) -> str | None:
        text = _as_text(value)
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


def _max_length_check(entry: dict[str, Any], side: str) -> _Check:
    limit: int = entry["max_chars"]

    async def check(value: Any) -> str | None:
        length = len(_as_text(value))
        if length > limit:
            return f"{side} is {length} characters; the limit is {limit}"
        return None

    return check


def _pii_check(entry: dict[str, Any]) -> _Check:
    kinds: list[str] = entry["detect"]

    async def check(value: Any) -> str | None:
        matches = find_pii(_as_text(value), kinds)
        if not matches:
            return None
        shown = ", ".join(_mask_pii(m) for m in matches[:3])
        more = f" and {len(matches) - 3} more" if len(matches) > 3 else ""
        return f"found {shown}{more}"

    return check


def _json_schema_check(entry: dict[str, Any]) -> _Check:
    schema: dict[str, Any] = entry["schema"]
    validator = _schema_validator_class(schema)(schema)

    async def check(value: Any) -> str | None:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                return f"output is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
        else:
            value = _as_json_value(value)
        try:
            errors = sorted(validator.iter_errors(value), key=lambda err: list(err.path))
        except Exception as e:  # e.g. a $ref that does not resolve: fail closed
            return _truncate(f"the schema could not be applied: {type(e).__name__}: {e}")
        if not errors:
            return None
        where = "/".join(str(p) for p in errors[0].path) or "(root)"
        return _truncate(f"output does not match the schema at {where}: {errors[0].message}")

    return check


class _LazyClient:
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
            for name in _CATEGORY_ALIASES
            if name.isidentifier()
        }
    flags: dict[str, bool] = {}
    for key, value in (raw or {}).items():
        canonical = _CATEGORY_ALIASES.get(str(key), str(key))
        flags[canonical] = flags.get(canonical, False) or value is True
    return flags


def _moderation_check(entry: dict[str, Any], client: _LazyClient) -> _Check:
    wanted: list[str] = entry["categories"]

    async def check(value: Any) -> str | None:
        text = _as_text(value)
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


def _make_check(entry: dict[str, Any], side: str, client: _LazyClient) -> _Check:
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


def _output(entry: dict[str, Any], detail: str | None) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(
        output_info={"guardrail": entry["name"], "type": entry["type"], "detail": detail},
        tripwire_triggered=detail is not None,
    )


def _input_guardrail(entry: dict[str, Any], check: _Check) -> InputGuardrail[Any]:
    async def guardrail_function(
        context: RunContextWrapper[Any], agent: Agent[Any], input: str | list[Any]
    ) -> GuardrailFunctionOutput:
        return _output(entry, await check(latest_user_text(input)))

    # Blocking: the guardrail finishes before the model is called, so tripping input is never
    # sent to the provider (nor paid for).
    return InputGuardrail(
        guardrail_function=guardrail_function, name=entry["name"], run_in_parallel=False
    )


def _output_guardrail(entry: dict[str, Any], check: _Check) -> OutputGuardrail[Any]:
    async def guardrail_function(
        context: RunContextWrapper[Any], agent: Agent[Any], output: Any
    ) -> GuardrailFunctionOutput:
        return _output(entry, await check(output))

    return OutputGuardrail(guardrail_function=guardrail_function, name=entry["name"])


def build_guardrails(
    config: dict[str, Any] | None,
    *,
    moderation_client_factory: Callable[[], Any] | None = None,
) -> tuple[list[InputGuardrail[Any]], list[OutputGuardrail[Any]]]:
    """SDK guardrails for a (saved) guardrail config. ``moderation_client_factory()`` returns an
    ``openai.AsyncOpenAI``-like client; it is called on the first moderation check only.
    Redact-mode ``pii`` entries produce no guardrail: ``redact_input``/``redact_output`` apply
    them."""
    normalised = _normalise(config, provider_kind=None)
    client = _LazyClient(moderation_client_factory)
    input_guardrails: list[InputGuardrail[Any]] = []
    output_guardrails: list[OutputGuardrail[Any]] = []
    for side in SIDES:
        for entry in normalised[side]:
            if entry["type"] == "pii" and entry["action"] == "redact":
                continue
            check = _make_check(entry, side, client)
            if side == "input":
                input_guardrails.append(_input_guardrail(entry, check))
            else:
                output_guardrails.append(_output_guardrail(entry, check))
    return input_guardrails, output_guardrails


# --------------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------------


def _redact_kinds(config: dict[str, Any] | None, side: str) -> list[str]:
    kinds: set[str] = set()
    for entry in _normalise(config, provider_kind=None)[side]:
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
        if not isinstance(item, dict) or not _is_user_message(item):
            continue
        content = item.get("content")
        if isinstance(content, str):
            item["content"] = redact_text(content, kinds)
        elif isinstance(content, list):
            for part in content:
                if (
                    isinstance(part, dict)
                    and part.get("type") in ("input_text", "text")
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


# --------------------------------------------------------------------------------------------
# Tripped guardrails
# --------------------------------------------------------------------------------------------


def tripped_guardrail_info(exc: BaseException) -> dict[str, Any]:
    """``{"guardrail", "kind", "detail"}`` for a guardrail tripwire exception (the payload of the
    ``guardrail.tripped`` event). ``kind`` is ``input`` or ``output`` (``tool_input`` /
    ``tool_output`` for the SDK's tool guardrails)."""
    if isinstance(exc, InputGuardrailTripwireTriggered):
        kind = "input"
        guardrail: Any = exc.guardrail_result.guardrail
        info = exc.guardrail_result.output.output_info
    elif isinstance(exc, OutputGuardrailTripwireTriggered):
        kind = "output"
        guardrail = exc.guardrail_result.guardrail
        info = exc.guardrail_result.output.output_info
    elif isinstance(exc, ToolInputGuardrailTripwireTriggered):
        kind = "tool_input"
        guardrail = exc.guardrail
        info = exc.output.output_info
    elif isinstance(exc, ToolOutputGuardrailTripwireTriggered):
        kind = "tool_output"
        guardrail = exc.guardrail
        info = exc.output.output_info
    else:
        raise TypeError(f"not a guardrail tripwire exception: {type(exc).__name__}")
    name = guardrail.get_name()
    detail: Any = None
    if isinstance(info, dict):
        name = info.get("guardrail") or name
        detail = info.get("detail")
    elif info is not None:
        detail = _truncate(str(info))
    return {"guardrail": name, "kind": kind, "detail": detail}
