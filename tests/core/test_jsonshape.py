"""Bounds on client JSON (agentdeck.core.jsonshape): each bound refused with its code and the
place it was broken, the walk cheap on hostile values, and the bounds in the OpenAPI schema."""

from __future__ import annotations

import time

import pytest
from rest_framework import serializers

from agentdeck.core.jsonshape import JSONShape, JSONShapeField, ShapeError, check_shape

SHAPE = JSONShape(
    root="object",
    max_keys=3,
    max_depth=2,
    max_key_length=5,
    max_string_length=8,
    max_items=4,
    max_bytes=100,
)


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"a": 1, "b": "12345678", "c": [1, 2.5, True, None]},
        {"a": {"b": "x"}},
        {"abcde": [None]},
    ],
)
def test_values_within_the_shape_pass(value):
    check_shape(value, SHAPE)


@pytest.mark.parametrize(
    ("value", "code", "path"),
    [
        ({"a": 1, "b": 2, "c": 3, "d": 4}, "max_keys", ()),
        ({"abcdef": 1}, "max_key_length", ()),
        ({"a": "123456789"}, "max_length", ("a",)),
        ({"a": [1, 2, 3, 4, 5]}, "max_items", ("a",)),
        ({"a": [[1]]}, "max_depth", ("a", 0)),
        ({"a": {"b": {"c": 1}}}, "max_depth", ("a", "b")),
        ({"a": ["12345678"] * 4, "b": ["12345678"] * 4, "c": ["12345678"] * 4}, "max_bytes", ()),
        ([1], "invalid", ()),
        ("text", "invalid", ()),
        ({"a": "nul\x00"}, "invalid", ("a",)),
        ({"a": {"b\x00": 1}}, "invalid", ("a",)),
        ({"a": ["\ud800"]}, "invalid", ("a", 0)),
        ({"a": float("nan")}, "invalid", ()),
        ({"a": object()}, "invalid", ()),
    ],
)
def test_each_bound_is_refused_with_its_code_and_place(value, code, path):
    with pytest.raises(ShapeError) as caught:
        check_shape(value, SHAPE)
    assert (caught.value.code, caught.value.path) == (code, path)


def test_a_huge_value_is_refused_at_its_first_violation_cheaply():
    wide = {f"k{i}": "v" for i in range(1_000_000)}
    long_list = {"a": list(range(1_000_000))}
    started = time.monotonic()
    for value in (wide, long_list):
        with pytest.raises(ShapeError):
            check_shape(value, SHAPE)
    assert time.monotonic() - started < 0.5


def test_a_shaped_field_names_the_place_inside_it():
    class Body(serializers.Serializer):
        labels = JSONShapeField(shape=SHAPE)

    body = Body(data={"labels": {"a": {"b": "123456789"}}})
    assert not body.is_valid()
    assert body.errors["labels"] == {"a": {"b": ["At most 8 characters."]}}
    assert body.errors["labels"]["a"]["b"][0].code == "max_length"


def test_a_shaped_field_runs_the_domain_check_after_the_bounds():
    seen = []

    def only_numbers(value):
        seen.append(value)
        for key, item in value.items():
            if not isinstance(item, (int, float)):
                raise ShapeError("Must be a number.", code="invalid", path=(key,))

    class Body(serializers.Serializer):
        labels = JSONShapeField(shape=SHAPE, check=only_numbers)

    wide = Body(data={"labels": {f"k{i}": 1 for i in range(10)}})
    assert not wide.is_valid()
    assert seen == []  # the bounds refused it first
    text = Body(data={"labels": {"a": "x"}})
    assert not text.is_valid()
    assert text.errors["labels"] == {"a": ["Must be a number."]}


def test_the_openapi_schema_states_the_bounds(api_client):
    schema = api_client.get("/api/schema/?format=json").json()
    filters = schema["components"]["schemas"]["SearchRequest"]["properties"]["filters"]
    assert filters["type"] == "object"
    assert filters["maxProperties"] == 16
    assert "nested 2 levels deep at most" in filters["description"]
    attributes = schema["components"]["schemas"]["AttachRequest"]["properties"]["attributes"]
    assert attributes["maxProperties"] == 16
