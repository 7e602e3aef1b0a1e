"""The one loader for untrusted JSON (agentdeck.core.jsoninput) and the parser built on it."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from agentdeck.core import jsoninput


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[[{{{"', 0),
        ("[]", 1),
        ('{"a": [1, {"b": "]]]"}]}', 3),
        ('[["\\"[["]]', 2),
        ("[[], [[]], []]", 3),
    ],
)
def test_nesting_depth_ignores_brackets_inside_strings(text, depth):
    assert jsoninput.nesting_depth(text) == depth


@override_settings(JSON_MAX_DEPTH=64)
def test_deep_json_is_refused_before_the_recursive_decoder_sees_it():
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(jsoninput.JSONInputError, match="deeper than 64"):
        jsoninput.loads(deep)
    ok = "[" * 64 + "]" * 64
    assert jsoninput.nesting_depth(ok) == 64
    jsoninput.loads(ok)


@override_settings(JSON_MAX_DEPTH=4)
@pytest.mark.parametrize(
    "text",
    ["[" + ",".join(["[]"] * 100) + "]", '["' + "[{" * 100 + '"]', '{"a": [[{}]], "b": [[{}]]}'],
)
def test_more_brackets_than_the_depth_allows_is_not_itself_too_deep(text):
    jsoninput.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "x\\u0000y"}',
        '{"a\\u0000": 1}',
        '["\\ud800"]',
        '{"\\udfff": 1}',
        '["ok", {"deep": ["\\udbff tail"]}]',
    ],
)
def test_nul_and_lone_surrogates_are_refused_in_values_and_keys(text):
    with pytest.raises(jsoninput.JSONInputError):
        jsoninput.loads(text)


def test_paired_surrogates_and_escaped_backslashes_are_accepted():
    assert jsoninput.loads('["\\ud83d\\ude00"]') == ["\U0001f600"]
    assert jsoninput.loads('["\\\\u0000"]') == ["\\u0000"]


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "1e999", "[-1e400]"])
def test_non_finite_numbers_are_refused(text):
    with pytest.raises(jsoninput.JSONInputError):
        jsoninput.loads(text)


@pytest.mark.parametrize("raw", [b"\xff\xfe", b'{"a": "\xed\xa0\x80"}', b"{", b""])
def test_undecodable_or_invalid_bytes_are_refused(raw):
    with pytest.raises(jsoninput.JSONInputError):
        jsoninput.loads(raw)


def test_ordinary_json_round_trips():
    value = {"a": [1, 2.5, True, None, "é", {"b": "c"}], "n": -3}
    assert jsoninput.loads(json.dumps(value).encode()) == value


@pytest.mark.parametrize("body", ["[" * 1000 + "]" * 1000, '{"a\\u0000": 1}', "[NaN]"])
def test_a_view_listing_a_plain_json_parser_still_reads_with_the_loader(body):
    """The content negotiation gives any JSON body to StrictJSONParser, whatever parser class
    a view names: DRF's own JSONParser recursed on deep JSON (a 500)."""
    from rest_framework.exceptions import ParseError
    from rest_framework.parsers import JSONParser
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from agentdeck.core.parsers import StrictContentNegotiation

    raw = APIRequestFactory().post("/", body, content_type="application/json")
    request = Request(raw, parsers=[JSONParser()], negotiator=StrictContentNegotiation())
    with pytest.raises(ParseError):
        request.data  # noqa: B018 (parsed on first access)
