"""Bounds on the shape of client JSON that becomes SQL or is stored as jsonb.

The parser (``agentdeck.core.jsoninput``) bounds how deeply any body nests; it cannot know how
wide a value may be, and width is what a value costs further in: each search filter key is an
SQL condition, each stored key a jsonb entry. Every free-form JSON value a client sends is
therefore declared with a :class:`JSONShape` naming what it may hold (keys per object, nesting,
key and string lengths, items per list, total size) and checked by :func:`check_shape` before
anything reads it. :class:`JSONShapeField` is the DRF field that does so and documents the
bounds in the OpenAPI schema (``maxProperties``, ``maxItems``, ...); a service that takes the
same value from another caller (the admin, a task) calls :func:`check_shape` itself.

A violation is a 400 ``validation_error`` naming the field and the path inside it
(``filters.lang``: "At most 512 characters."). The walk is iterative, stops at the first
violation, and stops counting as soon as the size bound is passed, so refusing a hostile value
costs at most the bound, not the value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import Direction
from rest_framework import serializers

from agentdeck.core import jsoninput
from agentdeck.core.exceptions import ApplicationError

Root = Literal["object", "array", "any"]
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class JSONShape:
    """What a JSON value may hold. ``max_depth`` counts nested objects and arrays: 0 allows only
    a scalar, 1 an object or array of scalars. ``max_bytes`` is the size of the value's compact
    JSON text in UTF-8 (escapes aside), which is about what jsonb stores."""

    max_keys: int
    max_depth: int
    max_key_length: int
    max_string_length: int
    max_items: int
    max_bytes: int
    root: Root = "any"

    def describe(self) -> str:
        """The bounds in words, for help texts and the OpenAPI description."""
        parts = [
            f"at most {self.max_keys} keys per object (names up to {self.max_key_length} "
            "characters)"
        ]
        if self.max_items:
            parts.append(f"{self.max_items} items per list")
        parts += [
            f"strings up to {self.max_string_length} characters",
            f"nested {self.max_depth} level{'' if self.max_depth == 1 else 's'} deep at most",
            f"{self.max_bytes:,} bytes in all",
        ]
        return "Bounds: " + ", ".join(parts) + "."


class ShapeError(ValueError):
    """``value`` breaks its shape: ``message`` says how, ``path`` where (keys and indices from the
    value's root), ``code`` is the stable error code."""

    def __init__(self, message: str, *, code: str, path: Path = ()) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.path = path

    def dotted(self, field: str) -> str:
        """Where, as ``field.key.0``: for messages outside a serializer."""
        return ".".join([field, *(str(p) for p in self.path)])


_ROOT_TYPES = {"object": dict, "array": list}
_ROOT_WORDS = {"object": "a JSON object", "array": "a JSON array"}
# What one scalar adds to the compact JSON text besides its characters: quotes, or the literal.
_LITERAL_BYTES = {True: 4, False: 5, None: 4}


def _scalar_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")) + 2
    if isinstance(value, bool) or value is None:
        return _LITERAL_BYTES[value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ShapeError("Numbers must be finite.", code="invalid")
    if isinstance(value, (int, float)):
        return len(repr(value))
    raise ShapeError(f"{type(value).__name__} is not a JSON value.", code="invalid")


def _check_text(text: str, path: Path) -> None:
    refused = jsoninput.refused_character(text)
    if refused is not None:
        raise ShapeError(f"Strings {refused[1]}", code="invalid", path=path)


def check_shape(value: Any, shape: JSONShape) -> None:
    """Raise :class:`ShapeError` at the first place ``value`` breaks ``shape``; also refuse NUL
    and lone surrogates in any string or key (:func:`agentdeck.core.jsoninput.refused_character`),
    whichever way the value arrived."""
    expected = _ROOT_TYPES.get(shape.root)
    if expected is not None and not isinstance(value, expected):
        raise ShapeError(f"Must be {_ROOT_WORDS[shape.root]}.", code="invalid")
    size = 0
    stack: list[tuple[Any, int, Path]] = [(value, 0, ())]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict):
            if depth >= shape.max_depth:
                raise ShapeError(
                    f"Nests deeper than {shape.max_depth} level(s).", code="max_depth", path=path
                )
            if len(item) > shape.max_keys:
                raise ShapeError(f"At most {shape.max_keys} keys.", code="max_keys", path=path)
            size += 2 + max(len(item) - 1, 0)  # braces and commas
            for key, child in item.items():
                if not isinstance(key, str):
                    raise ShapeError("Object keys must be strings.", code="invalid", path=path)
                if len(key) > shape.max_key_length:
                    raise ShapeError(
                        f"Keys may have at most {shape.max_key_length} characters.",
                        code="max_key_length",
                        path=path,
                    )
                _check_text(key, path)
                size += _scalar_bytes(key) + 1  # the colon
                stack.append((child, depth + 1, (*path, key)))
        elif isinstance(item, (list, tuple)):
            if depth >= shape.max_depth:
                raise ShapeError(
                    f"Nests deeper than {shape.max_depth} level(s).", code="max_depth", path=path
                )
            if len(item) > shape.max_items:
                raise ShapeError(f"At most {shape.max_items} items.", code="max_items", path=path)
            size += 2 + max(len(item) - 1, 0)
            stack.extend((child, depth + 1, (*path, i)) for i, child in enumerate(item))
        else:
            if isinstance(item, str):
                if len(item) > shape.max_string_length:
                    raise ShapeError(
                        f"At most {shape.max_string_length} characters.",
                        code="max_length",
                        path=path,
                    )
                _check_text(item, path)
            size += _scalar_bytes(item)
        if size > shape.max_bytes:
            raise ShapeError(f"Larger than {shape.max_bytes:,} bytes.", code="max_bytes")


@contextmanager
def shape_errors_as(
    field: str, *, code: str, error: type[ApplicationError] = ApplicationError
) -> Iterator[None]:
    """For services, whose callers are not always the API: a :class:`ShapeError` raised inside
    becomes ``error`` (a 400 problem with ``code``) saying where, e.g. ``config.headers: ...``."""
    try:
        yield
    except ShapeError as exc:
        raise error(f"{exc.dotted(field)}: {exc.message}", code=code) from None


def validation_error(exc: ShapeError) -> serializers.ValidationError:
    """The DRF error for a field whose value broke its shape: nested by ``exc.path``, so the
    problem's ``errors`` name e.g. ``filters.lang``."""
    detail: Any = [exc.message]
    for part in reversed(exc.path):
        detail = {str(part): detail}
    return serializers.ValidationError(detail, code=exc.code)


class JSONShapeField(serializers.JSONField):
    """A ``JSONField`` whose value must fit ``shape``, checked before anything else reads it;
    then ``check`` (the domain's own rules, raising :class:`ShapeError`), if given. With
    ``binary=True`` (a form field) a string is JSON text, read by :func:`jsoninput.loads`."""

    def __init__(
        self,
        *,
        shape: JSONShape,
        check: Callable[[Any], None] | None = None,
        schema: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """``schema``: JSON Schema keywords the OpenAPI document adds for what ``check``
        enforces (e.g. ``additionalProperties``); the bounds of ``shape`` are added anyway."""
        self.shape = shape
        self.check = check
        self.schema = schema or {}
        # drf-spectacular takes the description from help_text, after any extension runs.
        kwargs["help_text"] = " ".join(filter(None, [kwargs.get("help_text"), shape.describe()]))
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        value = data
        if self.binary and isinstance(data, (str, bytes)):
            try:
                value = jsoninput.loads(data)
            except jsoninput.JSONInputError as exc:
                raise serializers.ValidationError(str(exc), code="parse_error") from None
        try:
            check_shape(value, self.shape)
            if self.check is not None:
                self.check(value)
        except ShapeError as exc:
            raise validation_error(exc) from None
        return value


def shape_schema(shape: JSONShape) -> dict[str, Any]:
    """The bounds OpenAPI (JSON Schema) can state for a value of ``shape``."""
    schema: dict[str, Any] = {}
    if shape.root == "object":
        # OpenAPI 3.0 has no propertyNames: the key length is in the description only.
        schema.update(type="object", maxProperties=shape.max_keys)
    elif shape.root == "array":
        schema.update(type="array", maxItems=shape.max_items, items={})
    return schema


class JSONShapeFieldExtension(OpenApiSerializerFieldExtension):
    """drf-spectacular: a shaped field documents its bounds (what JSON Schema cannot say, depth
    and total size, goes in the description)."""

    target_class = "agentdeck.core.jsonshape.JSONShapeField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {**schema, **shape_schema(self.target.shape), **self.target.schema}
