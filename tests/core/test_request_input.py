"""Text a client writes outside a JSON body (query strings, paths, headers, form and multipart
fields, Content-Length, charset) is refused with a 400 or 415 problem+json naming what is wrong
(agentdeck.core.requestinput, agentdeck.core.parsers), on every operation."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.core.files.uploadedfile import SimpleUploadedFile

from config.asgi import application
from tests.core.api_surface import make_objects, operations
from tests.core.test_errors import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(user, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EMBEDDER_DEFAULT = "hash"
    return make_objects(user)


def refused_fields(response, status: int = 400, code: str = "validation_error") -> dict:
    body = assert_problem(response, status, code)
    return {e["field"]: e["code"] for e in body["errors"]}


# Percent-escapes a client can put in a query: NUL; bytes that are not UTF-8 (a lone 0xff, an
# encoded surrogate, a truncated sequence).
BAD_QUERY_VALUES = {
    "%00": "null_characters_not_allowed",
    "a%00b": "null_characters_not_allowed",
    "%ff": "invalid_encoding",
    "%ED%A0%80": "invalid_encoding",
    "%E2%82": "invalid_encoding",
}


def test_every_query_parameter_of_every_operation_refuses_nul_and_non_utf8(user_client, objects):
    for operation in operations():
        if operation.method != "GET":
            continue
        path = objects.path(operation.template)
        # The documented parameters, the pagination ones, and one no view reads.
        for name in {*operation.query, "cursor", "page_size", "unread"}:
            for raw, code in BAD_QUERY_VALUES.items():
                response = user_client.get(f"{path}?{name}={raw}")
                assert refused_fields(response) == {name: code}, (path, name, raw)


def test_a_query_parameter_name_is_checked_too(user_client):
    assert refused_fields(user_client.get("/api/v1/runs/?a%00b=1")) == {
        "a\\u0000b": "null_characters_not_allowed"
    }
    assert refused_fields(user_client.get("/api/v1/runs/?%ff=1")) == {"\ufffd": "invalid_encoding"}


def test_ordinary_query_text_is_left_alone(user_client, objects):
    response = user_client.get("/api/v1/agents/?search=caf%C3%A9+%E2%98%83&tag=a%2Bb")
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("segment", ["%00", "a%00b"])
@pytest.mark.parametrize("prefix", ["/api/v1/agents/", "/api/v1/runs/", "/admin/agents/agent/"])
def test_a_path_with_nul_is_refused(user_client, prefix, segment):
    response = user_client.get(f"{prefix}{segment}/")
    assert set(refused_fields(response)) == {"path"}


def asgi_request(method: str, path: bytes, headers=(), body: bytes = b"") -> dict:
    """Through the real ASGI application, with the bytes a server hands over (raw_path)."""
    from urllib.parse import unquote

    async def main():
        raw_path, _, query = path.partition(b"?")
        comm = HttpCommunicator(
            application,
            method,
            unquote(raw_path.decode("ascii"), errors="replace"),
            body=body,
            headers=[(b"host", b"localhost"), *headers],
        )
        comm.scope["raw_path"] = raw_path
        comm.scope["query_string"] = query
        return await comm.get_response(timeout=10)

    return async_to_sync(main)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "field", "code"),
    [
        (b"/api/v1/agents/%ff/", "path", "invalid_encoding"),
        (b"/api/v1/agents/%ED%A0%80/", "path", "invalid_encoding"),
        (b"/api/v1/agents/%00/", "path", "null_characters_not_allowed"),
        (b"/api/v1/agents/?search=%ff", "search", "invalid_encoding"),
        (b"/api/v1/agents/?search=%00", "search", "null_characters_not_allowed"),
    ],
)
def test_the_asgi_path_sees_the_raw_bytes(path, field, code):
    import json

    response = asgi_request("GET", path)
    assert response["status"] == 400
    assert dict(response["headers"])[b"Content-Type"] == b"application/problem+json"
    body = json.loads(response["body"])
    assert {e["field"]: e["code"] for e in body["errors"]} == {field: code}


@pytest.mark.django_db(transaction=True)
def test_a_query_string_whose_raw_bytes_are_not_utf8_is_problem_json():
    """Django's ASGI request refuses it while it is being built, with a bare 400 and an empty
    body that no middleware sees (daphne stops such bytes earlier; other servers do not)."""
    import json

    response = asgi_request("GET", b"/api/v1/agents/?search=\xff")
    assert response["status"] == 400
    assert dict(response["headers"])[b"Content-Type"] == b"application/problem+json"
    assert json.loads(response["body"])["code"] == "bad_request"


def test_nul_in_a_header_the_app_reads_is_refused_naming_it(user_client, objects):
    run = objects.by_resource["runs"]
    agent = objects.by_resource["agents"]
    response = user_client.post(
        f"/api/v1/agents/{agent}/runs/",
        {"input": "hi"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="key\x00",
    )
    assert refused_fields(response) == {"Idempotency-Key": "null_characters_not_allowed"}
    response = user_client.get(
        f"/api/v1/runs/{run}/events/", HTTP_ACCEPT="text/event-stream", HTTP_LAST_EVENT_ID="\x00"
    )
    assert refused_fields(response) == {"Last-Event-Id": "null_characters_not_allowed"}


def test_an_idempotency_key_longer_than_the_column_is_a_400(user_client, objects):
    agent = objects.by_resource["agents"]
    response = user_client.post(
        f"/api/v1/agents/{agent}/runs/",
        {"input": "hi"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k" * 201,
    )
    assert refused_fields(response) == {"Idempotency-Key": "max_length"}


def test_multipart_field_names_values_and_file_names_are_checked(user_client, objects):
    upload = SimpleUploadedFile("ok.txt", b"plain text\x00 inside a file is data", "text/plain")
    response = user_client.post("/api/v1/files/", {"file": upload, "note": "a\x00b"})
    assert refused_fields(response) == {"note": "null_characters_not_allowed"}
    upload = SimpleUploadedFile("ok.txt", b"hello", "text/plain")
    response = user_client.post("/api/v1/files/", {"file": upload, "n\x00te": "x"})
    assert refused_fields(response) == {"n\\u0000te": "null_characters_not_allowed"}
    # Clean fields pass: the file is stored.
    upload = SimpleUploadedFile("caf\u00e9.txt", b"hello", "text/plain")
    response = user_client.post("/api/v1/files/", {"file": upload, "attributes": '{"a": "b"}'})
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(("raw", "code"), BAD_QUERY_VALUES.items())
def test_form_fields_are_checked_as_the_query_string_is(user_client, objects, raw, code):
    """A form body is a query string: NUL refused, and %ff no longer turned into U+FFFD."""
    response = user_client.post(
        "/api/v1/files/",
        f"vector_index_ids={raw}",
        content_type="application/x-www-form-urlencoded",
    )
    assert refused_fields(response) == {"vector_index_ids": code}


def test_a_content_length_that_is_not_a_number_is_a_400(user_client):
    response = user_client.post(
        "/api/v1/files/",
        b"a=1",
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH="abc",
    )
    assert_problem(response, 400, "parse_error")


@pytest.mark.parametrize("charset", ["latin-1", "utf-16", "bogus"])
def test_a_body_in_another_charset_than_utf8_is_a_415(user_client, charset):
    response = user_client.post(
        "/api/v1/api-keys/", b'{"name": "x"}', content_type=f"application/json; charset={charset}"
    )
    body = assert_problem(response, 415, "unsupported_media_type")
    assert charset in body["detail"]


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8", "us-ascii"])
def test_utf8_bodies_may_say_so(user_client, charset):
    response = user_client.post(
        "/api/v1/api-keys/", b'{"name": "x"}', content_type=f"application/json; charset={charset}"
    )
    assert response.status_code == 201, response.content


def test_a_body_over_the_upload_limit_is_a_413(user_client, settings):
    """Django refuses it when DRF reads request.data: a RequestDataTooBig the handler took for
    a bug (500)."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = user_client.post("/api/v1/api-keys/", {"name": "x" * 2000}, format="json")
    body = assert_problem(response, 413, "payload_too_large")
    assert "1000" in body["detail"]
    response = user_client.post(
        "/api/v1/files/", "a=" + "x" * 2000, content_type="application/x-www-form-urlencoded"
    )
    assert_problem(response, 413, "payload_too_large")


def test_more_fields_or_parameters_than_django_reads_is_a_400(user_client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    many = "&".join(f"a{i}=1" for i in range(20))
    assert_problem(user_client.get(f"/api/v1/runs/?{many}"), 400, "too_many_fields")
    response = user_client.post(
        "/api/v1/files/", many, content_type="application/x-www-form-urlencoded"
    )
    assert_problem(response, 400, "too_many_fields")


def test_too_many_files_is_a_400(user_client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    uploads = [SimpleUploadedFile(f"f{i}.txt", b"x", "text/plain") for i in range(3)]
    response = user_client.post("/api/v1/files/", {"file": uploads})
    assert_problem(response, 400, "too_many_fields")
