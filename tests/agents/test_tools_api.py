from __future__ import annotations

import pytest

from agentdeck.agents.models import Tool
from agentdeck.core.crypto import decrypt_secret

pytestmark = pytest.mark.django_db

TOOLS = "/api/v1/tools/"


@pytest.fixture(autouse=True)
def _local_urls_allowed(settings):
    settings.OUTBOUND_HTTP_ALLOWLIST = ["127.0.0.1", "api.example.test"]


def http_tool_body(**overrides):
    return {
        "name": "get_weather",
        "kind": "http",
        "description": "Weather for a city.",
        "config": {"method": "GET", "url_template": "http://127.0.0.1:9/weather/{city}"},
        "parameters_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "secret_headers": {"Authorization": "Bearer weather-secret"},
        **overrides,
    }


def test_http_tool_secrets_are_encrypted_and_never_returned(user_client):
    response = user_client.post(TOOLS, http_tool_body(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["secret_header_names"] == ["Authorization"]
    assert "weather-secret" not in response.content.decode()
    assert "weather-secret" not in user_client.get(TOOLS).content.decode()
    stored = Tool.objects.get(pk=body["id"])
    assert "weather-secret" not in stored.secret_headers_encrypted
    assert "weather-secret" in decrypt_secret(stored.secret_headers_encrypted)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"kind": "teleport"}, "validation_error"),
        ({"name": "has spaces"}, "invalid_tool"),
        (
            {"parameters_schema": {"type": "object", "properties": {"city": {"type": 7}}}},
            "invalid_schema",
        ),
        ({"parameters_schema": {"type": "array"}}, "invalid_schema"),
        (
            {"config": {"method": "GET", "url_template": "http://127.0.0.1:9/weather/{town}"}},
            "invalid_tool",
        ),
        ({"config": {"method": "TRACE", "url_template": "http://127.0.0.1:9/"}}, "invalid_tool"),
        ({"config": {"method": "GET", "url_template": "http://{host}/x"}}, "invalid_tool"),
        ({"config": {"method": "GET", "url_template": "ftp://127.0.0.1/x"}}, "invalid_tool"),
        (
            {"config": {"method": "GET", "url_template": "http://169.254.169.254/latest"}},
            "url_not_allowed",
        ),
    ],
)
def test_bad_tool_definitions_are_refused(user_client, overrides, code):
    response = user_client.post(TOOLS, http_tool_body(**overrides), format="json")
    assert response.status_code == 400, response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_builtin_and_name_clash(user_client):
    ok = user_client.post(
        TOOLS,
        {"name": "calc", "kind": "builtin", "config": {"builtin": "calculator"}},
        format="json",
    )
    assert ok.status_code == 201
    again = user_client.post(
        TOOLS,
        {"name": "calc", "kind": "builtin", "config": {"builtin": "current_time"}},
        format="json",
    )
    assert (again.status_code, again.json()["code"]) == (409, "tool_name_taken")
    unknown = user_client.post(
        TOOLS, {"name": "x", "kind": "builtin", "config": {"builtin": "teleport"}}, format="json"
    )
    assert unknown.json()["code"] == "invalid_tool"


def test_hosted_tools_need_an_openai_provider(user, user_client, mock_provider):
    from agentdeck.agents.models import Agent, AgentRun, AgentVersion
    from agentdeck.agents.services.runs import agent_run_start
    from agentdeck.agents.tasks import execute_run

    tool = user_client.post(
        TOOLS,
        {"name": "search", "kind": "builtin", "config": {"builtin": "web_search"}},
        format="json",
    ).json()
    body = {"name": "Searcher", "provider": str(mock_provider.id), "model": "mock-echo"}
    refused = user_client.post(
        "/api/v1/agents/", {**body, "tools": [{"tool": tool["id"]}]}, format="json"
    )
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_tool")

    # A version that has one anyway (say its provider changed kind since) fails runs cleanly.
    agent = Agent.objects.get(
        pk=user_client.post("/api/v1/agents/", body, format="json").json()["id"]
    )
    version = AgentVersion.objects.get(agent=agent, number=1)
    version.snapshot = {
        **version.snapshot,
        "tools": [{"kind": "builtin", "name": "search", "config": {"builtin": "web_search"}}],
    }
    version.save()
    run, _ = agent_run_start(user=user, agent=agent, input="x")
    assert execute_run(str(run.id)) == "failed"
    assert AgentRun.objects.get(pk=run.pk).error_code == "tool_error"


