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
        # Any JSON where an object, a number or a template belongs: a 400, never a 500.
        (
            {"config": {"url_template": "http://127.0.0.1:9/{city}", "timeout_seconds": "abc"}},
            "invalid_tool",
        ),
        (
            {"config": {"url_template": "http://127.0.0.1:9/{city}", "timeout_seconds": [1]}},
            "invalid_tool",
        ),
        (
            {"config": {"url_template": "http://127.0.0.1:9/{city}", "max_response_bytes": "x"}},
            "invalid_tool",
        ),
        (
            {"config": {"url_template": "http://127.0.0.1:9/{city}", "max_response_bytes": 1e300}},
            "invalid_tool",
        ),
        ({"config": {"url_template": "http://127.0.0.1:9/{city"}}, "invalid_tool"),
        ({"config": {"url_template": "http://127.0.0.1:9/{city.name}"}}, "invalid_tool"),
        ({"config": {"url_template": "http://127.0.0.1:9/{0}"}}, "invalid_tool"),
        ({"config": {"url_template": "http://127.0.0.1:9/{city!r}"}}, "invalid_tool"),
        ({"config": {"url_template": "http://[::1/{city}"}}, "invalid_tool"),
        ({"config": {"url_template": "http://127.0.0.1:99999/{city}"}}, "invalid_tool"),
        (
            {"config": {"url_template": "http://127.0.0.1:9/{city}", "headers": {"X-A": "é"}}},
            "invalid_tool",
        ),
        (
            {"config": {"url_template": "http://127.0.0.1:9/{city}", "headers": ["X-A"]}},
            "invalid_tool",
        ),
        ({"parameters_schema": True}, "invalid_schema"),
        ({"parameters_schema": []}, "invalid_schema"),
        ({"parameters_schema": "object"}, "invalid_schema"),
        ({"config": ["url_template"]}, "validation_error"),
        ({"config": {"headers": {f"X-{i}": "v" for i in range(100)}}}, "validation_error"),
        ({"secret_headers": {"Authorization": "Bearer ключ"}}, "validation_error"),
        ({"secret_headers": {"Bad Name": "v"}}, "validation_error"),
        ({"description": "x" * 5000}, "validation_error"),
        ({"name": ["list"]}, "validation_error"),
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
        outbound.transport,
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


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("mcp", {"url": "http://[::1/mcp"}),
        ("mcp", {"url": "http://127.0.0.1:9/mcp", "headers": {"X-A": "a\r\nb"}}),
        ("mcp", {"url": "http://127.0.0.1:9/mcp", "allowed_tools": "all"}),
        ("agent", {"agent_id": ["not", "an", "id"]}),
        ("agent", {"agent_id": "not-a-uuid"}),
        ("agent", {"agent_id": {"id": 1}}),
        ("builtin", {"builtin": ["calculator"]}),
    ],
)
def test_other_kinds_refuse_malformed_config(user_client, kind, config):
    response = user_client.post(TOOLS, {"name": "t", "kind": kind, "config": config}, "json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] in ("invalid_tool", "invalid_reference")
    assert not Tool.objects.exists()


# --- OpenAPI import: malformed documents ---------------------------------------------------------

IMPORT = f"{TOOLS}import-openapi/"
SERVER = {"openapi": "3.0.3", "servers": [{"url": "http://127.0.0.1:9/v1"}]}


def with_paths(paths, **extra):
    return {**SERVER, "paths": paths, **extra}


def body_schema(schema):
    return {"requestBody": {"content": {"application/json": {"schema": schema}}}}


@pytest.mark.parametrize(
    ("document", "code", "where"),
    [
        ([], "validation_error", "document"),
        ("openapi: 3.0.0", "validation_error", "document"),
        (3, "validation_error", "document"),
        (None, "validation_error", "document"),
        ({"openapi": ["3.0"]}, "invalid_openapi", "OpenAPI 3"),
        ({"openapi": "3.0.0", "servers": "http://x", "paths": {}}, "invalid_openapi", "servers"),
        ({"openapi": "3.0.0", "servers": [7], "paths": {}}, "invalid_openapi", "servers.0"),
        ({"openapi": "3.0.0", "servers": [{"url": 7}]}, "invalid_openapi", "servers.0.url"),
        (
            {"openapi": "3.0.0", "servers": [{"url": "http://{region}.x"}]},
            "invalid_openapi",
            "variables",
        ),
        (with_paths([]), "invalid_openapi", "paths"),
        (with_paths("/pets"), "invalid_openapi", "paths"),
        (with_paths({}), "invalid_openapi", "no operations"),
        (with_paths({"pets": {"get": {}}}), "invalid_openapi", "paths.pets"),
        (with_paths({"/pets": []}), "invalid_openapi", "paths./pets"),
        (with_paths({"/pets": {"get": []}}), "invalid_openapi", "paths./pets.get"),
        (with_paths({"/pets": {"get": "list pets"}}), "invalid_openapi", "paths./pets.get"),
        (with_paths({"/pets": {"get": {"parameters": {}}}}), "invalid_openapi", "parameters"),
        (with_paths({"/pets": {"get": {"parameters": [7]}}}), "invalid_openapi", "parameters.0"),
        (
            with_paths({"/pets": {"get": {"parameters": [{"in": "query"}]}}}),
            "invalid_openapi",
            "parameters.0.name",
        ),
        (
            with_paths({"/pets": {"get": {"parameters": [{"name": 1, "in": "query"}]}}}),
            "invalid_openapi",
            "parameters.0.name",
        ),
        (
            with_paths(
                {"/pets": {"get": {"parameters": [{"name": "q", "in": "query", "schema": []}]}}}
            ),
            "invalid_openapi",
            "parameters.0.schema",
        ),
        (
            with_paths(
                {
                    "/pets": {
                        "get": {"parameters": [{"name": "q", "in": "query", "required": "yes"}]}
                    }
                }
            ),
            "invalid_openapi",
            "parameters.0.required",
        ),
        (
            with_paths({"/pets": {"parameters": "all", "get": {}}}),
            "invalid_openapi",
            "paths./pets.parameters",
        ),
        (with_paths({"/pets": {"get": {"operationId": 7}}}), "invalid_openapi", "operationId"),
        (with_paths({"/pets": {"get": {"summary": ["a"]}}}), "invalid_openapi", "summary"),
        (with_paths({"/pets": {"post": {"requestBody": []}}}), "invalid_openapi", "requestBody"),
        (
            with_paths({"/pets": {"post": {"requestBody": {"content": []}}}}),
            "invalid_openapi",
            "content",
        ),
        (with_paths({"/pets": {"post": body_schema([])}}), "invalid_openapi", "schema"),
        (
            with_paths({"/pets": {"post": body_schema({"type": "object", "properties": []})}}),
            "invalid_openapi",
            "properties",
        ),
        (
            with_paths({"/pets": {"post": body_schema({"type": "object", "required": "name"})}}),
            "invalid_openapi",
            "required",
        ),
        (
            with_paths({"/pets": {"post": body_schema({"type": "object", "required": [1]})}}),
            "invalid_openapi",
            "required",
        ),
        (with_paths({"/pets/{": {"get": {}}}), "invalid_openapi", "paths./pets/{.get"),
        (with_paths({"/pets/{id}": {"get": {}}}), "invalid_openapi", "placeholders"),
        (
            with_paths(
                {
                    "/pets": {
                        "get": {"parameters": [{"name": "q", "in": "query", "schema": {"type": 5}}]}
                    }
                }
            ),
            "invalid_openapi",
            "paths./pets.get",
        ),
    ],
)
def test_malformed_openapi_documents_are_400_naming_the_place(user_client, document, code, where):
    response = user_client.post(IMPORT, {"document": document}, format="json")

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert where in (body["detail"] if code != "validation_error" else body["errors"][0]["field"])
    assert not Tool.objects.exists()


REF_LOOPS = {
    "a parameter that refers to itself": with_paths(
        {"/pets": {"get": {"parameters": [{"$ref": "#/components/parameters/p"}]}}},
        components={"parameters": {"p": {"$ref": "#/components/parameters/p"}}},
    ),
    "two parameters that refer to each other": with_paths(
        {"/pets": {"get": {"parameters": [{"$ref": "#/components/parameters/a"}]}}},
        components={
            "parameters": {
                "a": {"$ref": "#/components/parameters/b"},
                "b": {"$ref": "#/components/parameters/a"},
            }
        },
    ),
    "a body schema that is only a reference to itself": with_paths(
        {"/pets": {"post": body_schema({"$ref": "#/components/schemas/S"})}},
        components={"schemas": {"S": {"$ref": "#/components/schemas/S"}}},
    ),
    "a path item that refers to itself": with_paths(
        {"/pets": {"$ref": "#/paths/~1pets"}},
    ),
    "a reference to nothing": with_paths(
        {"/pets": {"get": {"parameters": [{"$ref": "#/components/parameters/none"}]}}},
    ),
    "a reference to another file": with_paths(
        {
            "/pets": {
                "post": body_schema(
                    {"type": "object", "properties": {"a": {"$ref": "other.yaml#/A"}}}
                )
            }
        },
    ),
    "a reference into a schema": with_paths(
        {
            "/pets": {
                "post": body_schema(
                    {
                        "type": "object",
                        "properties": {"a": {"$ref": "#/components/schemas/A/properties/b"}},
                    }
                )
            }
        },
        components={"schemas": {"A": {"properties": {"b": {"type": "string"}}}}},
    ),
    "a reference that is not a string": with_paths(
        {"/pets": {"get": {"parameters": [{"$ref": ["#/x"]}]}}},
    ),
}


@pytest.mark.parametrize("name", list(REF_LOOPS))
def test_bad_references_are_400(user_client, name):
    response = user_client.post(IMPORT, {"document": REF_LOOPS[name]}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_openapi"
    assert "$ref" in response.json()["detail"]


def test_references_are_followed_and_recursive_schemas_stay_finite(user_client):
    document = with_paths(
        {
            "/trees/{treeId}": {
                "parameters": [{"$ref": "#/components/parameters/TreeId"}],
                "put": {
                    "operationId": "putTree",
                    "requestBody": {"$ref": "#/components/requestBodies/Tree"},
                },
            }
        },
        components={
            "parameters": {
                "TreeId": {"name": "treeId", "in": "path", "schema": {"type": "integer"}}
            },
            "requestBodies": {
                "Tree": {
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Node"}}
                    }
                }
            },
            "schemas": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "label": {"type": "string"},
                        "children": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Node"},
                        },
                    },
                    "required": ["label"],
                }
            },
        },
    )

    response = user_client.post(IMPORT, {"document": document}, format="json")

    assert response.status_code == 201, response.content
    (tool,) = response.json()
    schema = tool["parameters_schema"]
    assert set(schema["properties"]) == {"treeId", "label", "children"}
    assert schema["required"] == ["label", "treeId"]
    assert schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert schema["$defs"]["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    assert validator.is_valid({"treeId": 1, "label": "root", "children": [{"label": "leaf"}]})
    assert not validator.is_valid({"treeId": 1, "label": "root", "children": [{"kids": []}]})


def test_huge_documents_are_refused(user_client):
    many = with_paths({f"/p{i}": {"get": {}} for i in range(129)})
    response = user_client.post(IMPORT, {"document": many}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_openapi")
    assert "128 operations" in response.json()["detail"]

    # One component referenced by every operation: each tool would carry a copy of it.
    big = {
        "type": "object",
        "properties": {f"f{i}": {"type": "string", "description": "d" * 200} for i in range(1000)},
    }
    copies = with_paths(
        {f"/p{i}": {"post": body_schema({"$ref": "#/components/schemas/Big"})} for i in range(100)},
        components={"schemas": {"Big": big}},
    )
    response = user_client.post(IMPORT, {"document": copies}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_openapi")

    wide = with_paths({"/p": {"get": {}}}, info={f"x-{i}": "v" for i in range(6000)})
    response = user_client.post(IMPORT, {"document": wide}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "field": "document.info",
        "code": "max_keys",
        "detail": "At most 5000 keys.",
    }
    assert not Tool.objects.exists()


def test_one_bad_operation_imports_nothing(user_client):
    document = with_paths(
        {
            "/good": {"get": {"operationId": "good"}},
            "/bad/{id}": {"get": {"operationId": "bad"}},  # {id} is not a parameter
        }
    )
    response = user_client.post(IMPORT, {"document": document}, format="json")
    assert response.status_code == 400
    assert "paths./bad/{id}.get" in response.json()["detail"]
    assert not Tool.objects.exists()


def test_services_bound_tool_json_for_callers_other_than_the_api(user):
    from agentdeck.agents.services.tools import InvalidTool, tool_create

    with pytest.raises(InvalidTool) as caught:
        tool_create(
            owner=user,
            name="t",
            kind="mcp",
            config={"url": "http://127.0.0.1:9/mcp", "allowed_tools": ["x"] * 10_000},
        )
    assert caught.value.code == "invalid_tool"
    assert "config.allowed_tools" in caught.value.detail
    assert not Tool.objects.exists()
