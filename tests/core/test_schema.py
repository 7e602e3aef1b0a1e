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
