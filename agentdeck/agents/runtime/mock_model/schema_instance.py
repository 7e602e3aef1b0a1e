"""The smallest sensible value that validates against a JSON Schema: what the mock model answers
for an agent with an output type (strings carry the reply text).

Length, item-count, range and common ``format`` constraints are honoured; regular expression
``pattern`` constraints are not. A required ``$ref`` cycle with no way out is a ``UserError``."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any, cast

from agents.exceptions import UserError


class _Cycle(Exception):
    """A required ``$ref`` leads back to itself; another ``anyOf`` branch must be chosen."""


_FORMAT_EXAMPLES = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00Z",
    "duration": "PT0S",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


class SchemaInstance:
    """Builds the smallest sensible value that validates against a JSON Schema."""

    def __init__(self, schema: Mapping[str, Any], text: str) -> None:
        self.root = schema
        self.text = text

    def build(self) -> Any:
        try:
            return self._value(self.root, ())
        except _Cycle as cycle:
            raise UserError(
                f"The mock model cannot build a finite instance of the output schema: {cycle} "
                "refers back to itself with no way out."
            ) from cycle

    def _resolve(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            raise UserError(f"The mock model cannot resolve the external $ref {ref!r}.")
        node: Any = self.root
        for token in ref[1:].split("/")[1:] if ref != "#" else []:
            token = token.replace("~1", "/").replace("~0", "~")
            node = node[int(token)] if isinstance(node, list) else node[token]
        return cast(Mapping[str, Any], node)

    def _value(self, schema: Any, refs: tuple[str, ...]) -> Any:
        if schema is True or not isinstance(schema, Mapping):
            return self.text
        if "$ref" in schema:
            ref = str(schema["$ref"])
            if ref in refs:
                raise _Cycle(ref)
            merged = {**self._resolve(ref), **{k: v for k, v in schema.items() if k != "$ref"}}
            return self._value(merged, (*refs, ref))
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if schema.get("enum"):
            return copy.deepcopy(schema["enum"][0])
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self._first_branch(schema, key, refs)
        if schema.get("allOf"):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                if isinstance(part, Mapping) and "$ref" in part:
                    part = self._resolve(str(part["$ref"]))
                merged = _merge(merged, part)
            return self._value(merged, refs)
        kind = self._type(schema)
        if kind == "object":
            return self._object(schema, refs)
        if kind == "array":
            return self._array(schema, refs)
        if kind == "string":
            return self._string(schema)
        if kind in ("number", "integer"):
            return self._number(schema, integer=kind == "integer")
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        return self.text

    def _first_branch(self, schema: Mapping[str, Any], key: str, refs: tuple[str, ...]) -> Any:
        rest = {k: v for k, v in schema.items() if k != key}
        error: _Cycle | None = None
        for branch in schema[key]:
            try:
                merged = _merge(rest, branch) if isinstance(branch, Mapping) else branch
                return self._value(merged, refs)
            except _Cycle as cycle:
                error = cycle
        raise error or _Cycle(key)

    @staticmethod
    def _type(schema: Mapping[str, Any]) -> str | None:
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"] or kind
            kind = kinds[0] if kinds else None
        if kind is None:
            if "properties" in schema or "required" in schema:
                return "object"
            if "items" in schema or "prefixItems" in schema:
                return "array"
        return kind if isinstance(kind, str) else None

    def _object(self, schema: Mapping[str, Any], refs: tuple[str, ...]) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        value: dict[str, Any] = {}
        for name in schema.get("required") or []:
            value[name] = self._value(properties.get(name, {}), refs)
        return value

    def _array(self, schema: Mapping[str, Any], refs: tuple[str, ...]) -> list[Any]:
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems")
        value = [self._value(item, refs) for item in prefix or []]
        minimum = int(schema.get("minItems") or 0)
        while len(value) < minimum:
            value.append(self._value(items if items is not None else {}, refs))
        return value

    def _string(self, schema: Mapping[str, Any]) -> str:
        value = _FORMAT_EXAMPLES.get(str(schema.get("format")), self.text)
        maximum = schema.get("maxLength")
        if isinstance(maximum, int) and len(value) > maximum:
            value = value[:maximum]
        minimum = schema.get("minLength")
        if isinstance(minimum, int) and len(value) < minimum:
            value = value + "." * (minimum - len(value))
        return value

    @staticmethod
    def _number(schema: Mapping[str, Any], *, integer: bool) -> int | float:
        """0, or else the value nearest 0 that the range constraints allow."""
        low, low_open = _bound(schema, "minimum", "exclusiveMinimum", lower=True)
        high, high_open = _bound(schema, "maximum", "exclusiveMaximum", lower=False)

        def fits(value: float) -> bool:
            above = low is None or value > low or (value == low and not low_open)
            below = high is None or value < high or (value == high and not high_open)
            return above and below

        candidates: list[float] = [0]
        if low is not None:
            if integer:
                candidates.append(math.floor(low) + 1 if low_open else math.ceil(low))
            else:
                candidates.append(low + 1 if low_open else low)
        if high is not None:
            if integer:
                candidates.append(math.ceil(high) - 1 if high_open else math.floor(high))
            else:
                candidates.append(high - 1 if high_open else high)
        if low is not None and high is not None and not integer:
            candidates.append((low + high) / 2)
        value = next((candidate for candidate in candidates if fits(candidate)), candidates[-1])
        if integer or float(value).is_integer():
            return int(value)
        return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bound(
    schema: Mapping[str, Any], key: str, exclusive_key: str, *, lower: bool
) -> tuple[float | None, bool]:
    """A range bound and whether it is exclusive, from either JSON Schema spelling (draft 4's
    boolean ``exclusiveMinimum`` flag, or draft 6+'s numeric one)."""
    inclusive = schema.get(key) if _is_number(schema.get(key)) else None
    exclusive = schema.get(exclusive_key)
    if isinstance(exclusive, bool):
        return inclusive, exclusive and inclusive is not None
    if _is_number(exclusive) and (
        inclusive is None or (exclusive >= inclusive if lower else exclusive <= inclusive)
    ):
        return exclusive, True
    return inclusive, False


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if key == "properties" and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        elif key == "required" and isinstance(merged.get(key), list):
            merged[key] = [*merged[key], *(name for name in value if name not in merged[key])]
        else:
            merged[key] = value
    return merged
