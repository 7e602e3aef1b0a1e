"""The agents API (/api/v1/agents/): creation with version 1, validation of provider, model,
settings and output schema, versioning on behaviour changes, visibility and ownership, list
filters and cursor pagination, API-key scopes, and the OpenAPI document."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from rest_framework.test import APIClient

from agentdeck.accounts.services import api_key_create
from agentdeck.agents.models import Agent, AgentMetadata, AgentRun, AgentVersion
from agentdeck.agents.services.agents import agent_create
from tests.factories import AgentRunFactory, ProviderFactory

pytestmark = pytest.mark.django_db

AGENTS = "/api/v1/agents/"


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:agentdeck:problem:{code}"
    return body


def field_errors(body: dict) -> set[tuple[str, str]]:
    return {(e["field"], e["code"]) for e in body.get("errors", [])}


def url(agent_id, suffix: str = "") -> str:
    return f"{AGENTS}{agent_id}/{suffix}"


@pytest.fixture
def provider(user):
    return ProviderFactory(owner=user, name="offline")


def make_agent(owner, provider=None, **kwargs) -> Agent:
    kwargs.setdefault("name", "Helper")
    return agent_create(
        owner=owner,
        provider=provider or ProviderFactory(owner=owner),
        model=kwargs.pop("model", "mock-echo"),
        **kwargs,
    )


def post_agent(client, provider, **body):
    payload = {"name": "Support Bot", "provider": str(provider.pk), "model": "mock-echo", **body}
    return client.post(AGENTS, payload, format="json")


def versions(client, agent_id) -> list[dict]:
    response = client.get(url(agent_id, "versions/"))
    assert response.status_code == 200, response.content
    return response.json()


# --- create --------------------------------------------------------------------------------------


def test_create_makes_version_one_with_metadata(user, user_client, provider):
    response = post_agent(
        user_client,
        provider,
        description="Answers tickets",
        instructions="Be brief.",
        model_settings={"temperature": 0.2, "max_output_tokens": 256},
        metadata={"category": "support", "tags": ["help", "tickets"], "icon": "bot.png"},
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["owner"] == str(user.pk)
    assert body["name"] == "Support Bot"
    assert body["slug"] == "support-bot"
    assert body["provider"] == str(provider.pk)
    assert body["provider_kind"] == "mock"
    assert body["model"] == "mock-echo"
    assert body["model_settings"] == {"temperature": 0.2, "max_output_tokens": 256}
    assert body["output_schema"] is None
    assert body["visibility"] == "private"
    assert body["status"] == "active"
    assert body["current_version"] == 1
    assert body["metadata"] == {
        "category": "support",
        "tags": ["help", "tickets"],
        "icon": "bot.png",
        "featured": False,
        "run_count": 0,
        "last_run_at": None,
    }

    listed = versions(user_client, body["id"])
    assert [v["number"] for v in listed] == [1]
    assert listed[0]["created_by"] == str(user.pk)
    assert listed[0]["snapshot"] == {
        "name": "Support Bot",
        "instructions": "Be brief.",
        "provider_id": str(provider.pk),
        "provider_kind": "mock",
        "model": "mock-echo",
        "model_settings": {"temperature": 0.2, "max_output_tokens": 256},
        "output_schema": None,
        "guardrails": {},
        "tools": [],
        "handoffs": [],
    }
    assert user_client.get(url(body["id"])).json() == body


def test_create_with_a_shared_provider(user_client):
    shared = ProviderFactory(owner=None)
    response = post_agent(user_client, shared)
    assert response.status_code == 201, response.content
    assert response.json()["provider"] == str(shared.pk)


def test_slug_is_unique_per_owner(user, other_user, client_for, provider):
    me = client_for(user)
    first = post_agent(me, provider, name="My Agent!").json()
    second = post_agent(me, provider, name="my agent").json()
    third = post_agent(me, provider, name="My  Agent").json()
    theirs = post_agent(
        client_for(other_user), ProviderFactory(owner=other_user), name="My Agent"
    ).json()

    assert first["slug"] == "my-agent"
    assert second["slug"] == "my-agent-2"
    assert third["slug"] == "my-agent-3"
    assert theirs["slug"] == "my-agent"  # slugs are unique per owner only


def test_name_without_slug_characters_still_gets_a_slug(user_client, provider):
    response = post_agent(user_client, provider, name="!!!")
    assert response.status_code == 201
    assert response.json()["slug"] == "agent"


def test_non_staff_cannot_feature_their_own_agent(user_client, provider):
    response = post_agent(user_client, provider, metadata={"featured": True})
    assert response.status_code == 201
    assert response.json()["metadata"]["featured"] is False


def test_status_given_on_create_is_ignored(user_client, provider):
    response = post_agent(user_client, provider, status="suspended")
    assert response.status_code == 201
    assert response.json()["status"] == "active"


# --- create: references and validation -----------------------------------------------------------


def test_unknown_provider_is_invalid_provider(user_client):
    response = user_client.post(
        AGENTS,
        {"name": "a", "provider": "00000000-0000-0000-0000-000000000000", "model": "mock-echo"},
        format="json",
    )

    body = assert_problem(response, 400, "invalid_provider")
    assert body["errors"][0]["field"] == "provider"
    assert not Agent.objects.exists()


def test_another_users_private_provider_is_invalid_provider(user_client, other_user):
    theirs = ProviderFactory(owner=other_user)

    assert_problem(post_agent(user_client, theirs), 400, "invalid_provider")
    assert not Agent.objects.exists()


def test_staff_cannot_attach_a_users_private_provider_to_their_own_agent(
    staff_user, client_for, other_user
):
    theirs = ProviderFactory(owner=other_user)
    assert_problem(post_agent(client_for(staff_user), theirs), 400, "invalid_provider")


def test_disabled_provider_is_refused(user, user_client):
    disabled = ProviderFactory(owner=user, enabled=False)
    assert_problem(post_agent(user_client, disabled), 400, "provider_disabled")


def test_mock_provider_offers_only_its_models(user_client, provider):
    body = assert_problem(
        post_agent(user_client, provider, model="gpt-9"), 400, "model_not_available"
    )
    assert body["available_models"] == ["mock-echo"]
    assert not Agent.objects.exists()


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "strange"},
        {"type": "object", "properties": {"a": {"type": 5}}},
        {"type": "object", "required": "a"},
        ["not", "an", "object"],
        "a string",
    ],
)
def test_output_schema_must_be_json_schema(user_client, provider, schema):
    response = post_agent(user_client, provider, output_schema=schema)

    assert_problem(response, 400, "invalid_output_schema")
    assert not Agent.objects.exists()


def test_a_valid_output_schema_is_accepted(user_client, provider):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "score": {"type": "number"}},
        "required": ["answer", "score"],
        "additionalProperties": False,
    }

    response = post_agent(user_client, provider, output_schema=schema)

    assert response.status_code == 201, response.content
    assert response.json()["output_schema"] == schema
    assert versions(user_client, response.json()["id"])[0]["snapshot"]["output_schema"] == schema


def test_unknown_model_setting_is_a_validation_error(user_client, provider):
    response = post_agent(user_client, provider, model_settings={"temprature": 0.5})

    body = assert_problem(response, 400, "validation_error")
    assert ("model_settings.temprature", "unknown_field") in field_errors(body)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"temperature": 3}, "model_settings.temperature"),
        ({"top_p": 1.5}, "model_settings.top_p"),
        ({"max_output_tokens": 0}, "model_settings.max_output_tokens"),
        ({"reasoning_effort": "extreme"}, "model_settings.reasoning_effort"),
    ],
)
def test_out_of_range_model_settings_are_validation_errors(user_client, provider, settings, field):
    body = assert_problem(
        post_agent(user_client, provider, model_settings=settings), 400, "validation_error"
    )
    assert field in {f for f, _ in field_errors(body)}


def test_missing_required_fields(user_client):
    body = assert_problem(user_client.post(AGENTS, {}, format="json"), 400, "validation_error")
    assert {("name", "required"), ("provider", "required"), ("model", "required")} <= (
        field_errors(body)
    )


def test_unknown_visibility_is_a_validation_error(user_client, provider):
    body = assert_problem(
        post_agent(user_client, provider, visibility="friends"), 400, "validation_error"
    )
    assert ("visibility", "invalid_choice") in field_errors(body)


# --- versions ------------------------------------------------------------------------------------


def test_changing_instructions_makes_a_new_version(user, user_client, provider):
    agent = make_agent(user, provider, instructions="v1 instructions")

    response = user_client.patch(url(agent.pk), {"instructions": "v2 instructions"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["current_version"] == 2
    assert response.json()["instructions"] == "v2 instructions"
    listed = versions(user_client, agent.pk)
    assert [v["number"] for v in listed] == [2, 1]
    assert listed[0]["snapshot"]["instructions"] == "v2 instructions"
    assert listed[1]["snapshot"]["instructions"] == "v1 instructions"
    assert listed[0]["snapshot"] != listed[1]["snapshot"]
    assert listed[0]["created_by"] == str(user.pk)


def test_changing_only_metadata_makes_no_version(user, user_client, provider):
    agent = make_agent(user, provider, metadata={"tags": ["a"]})

    response = user_client.patch(
        url(agent.pk), {"metadata": {"tags": ["b", "c"], "category": "ops"}}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["current_version"] == 1
    assert response.json()["metadata"]["tags"] == ["b", "c"]
    assert response.json()["metadata"]["category"] == "ops"
    assert [v["number"] for v in versions(user_client, agent.pk)] == [1]


def test_changing_description_or_visibility_makes_no_version(user, user_client, provider):
    agent = make_agent(user, provider)

    response = user_client.patch(
        url(agent.pk), {"description": "new words", "visibility": "public"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["current_version"] == 1
    assert response.json()["visibility"] == "public"


def test_patch_with_unchanged_values_makes_no_version(user, user_client, provider):
    agent = make_agent(user, provider, instructions="same")

    response = user_client.patch(
        url(agent.pk), {"instructions": "same", "model": "mock-echo"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["current_version"] == 1


def test_patch_validates_like_create(user, other_user, user_client, provider):
    agent = make_agent(user, provider)

    assert_problem(
        user_client.patch(url(agent.pk), {"model": "gpt-9"}, format="json"),
        400,
        "model_not_available",
    )
    assert_problem(
        user_client.patch(url(agent.pk), {"output_schema": {"type": "strange"}}, format="json"),
        400,
        "invalid_output_schema",
    )
    assert_problem(
        user_client.patch(
            url(agent.pk), {"provider": str(ProviderFactory(owner=other_user).pk)}, format="json"
        ),
        400,
        "invalid_provider",
    )
    assert_problem(
        user_client.patch(url(agent.pk), {"model_settings": {"temperature": 3}}, format="json"),
        400,
        "validation_error",
    )
    agent.refresh_from_db()
    assert agent.current_version == 1
    assert agent.model == "mock-echo"


def test_renaming_changes_the_slug(user, user_client, provider):
    agent = make_agent(user, provider, name="Old Name")
    make_agent(user, provider, name="New Name")

    response = user_client.patch(url(agent.pk), {"name": "New Name"}, format="json")

    assert response.status_code == 200
    assert response.json()["slug"] == "new-name-2"
    assert response.json()["current_version"] == 2


def test_restore_makes_a_new_version_with_the_old_behaviour(user, user_client, provider):
    agent = make_agent(
        user,
        provider,
        name="Original",
        instructions="first",
        model_settings={"temperature": 0.1},
    )
    changed = user_client.patch(
        url(agent.pk),
        {
            "name": "Renamed",
            "instructions": "second",
            "model_settings": {"temperature": 0.9},
            "output_schema": {"type": "object"},
        },
        format="json",
    )
    assert changed.json()["current_version"] == 2
    assert changed.json()["slug"] == "renamed"

    response = user_client.post(url(agent.pk, "versions/1/restore/"))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["current_version"] == 3
    assert body["name"] == "Original"
    assert body["slug"] == "original"
    assert body["instructions"] == "first"
    assert body["model_settings"] == {"temperature": 0.1}
    assert body["output_schema"] is None
    listed = versions(user_client, agent.pk)
    assert [v["number"] for v in listed] == [3, 2, 1]
    assert listed[0]["snapshot"] == listed[2]["snapshot"]
    assert listed[0]["note"] == "restored version 1"


def test_restoring_a_missing_version_is_404(user, user_client, provider):
    agent = make_agent(user, provider)

    assert_problem(user_client.post(url(agent.pk, "versions/7/restore/")), 404, "not_found")
    agent.refresh_from_db()
    assert agent.current_version == 1


def test_restoring_onto_a_disabled_provider_is_refused(user, user_client, provider):
    agent = make_agent(user, provider)
    other = ProviderFactory(owner=user, name="second")
    assert (
        user_client.patch(url(agent.pk), {"provider": str(other.pk)}, format="json").status_code
        == 200
    )
    provider.enabled = False
    provider.save()

    assert_problem(user_client.post(url(agent.pk, "versions/1/restore/")), 400, "provider_disabled")
    agent.refresh_from_db()
    assert (agent.current_version, agent.provider_id) == (2, other.pk)


def test_restoring_a_version_whose_provider_is_gone_is_invalid_provider(
    user, user_client, provider
):
    agent = make_agent(user, provider)
    other = ProviderFactory(owner=user, name="second")
    user_client.patch(url(agent.pk), {"provider": str(other.pk)}, format="json")
    assert user_client.delete(f"/api/v1/providers/{provider.pk}/").status_code == 204

    assert_problem(user_client.post(url(agent.pk, "versions/1/restore/")), 400, "invalid_provider")


def test_metadata_change_moves_its_updated_at(user, user_client, provider):
    agent = make_agent(user, provider)
    before = AgentMetadata.objects.get(agent=agent).updated_at

    user_client.patch(url(agent.pk), {"metadata": {"icon": "new.png"}}, format="json")

    after = AgentMetadata.objects.get(agent=agent)
    assert after.icon == "new.png"
    assert after.updated_at > before


# --- visibility and ownership --------------------------------------------------------------------


def test_another_users_private_agent_is_invisible(user, other_user, client_for):
    theirs = make_agent(other_user, name="Secret")
    me = client_for(user)

    for response in (
        me.get(url(theirs.pk)),
        me.patch(url(theirs.pk), {"name": "mine"}, format="json"),
        me.delete(url(theirs.pk)),
        me.get(url(theirs.pk, "versions/")),
        me.post(url(theirs.pk, "versions/1/restore/")),
        me.post(url(theirs.pk, "runs/"), {"input": "hi"}, format="json"),
    ):
        assert_problem(response, 404, "not_found")
    assert me.get(AGENTS).json()["results"] == []
    theirs.refresh_from_db()
    assert theirs.name == "Secret"
    assert not AgentRun.objects.exists()


def test_a_public_agent_is_visible_but_only_its_owner_changes_it(user, other_user, client_for):
    theirs = make_agent(other_user, name="Public", visibility="public")
    me = client_for(user)

    assert [a["id"] for a in me.get(AGENTS).json()["results"]] == [str(theirs.pk)]
    assert me.get(url(theirs.pk)).json()["name"] == "Public"
    assert [v["number"] for v in versions(me, theirs.pk)] == [1]

    for response in (
        me.patch(url(theirs.pk), {"name": "Hijacked"}, format="json"),
        me.delete(url(theirs.pk)),
        me.post(url(theirs.pk, "versions/1/restore/")),
    ):
        assert_problem(response, 403, "permission_denied")
    theirs.refresh_from_db()
    assert theirs.name == "Public"
    assert theirs.current_version == 1


def test_staff_see_and_manage_every_agent(user, other_user, staff_user, client_for):
    private = make_agent(user, name="Mine")
    public = make_agent(other_user, name="Theirs", visibility="public")
    staff = client_for(staff_user)

    assert {a["id"] for a in staff.get(AGENTS).json()["results"]} == {
        str(private.pk),
        str(public.pk),
    }
    assert staff.get(url(private.pk)).status_code == 200
    response = staff.patch(url(private.pk), {"metadata": {"featured": True}}, format="json")
    assert response.status_code == 200
    assert response.json()["metadata"]["featured"] is True


def test_non_staff_cannot_change_the_status(user, user_client, provider):
    agent = make_agent(user, provider)

    assert_problem(
        user_client.patch(url(agent.pk), {"status": "suspended"}, format="json"),
        403,
        "staff_only",
    )
    agent.refresh_from_db()
    assert agent.status == "active"


def test_non_staff_cannot_feature_by_patch(user, user_client, provider):
    agent = make_agent(user, provider)

    response = user_client.patch(url(agent.pk), {"metadata": {"featured": True}}, format="json")

    assert response.status_code == 200
    assert AgentMetadata.objects.get(agent=agent).featured is False


def test_staff_suspend_an_agent_and_it_cannot_run(user, staff_user, user_client, client_for):
    agent = make_agent(user)

    response = client_for(staff_user).patch(url(agent.pk), {"status": "suspended"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "suspended"
    assert response.json()["current_version"] == 1
    assert_problem(
        user_client.post(url(agent.pk, "runs/"), {"input": "hi"}, format="json"),
        409,
        "agent_suspended",
    )
    assert not AgentRun.objects.exists()

    reactivated = client_for(staff_user).patch(url(agent.pk), {"status": "active"}, format="json")
    assert reactivated.json()["status"] == "active"


def test_owner_deletes_their_agent(user, user_client, provider):
    agent = make_agent(user, provider)

    assert user_client.delete(url(agent.pk)).status_code == 204

    assert not Agent.objects.filter(pk=agent.pk).exists()
    assert not AgentVersion.objects.filter(agent_id=agent.pk).exists()
    assert_problem(user_client.get(url(agent.pk)), 404, "not_found")


def test_deleting_an_agent_deletes_its_finished_runs(user, user_client, provider):
    agent = make_agent(user, provider)
    AgentRunFactory(agent=agent, status="succeeded")
    AgentRunFactory(agent=agent, status="failed")

    response = user_client.delete(url(agent.pk))

    assert response.status_code == 204, response.content
    assert not Agent.objects.filter(pk=agent.pk).exists()
    assert not AgentRun.objects.exists()


@pytest.mark.parametrize("status", ["queued", "running", "requires_action"])
def test_deleting_an_agent_with_a_run_in_flight_is_refused(user, user_client, provider, status):
    agent = make_agent(user, provider)
    AgentRunFactory(agent=agent, status="succeeded")
    AgentRunFactory(agent=agent, status=status)

    assert_problem(user_client.delete(url(agent.pk)), 409, "agent_busy")
    assert Agent.objects.filter(pk=agent.pk).exists()
    assert AgentRun.objects.filter(agent=agent).count() == 2


def test_malformed_agent_id_is_404(user_client):
    assert_problem(user_client.get(f"{AGENTS}not-a-uuid/"), 404, "not_found")


# --- list filters and pagination -----------------------------------------------------------------


def names(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {a["name"] for a in response.json()["results"]}


def test_list_filters(user, other_user, user_client, provider):
    make_agent(user, provider, name="Billing Helper", metadata={"tags": ["finance"]})
    make_agent(user, provider, name="Travel planner", visibility="public", metadata={"tags": []})
    make_agent(
        other_user,
        name="Their BILLING bot",
        visibility="public",
        metadata={"tags": ["finance", "bots"]},
    )
    make_agent(other_user, name="Their private billing")

    assert names(user_client.get(AGENTS)) == {
        "Billing Helper",
        "Travel planner",
        "Their BILLING bot",
    }
    assert names(user_client.get(AGENTS, {"search": "billing"})) == {
        "Billing Helper",
        "Their BILLING bot",
    }
    assert names(user_client.get(AGENTS, {"search": "PLANNER"})) == {"Travel planner"}
    assert names(user_client.get(AGENTS, {"tag": "finance"})) == {
        "Billing Helper",
        "Their BILLING bot",
    }
    assert names(user_client.get(AGENTS, {"tag": "bots"})) == {"Their BILLING bot"}
    assert names(user_client.get(AGENTS, {"tag": "nothing"})) == set()
    assert names(user_client.get(AGENTS, {"mine": "true"})) == {"Billing Helper", "Travel planner"}
    assert names(user_client.get(AGENTS, {"visibility": "public"})) == {
        "Travel planner",
        "Their BILLING bot",
    }
    assert names(user_client.get(AGENTS, {"visibility": "private"})) == {"Billing Helper"}
    assert names(
        user_client.get(AGENTS, {"mine": "true", "visibility": "public", "search": "travel"})
    ) == {"Travel planner"}


def test_search_matches_the_description_too(user, user_client, provider):
    make_agent(user, provider, name="Plain", description="Handles REFUNDS")
    assert names(user_client.get(AGENTS, {"search": "refunds"})) == {"Plain"}


def test_invalid_list_filter_is_a_validation_error(user_client):
    body = assert_problem(
        user_client.get(AGENTS, {"visibility": "secret"}), 400, "validation_error"
    )
    assert ("visibility", "invalid_choice") in field_errors(body)


def test_cursor_pagination_returns_every_agent_once(user, other_user, user_client, provider):
    created = {str(make_agent(user, provider, name=f"Agent {i}").pk) for i in range(7)}
    created.add(str(make_agent(other_user, name="Public one", visibility="public").pk))
    make_agent(other_user, name="Private one")

    seen: list[str] = []
    pages = 0
    next_url: str | None = f"{AGENTS}?page_size=2"
    while next_url:
        response = user_client.get(next_url)
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["results"]) <= 2
        seen.extend(a["id"] for a in body["results"])
        pages += 1
        assert pages <= 10
        next_url = body["next"]
        if next_url:
            parts = urlsplit(next_url)
            next_url = f"{parts.path}?{parts.query}"

    assert len(seen) == len(set(seen)) == 8
    assert set(seen) == created
    assert pages == 4


# --- API keys ------------------------------------------------------------------------------------


def key_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_read_only_api_key_can_list_but_not_create(user, provider):
    agent = make_agent(user, provider)
    _, secret = api_key_create(owner=user, name="reader", scopes=["read"])
    client = key_client(secret)

    listed = client.get(AGENTS)
    assert listed.status_code == 200
    assert [a["id"] for a in listed.json()["results"]] == [str(agent.pk)]
    assert client.get(url(agent.pk)).status_code == 200

    assert_problem(post_agent(client, provider), 403, "insufficient_scope")
    assert_problem(
        client.patch(url(agent.pk), {"name": "x"}, format="json"), 403, "insufficient_scope"
    )
    assert Agent.objects.count() == 1


def test_writing_api_key_can_create(user, provider):
    _, secret = api_key_create(owner=user, name="writer", scopes=["read", "write"])

    response = post_agent(key_client(secret), provider)

    assert response.status_code == 201, response.content
    assert response.json()["owner"] == str(user.pk)


# --- OpenAPI -------------------------------------------------------------------------------------


def test_openapi_document_describes_providers_and_agents():
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {
        "/api/v1/providers/",
        "/api/v1/providers/{id}/",
        "/api/v1/providers/{id}/models/",
        "/api/v1/agents/",
        "/api/v1/agents/{id}/",
        "/api/v1/agents/{id}/versions/",
        "/api/v1/agents/{id}/versions/{number}/restore/",
        "/api/v1/agents/{id}/runs/",
    } <= set(paths)
    assert {"get", "post"} <= set(paths["/api/v1/agents/"])
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/agents/{id}/"])
    assert {"get", "post"} <= set(paths["/api/v1/providers/"])
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/providers/{id}/"])


# --- bounds on client JSON -----------------------------------------------------------------------


def deep_schema(levels: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        (
            {"output_schema": {"type": "object", "properties": {f"p{i}": {} for i in range(300)}}},
            "output_schema.properties",
            "max_keys",
        ),
        ({"output_schema": deep_schema(20)}, "output_schema" + ".properties.x" * 16, "max_depth"),
        (
            {"output_schema": {"type": "string", "enum": ["a"] * 1001}},
            "output_schema.enum",
            "max_items",
        ),
        (
            {"output_schema": {"type": "string", "description": "d" * 8193}},
            "output_schema.description",
            "max_length",
        ),
        (
            {
                "output_schema": {
                    "type": "object",
                    "properties": {f"p{i}": {"description": "d" * 8000} for i in range(20)},
                }
            },
            "output_schema",
            "max_bytes",
        ),
        (
            {"guardrails": {"input": [{"type": "blocklist", "words": ["w"] * 1001}]}},
            "guardrails.input.0.words",
            "max_items",
        ),
        (
            {"tools": [{"tool": "00000000-0000-0000-0000-000000000000"}] * 129},
            "tools",
            "max_length",
        ),
        (
            {"handoffs": [{"agent": "00000000-0000-0000-0000-000000000000"}] * 26},
            "handoffs",
            "max_length",
        ),
        (
            {
                "handoffs": [
                    {
                        "agent": "00000000-0000-0000-0000-000000000000",
                        "tool_description": "d" * 4097,
                    }
                ]
            },
            "handoffs.0.tool_description",
            "max_length",
        ),
        ({"description": "d" * 4097}, "description", "max_length"),
    ],
)
def test_agent_json_out_of_bounds_is_400_naming_the_field(user_client, provider, body, field, code):
    response = post_agent(user_client, provider, **body)

    problem = assert_problem(response, 400, "validation_error")
    assert (field, code) in field_errors(problem)
    assert not Agent.objects.exists()


def test_a_large_but_bounded_output_schema_is_accepted(user_client, provider):
    schema = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string", "description": "d" * 200} for i in range(200)},
    }
    response = post_agent(user_client, provider, output_schema=schema)
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("metadata", "field", "code"),
    [
        ({f"k{i}": 1 for i in range(33)}, "metadata", "max_keys"),
        ({f"k{i}": 1 for i in range(10_000)}, "metadata", "max_keys"),
        ({"k": {"a": {"b": {"c": 1}}}}, "metadata.k.a.b", "max_depth"),
        ({"k": "v" * 1025}, "metadata.k", "max_length"),
        ({"k": list(range(65))}, "metadata.k", "max_items"),
        ({"k" * 65: 1}, "metadata", "max_key_length"),
        (["a"], "metadata", "invalid"),
    ],
)
def test_run_metadata_out_of_bounds_is_400_and_starts_nothing(
    user, user_client, provider, metadata, field, code
):
    agent = make_agent(user, provider)

    response = user_client.post(
        url(agent.pk, "runs/"), {"input": "hi", "metadata": metadata}, format="json"
    )

    problem = assert_problem(response, 400, "validation_error")
    assert field_errors(problem) == {(field, code)}
    assert not AgentRun.objects.exists()


def test_run_metadata_within_bounds_is_stored(user, user_client, provider):
    agent = make_agent(user, provider)
    metadata = {"source": "crm", "ids": list(range(64)), "who": {"team": {"name": "ops"}}}
    response = user_client.post(
        url(agent.pk, "runs/"), {"input": "hi", "metadata": metadata}, format="json"
    )
    assert response.status_code == 202, response.content
    assert AgentRun.objects.get().metadata == metadata


@pytest.mark.parametrize(
    ("decisions", "field"),
    [
        ([{"call_id": f"call_{i}", "approved": True} for i in range(129)], "decisions"),
        ([{"call_id": "c" * 201, "approved": True}], "decisions.0.call_id"),
        ([{"call_id": "call_1", "approved": False, "message": "m" * 4097}], "decisions.0.message"),
    ],
)
def test_approval_decisions_out_of_bounds_are_400(user, user_client, provider, decisions, field):
    from agentdeck.agents.services.runs import agent_run_start

    run, _ = agent_run_start(user=user, agent=make_agent(user, provider), input="hi")

    response = user_client.post(
        f"/api/v1/runs/{run.pk}/approvals/", {"decisions": decisions}, format="json"
    )

    problem = assert_problem(response, 400, "validation_error")
    assert [e["field"] for e in problem["errors"]] == [field]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"search": "s" * 201}, "search"),
        ({"tag": "t" * 51}, "tag"),
    ],
)
def test_list_filters_out_of_bounds_are_400(user_client, query, field):
    problem = assert_problem(user_client.get(AGENTS, query), 400, "validation_error")
    assert [e["field"] for e in problem["errors"]] == [field]


def test_a_repeated_list_filter_uses_one_value(user, user_client, provider):
    make_agent(user, provider, name="tagged", metadata={"tags": ["b"]})
    response = user_client.get(AGENTS + "?" + "&".join(["tag=a"] * 500 + ["tag=b"]))
    assert response.status_code == 200, response.content
    assert [a["name"] for a in response.json()["results"]] == ["tagged"]


def test_services_bound_agent_json_for_callers_other_than_the_api(user, provider):
    from agentdeck.core.exceptions import ApplicationError

    with pytest.raises(ApplicationError) as caught:
        make_agent(user, provider, output_schema=deep_schema(40))
    assert caught.value.code == "invalid_output_schema"
    with pytest.raises(ApplicationError) as caught:
        make_agent(
            user,
            provider,
            guardrails={"input": [{"type": "blocklist", "words": ["w"] * 5000}]},
        )
    assert caught.value.code == "invalid_guardrails"
    assert not Agent.objects.exists()
