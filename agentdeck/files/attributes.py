"""Attachment attributes and the search filters that match them: the user's labels on a file in
an index (``{"lang": "en", "year": 2024}``) and ``{name: value or [any of values]}`` to search
by them. Both are client JSON that becomes jsonb and SQL, so both are bounded
(``agentdeck.core.jsonshape``) before a query is built.

A filter can only match what an attachment can hold: no more keys than ``ATTRIBUTES_MAX_KEYS``,
no longer names or strings. Anything beyond could never match and is refused (400) instead.
"""

from __future__ import annotations

from typing import Any

from agentdeck.core.jsonshape import JSONShape, ShapeError, check_shape

ATTRIBUTES_MAX_KEYS = 16
ATTRIBUTE_NAME_MAX_LENGTH = 64
ATTRIBUTE_VALUE_MAX_LENGTH = 512
# "Any of" lists in a filter.
FILTER_MAX_VALUES = 32

ATTRIBUTES_SHAPE = JSONShape(
    root="object",
    max_keys=ATTRIBUTES_MAX_KEYS,
    max_depth=1,
    max_key_length=ATTRIBUTE_NAME_MAX_LENGTH,
    max_string_length=ATTRIBUTE_VALUE_MAX_LENGTH,
    max_items=0,
    max_bytes=16 * 1024,
)
FILTERS_SHAPE = JSONShape(
    root="object",
    max_keys=ATTRIBUTES_MAX_KEYS,
    max_depth=2,
    max_key_length=ATTRIBUTE_NAME_MAX_LENGTH,
    max_string_length=ATTRIBUTE_VALUE_MAX_LENGTH,
    max_items=FILTER_MAX_VALUES,
    max_bytes=32 * 1024,
)

_SCALARS = (str, int, float, bool)

# For the OpenAPI document: what check_attributes and check_filters let through.
_SCALAR_SCHEMA = {
    "oneOf": [
        {"type": "string", "maxLength": ATTRIBUTE_VALUE_MAX_LENGTH},
        {"type": "number"},
        {"type": "boolean"},
    ]
}
ATTRIBUTES_SCHEMA = {"additionalProperties": _SCALAR_SCHEMA}
FILTERS_SCHEMA = {
    "additionalProperties": {
        "oneOf": [
            *_SCALAR_SCHEMA["oneOf"],
            {"type": "array", "maxItems": FILTER_MAX_VALUES, "items": _SCALAR_SCHEMA},
        ]
    }
}


def check_attributes(attributes: Any) -> None:
    """Raise :class:`ShapeError` unless ``attributes`` is ``{name: string|number|boolean}``
    within ``ATTRIBUTES_SHAPE``, names not empty."""
    check_shape(attributes, ATTRIBUTES_SHAPE)
    for key, value in attributes.items():
        if not key:
            raise ShapeError("Attribute names may not be empty.", code="invalid")
        if not isinstance(value, _SCALARS):
            raise ShapeError("Must be a string, number or boolean.", code="invalid", path=(key,))


def check_filters(filters: Any) -> None:
    """Raise :class:`ShapeError` unless ``filters`` is ``{name: value or [values]}`` of
    strings, numbers and booleans within ``FILTERS_SHAPE``."""
    check_shape(filters, FILTERS_SHAPE)
    for key, value in filters.items():
        values = value if isinstance(value, list) else [value]
        for i, item in enumerate(values):
            if not isinstance(item, _SCALARS):
                where = (key, i) if isinstance(value, list) else (key,)
                raise ShapeError(
                    "Must be a string, number or boolean, or a list of them.",
                    code="invalid",
                    path=where,
                )