def test_tool_in_use_cannot_be_deleted_and_others_tools_are_invisible(
    user_client, client_for, other_user, mock_provider
):
    tool = user_client.post(
        TOOLS,
        {"name": "calc", "kind": "builtin", "config": {"builtin": "calculator"}},
        format="json",
    ).json()
    user_client.post(
        "/api/v1/agents/",
        {
            "name": "Maths",
            "provider": str(mock_provider.id),
            "model": "mock-echo",
            "tools": [{"tool": tool["id"]}],
        },
        format="json",
    )
    busy = user_client.delete(f"{TOOLS}{tool['id']}/")
    assert (busy.status_code, busy.json()["code"]) == (409, "tool_in_use")
    stranger = client_for(other_user)
    assert stranger.get(f"{TOOLS}{tool['id']}/").status_code == 404
    assert stranger.delete(f"{TOOLS}{tool['id']}/").status_code == 404
    assert stranger.get(TOOLS).json()["results"] == []


def test_patch_keeps_secrets_unless_given_and_kind_cannot_change(user_client):
    tool = user_client.post(TOOLS, http_tool_body(), format="json").json()
    user_client.patch(f"{TOOLS}{tool['id']}/", {"description": "New words."}, format="json")
    stored = Tool.objects.get(pk=tool["id"])
    assert stored.description == "New words."
    assert "weather-secret" in decrypt_secret(stored.secret_headers_encrypted)
    user_client.patch(f"{TOOLS}{tool['id']}/", {"secret_headers": {}}, format="json")
    assert Tool.objects.get(pk=tool["id"]).secret_headers_encrypted == ""
    changed = user_client.patch(f"{TOOLS}{tool['id']}/", {"kind": "builtin"}, format="json")
    assert changed.status_code == 400


OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "Pets", "version": "1"},
    "servers": [{"url": "http://api.example.test/v1"}],
    "paths": {
        "/pets/{petId}": {
            "parameters": [
                {"name": "petId", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "get": {
                "operationId": "getPet",
                "summary": "Get a pet",
                "parameters": [{"name": "fields", "in": "query", "schema": {"type": "string"}}],
            },
            "delete": {"operationId": "deletePet"},
        },
        "/pets": {
            "post": {
                "operationId": "createPet",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"name": {"type": "string"}},
                                "required": ["name"],
                            }
                        }
                    }
                },
            },
        },
    },
}


def test_openapi_operations_become_http_tools(user_client, monkeypatch):
    from agentdeck.core import outbound

    monkeypatch.setattr(
        outbound,
        "_resolve_sync",
        lambda host, port: [__import__("ipaddress").ip_address("93.184.216.34")],
    )
    response = user_client.post(
        f"{TOOLS}import-openapi/", {"document": OPENAPI, "prefix": "pets_"}, format="json"
    )
    assert response.status_code == 201, response.json()
    tools = {t["name"]: t for t in response.json()}
    assert set(tools) == {"pets_getPet", "pets_deletePet", "pets_createPet"}
    get = tools["pets_getPet"]
    assert get["config"]["url_template"] == "http://api.example.test/v1/pets/{petId}"
    assert get["parameters_schema"]["required"] == ["petId"]
    assert set(get["parameters_schema"]["properties"]) == {"petId", "fields"}
    assert tools["pets_createPet"]["config"]["method"] == "POST"
    assert tools["pets_createPet"]["parameters_schema"]["required"] == ["name"]


def test_openapi_2_is_refused(user_client):
    response = user_client.post(
        f"{TOOLS}import-openapi/", {"document": {"swagger": "2.0", "paths": {}}}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (400, "invalid_openapi")
