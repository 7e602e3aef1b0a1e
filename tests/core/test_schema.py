from __future__ import annotations

import re

import pytest
from django.core.management import call_command


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from rest_framework.test import APIClient

    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_schema_generation_has_no_warnings_and_validates(tmp_path):
    # --fail-on-warn catches endpoints drf-spectacular had to guess about (incomplete schema).
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))


def test_schema_lists_identity_endpoints_with_security_schemes(schema):
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/v1/me",
        "/api/v1/api-keys/",
        "/api/v1/api-keys/{id}/",
        "/api/v1/api-keys/{id}/revoke/",
    } <= set(schema["paths"])
    schemes = schema["components"]["securitySchemes"]
    assert schemes["jwtAuth"] == {
        **schemes["jwtAuth"],
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert schemes["apiKeyAuth"]["scheme"] == "bearer"
    me = schema["paths"]["/api/v1/me"]["get"]
    assert {"jwtAuth": []} in me["security"]
    assert {"apiKeyAuth": []} in me["security"]


def test_every_operation_documents_the_problem_json_errors(schema):
    assert "Problem" in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "401" in responses, (method, path)
            assert responses["401"]["content"]["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"
            }
            if "{" in path:
                assert "404" in responses, (method, path)
            if "requestBody" in operation:
                assert "400" in responses, (method, path)


def test_create_key_documents_the_one_time_secret(schema):
    created = schema["paths"]["/api/v1/api-keys/"]["post"]["responses"]["201"]
    ref = created["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "secret" in schema["components"]["schemas"][ref]["properties"]


@pytest.mark.django_db
def test_swagger_ui_is_served_with_local_assets(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("/static/"), asset  # no CDN
        assert client.get(asset).status_code == 200, asset


def _operation_ids(schema: dict) -> dict[str, tuple[str, str]]:
    return {
        operation["operationId"]: (method, path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if isinstance(operation, dict) and "operationId" in operation
    }


def test_creates_link_to_the_operations_on_what_they_created(schema):
    ids = _operation_ids(schema)
    for link in [
        *schema["paths"]["/api/v1/agents/"]["post"]["responses"]["201"]["links"].values(),
        *schema["paths"]["/api/v1/tools/"]["post"]["responses"]["201"]["links"].values(),
    ]:
        assert ids[link["operationId"]][1].startswith(("/api/v1/agents/{id}/", "/api/v1/tools/"))
        assert link["parameters"]["id"] == "$response.body#/id"
    agent_links = schema["paths"]["/api/v1/agents/"]["post"]["responses"]["201"]["links"]
    assert {"agents_retrieve", "agents_partial_update", "agents_destroy"} <= set(agent_links)

    # A run is started under its agent but lives under /runs/.
    run_links = schema["paths"]["/api/v1/agents/{id}/runs/"]["post"]["responses"]["202"]["links"]
    assert {ids[link["operationId"]][1] for link in run_links.values()} >= {
        "/api/v1/runs/{id}/",
        "/api/v1/runs/{id}/cancel/",
    }

    # An attachment is detached by its index (from the request) and its file (the response).
    attach = schema["paths"]["/api/v1/vector-indices/{id}/files/"]["post"]["responses"]["201"]
    assert attach["links"]["vector_indices_files_destroy"]["parameters"] == {
        "id": "$request.path.id",
        "file_id": "$response.body#/file_id",
    }


def test_errors_documented_by_code_carry_the_problem_body_and_headers(schema):
    busy = schema["paths"]["/api/v1/agents/{id}/"]["delete"]["responses"]["409"]
    assert "agent_busy" in busy["description"]
    assert busy["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    me = schema["paths"]["/api/v1/me"]["get"]["responses"]
    assert "WWW-Authenticate" in me["401"]["headers"]
    assert "Retry-After" in me["429"]["headers"]
    # A cursor the list did not issue is a 400 (agentdeck.core.pagination), not a 404.
    agents = schema["paths"]["/api/v1/agents/"]["get"]["responses"]
    assert "invalid_cursor" in agents["400"]["description"]
    assert "404" not in agents


def test_lists_that_are_not_paginated_are_documented_as_plain_arrays(schema):
    for path, method in [
        ("/api/v1/agents/{id}/versions/", "get"),
        ("/api/v1/runs/{id}/tool-calls/", "get"),
        ("/api/v1/tools/import-openapi/", "post"),
    ]:
        operation = schema["paths"][path][method]
        status = "201" if method == "post" else "200"
        body = operation["responses"][status]["content"]["application/json"]["schema"]
        assert body["type"] == "array", path
        assert "cursor" not in {p["name"] for p in operation.get("parameters", [])}, path


def test_blank_values_the_api_returns_or_accepts_are_documented(schema):
    base_url = schema["components"]["schemas"]["Provider"]["properties"]["base_url"]
    assert {"type": "string", "maxLength": 0} in base_url["oneOf"]  # the kind's default endpoint
    visibility = next(
        p
        for p in schema["paths"]["/api/v1/agents/"]["get"]["parameters"]
        if p["name"] == "visibility"
    )
    assert "" in visibility["schema"]["enum"]  # ?visibility= is no filter


def test_file_content_is_documented_with_each_type_it_is_served_as(schema):
    content = schema["paths"]["/api/v1/files/{id}/content/"]["get"]["responses"]["200"]["content"]
    assert {"application/pdf", "text/plain", "text/csv", "application/json"} <= set(content)


def test_a_patch_that_validates_its_whole_body_documents_what_it_requires(schema):
    body = schema["paths"]["/api/v1/conversations/{id}/"]["patch"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"]["required"] == ["title"]


def test_conflicts_and_upstream_failures_are_documented_where_they_happen(schema):
    paths = schema["paths"]
    for path, method, status in [
        ("/api/v1/providers/", "post", "409"),  # provider_name_taken
        ("/api/v1/providers/{id}/", "delete", "409"),  # provider_in_use
        ("/api/v1/providers/{id}/models/", "get", "502"),  # provider_error
        ("/api/v1/tools/", "post", "409"),  # tool_name_taken
        ("/api/v1/tools/{id}/", "delete", "409"),  # tool_in_use
        ("/api/v1/tools/{id}/refresh/", "post", "502"),  # mcp_unreachable
        ("/api/v1/conversations/{id}/", "delete", "409"),  # conversation_busy
        ("/api/v1/vector-indices/{id}/search/", "post", "502"),  # the embedding provider
    ]:
        assert status in paths[path][method]["responses"], (method, path, status)


def test_the_idempotency_key_header_documents_the_length_it_takes(schema):
    parameters = schema["paths"]["/api/v1/agents/{id}/runs/"]["post"]["parameters"]
    header = next(p for p in parameters if p["name"] == "Idempotency-Key")
    assert header["schema"] == {"type": "string", "maxLength": 200}  # longer is a 400
