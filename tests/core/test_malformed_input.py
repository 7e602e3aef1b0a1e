"""No malformed input in the request path reaches a 500: every operation of the schema, with
path parameters that are not ids and query parameters that are not what they should be, answers
below 500, and problem+json whenever it refuses."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tests.core.api_surface import make_objects, operations

pytestmark = pytest.mark.django_db

# Values no query parameter expects: signs, sizes and notations integers and dates do not take,
# digits int() refuses although str.isdigit() accepts them ("²"), empty and blank, structures,
# long text.
QUERY_VALUES = [
    "",
    " ",
    "-1",
    "0",
    "-0",
    "1.5",
    "1e309",
    "99999999999999999999",
    "-99999999999999999999",
    "\u00b2",
    "\u0663",
    "0x10",
    "abc",
    "true",
    "null",
    "[]",
    "{}",
    "2024-13-45",
    "2024-01-01",
    "2024-01-01T00:00:00",
    "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00-14:00",
    "x" * 10_000,
]
PATH_VALUES = ["not-a-uuid", "0", "-1", "-" * 36, "0" * 36, "a" * 36, "%20", "..", "\u00e9"]


@pytest.fixture
def objects(user, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EMBEDDER_DEFAULT = "hash"
    return make_objects(user)


def assert_handled(response, what) -> None:
    assert response.status_code < 500, (what, response.content[:500])
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/problem+json", what


def get_operations():
    return [op for op in operations() if op.method == "GET"]


def test_query_parameters_with_values_they_do_not_take(user_client, objects):
    for operation in get_operations():
        path = objects.path(operation.template)
        for name in {*operation.query, "cursor", "page_size", "after", "limit", "created_after"}:
            for value in QUERY_VALUES:
                response = user_client.get(f"{path}?{name}={quote(value)}")
                assert_handled(response, (path, name, value[:40]))


def test_repeated_and_empty_parameters(user_client, objects):
    for operation in get_operations():
        path = objects.path(operation.template)
        for name in operation.query:
            for query in (f"{name}=1&{name}=2", f"{name}&{name}=", f"{name}[]=1", "&&=&"):
                assert_handled(user_client.get(f"{path}?{query}"), (path, query))


def test_the_event_stream_refuses_an_after_it_cannot_use(user_client, objects):
    """The SSE view reads ?after= (and Last-Event-ID) itself: "²" passed its isdigit() check
    and broke int()."""
    run = objects.by_resource["runs"]
    for value in ("\u00b2", "-1", "abc", "1.5", " 1", "1e3"):
        for query, header in ((f"?after={quote(value)}", {}), ("", {"HTTP_LAST_EVENT_ID": value})):
            response = user_client.get(
                f"/api/v1/runs/{run}/events/{query}", HTTP_ACCEPT="text/event-stream", **header
            )
            assert response.status_code == 400, (value, response.content)
            assert response["Content-Type"] == "application/problem+json"


def test_path_parameters_that_are_not_ids(user_client, objects):
    for operation in operations():
        if "{" not in operation.template:
            continue
        for name in re.findall(r"\{(\w+)\}", operation.template):
            for value in PATH_VALUES:
                # This parameter malformed, the others naming real objects.
                template = operation.template.replace("{" + name + "}", quote(value))
                path = objects.path(template)
                response = user_client.generic(operation.method, path)
                assert_handled(response, (operation.method, path))
                assert response.status_code in (400, 404), (operation.method, path)


# JSON bodies the stdlib decoder accepts (or recurses on) but nothing after it can use.
HOSTILE_JSON = {
    "nested past JSON_MAX_DEPTH": '{"name": ' + "[" * 1000 + "]" * 1000 + "}",
    "NUL in a value": '{"name": "a\\u0000b"}',
    "NUL in a key": '{"na\\u0000me": "a"}',
    "a lone surrogate": '{"name": "\\ud800"}',
    "NaN": '{"name": NaN}',
    "a number out of range": '{"name": 1e999}',
}


def test_hostile_json_bodies_are_a_400_parse_error_on_every_operation(
    user_client, client_for, objects, staff_user
):
    """The default parser reads every JSON body with agentdeck.core.jsoninput: the body is
    refused before a view, serializer or query sees it."""
    from rest_framework.test import APIClient

    from agentdeck.accounts.services import api_key_create

    # Operations only staff may call: the body must get past their permission checks.
    granting = APIClient()
    _, secret = api_key_create(owner=staff_user, name="granting", scopes=["credits:grant"])
    granting.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    staff_only = {
        "/api/v1/credits/grants/": granting,
        "/api/v1/model-prices/": client_for(staff_user),
    }
    json_operations = [op for op in operations() if op.json_body]
    assert len(json_operations) >= 18, json_operations
    for operation in json_operations:
        path = objects.path(operation.template)
        client = staff_only.get(operation.template, user_client)
        for why, body in HOSTILE_JSON.items():
            response = client.generic(operation.method, path, body, content_type="application/json")
            assert response.status_code == 400, (operation, why, response.content[:300])
            assert response.json()["code"] == "parse_error", (operation, why)


def test_hostile_json_in_a_multipart_field_is_a_400(user_client, objects):
    from django.core.files.uploadedfile import SimpleUploadedFile

    for why, body in HOSTILE_JSON.items():
        upload = SimpleUploadedFile("a.txt", b"hello", "text/plain")
        response = user_client.post(
            "/api/v1/files/", {"file": upload, "attributes": body.replace('"name"', '"a"')}
        )
        assert response.status_code == 400, (why, response.content[:300])
        assert [e["field"] for e in response.json()["errors"]] == ["attributes"], why
