"""The providers API (/api/v1/providers/): secrets never leave the server, shared providers are
staff-made, a foreign provider is invisible, and the model list comes from the provider itself
(a local OpenAI-compatible stub stands in for the network)."""

from __future__ import annotations

import json

import pytest

from agentdeck.agents.models import Provider
from agentdeck.agents.services.agents import agent_create
from agentdeck.core.crypto import decrypt_secret
from tests.factories import ProviderFactory
from tests.support.openai_server import FakeOpenAI

pytestmark = pytest.mark.django_db

PROVIDERS = "/api/v1/providers/"
AGENTS = "/api/v1/agents/"
SECRET = "sk-live-0123456789abcdefSECRET"
HEADER_SECRET = "org-header-value-do-not-leak"


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


def detail_url(provider_id) -> str:
    return f"{PROVIDERS}{provider_id}/"


def models_url(provider_id) -> str:
    return f"{PROVIDERS}{provider_id}/models/"


def create_compatible(client, base_url: str, **extra):
    body = {
        "name": extra.pop("name", "local"),
        "kind": "openai_compatible",
        "base_url": base_url,
        **extra,
    }
    response = client.post(PROVIDERS, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


# --- secrets -------------------------------------------------------------------------------------


def test_created_provider_never_returns_its_key_and_stores_it_encrypted(user_client):
    response = user_client.post(
        PROVIDERS,
        {
            "name": "my vllm",
            "kind": "openai_compatible",
            "base_url": "http://127.0.0.1:8000/v1",
            "api_key": SECRET,
            "extra_headers": {"OpenAI-Organization": HEADER_SECRET},
            "default_model": "llama",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert SECRET not in response.content.decode()
    assert HEADER_SECRET not in response.content.decode()
    assert "api_key" not in body
    assert "api_key_encrypted" not in body
    assert body["has_api_key"] is True
    assert body["shared"] is False
    assert body["kind"] == "openai_compatible"
    assert body["base_url"] == "http://127.0.0.1:8000/v1"
    assert body["default_model"] == "llama"
    assert body["extra_headers"] == {"OpenAI-Organization": "********"}

    stored = Provider.objects.get(pk=body["id"])
    assert stored.api_key_encrypted
    assert stored.api_key_encrypted != SECRET
    assert SECRET not in stored.api_key_encrypted
    assert decrypt_secret(stored.api_key_encrypted) == SECRET
    assert stored.extra_headers == {"OpenAI-Organization": HEADER_SECRET}

    for page in (user_client.get(PROVIDERS), user_client.get(detail_url(body["id"]))):
        assert page.status_code == 200
        text = json.dumps(page.json())
        assert SECRET not in text
        assert HEADER_SECRET not in text
    listed = user_client.get(PROVIDERS).json()["results"]
    assert [(p["id"], p["has_api_key"]) for p in listed] == [(body["id"], True)]
    assert listed[0]["extra_headers"] == {"OpenAI-Organization": "********"}


def test_provider_without_a_key_says_so(user_client):
    response = user_client.post(PROVIDERS, {"name": "offline", "kind": "mock"}, format="json")

    assert response.status_code == 201
    assert response.json()["has_api_key"] is False
    assert response.json()["extra_headers"] == {}
    assert Provider.objects.get(pk=response.json()["id"]).api_key_encrypted == ""


# --- validation ----------------------------------------------------------------------------------


def test_unknown_kind_is_a_field_error(user_client):
    response = user_client.post(PROVIDERS, {"name": "x", "kind": "skynet"}, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert ("kind", "invalid_choice") in field_errors(body)
    assert not Provider.objects.exists()


def test_openai_compatible_needs_a_base_url(user_client):
    response = user_client.post(
        PROVIDERS, {"name": "x", "kind": "openai_compatible", "api_key": SECRET}, format="json"
    )

    body = assert_problem(response, 400, "validation_error")
    assert ("base_url", "required") in field_errors(body)
    assert SECRET not in response.content.decode()
    assert not Provider.objects.exists()


def test_malformed_base_url_is_a_field_error(user_client):
    response = user_client.post(
        PROVIDERS,
        {"name": "x", "kind": "openai_compatible", "base_url": "not a url"},
        format="json",
    )

    body = assert_problem(response, 400, "validation_error")
    assert ("base_url", "invalid") in field_errors(body)


def test_missing_name_and_kind_are_field_errors(user_client):
    body = assert_problem(user_client.post(PROVIDERS, {}, format="json"), 400, "validation_error")
    assert {("name", "required"), ("kind", "required")} <= field_errors(body)


def test_duplicate_provider_name_is_a_conflict_not_a_500(user_client):
    assert (
        user_client.post(PROVIDERS, {"name": "dup", "kind": "mock"}, format="json").status_code
        == 201
    )

    response = user_client.post(PROVIDERS, {"name": "dup", "kind": "mock"}, format="json")

    assert_problem(response, 409, "provider_name_taken")
    assert Provider.objects.filter(name="dup").count() == 1


def test_two_users_may_use_the_same_provider_name(user, other_user, client_for):
    for who in (user, other_user):
        response = client_for(who).post(PROVIDERS, {"name": "mine", "kind": "mock"}, format="json")
        assert response.status_code == 201, response.content
    assert Provider.objects.filter(name="mine").count() == 2


def test_renaming_onto_an_existing_name_is_a_conflict(user, user_client):
    ProviderFactory(owner=user, name="taken")
    other = ProviderFactory(owner=user, name="free")

    response = user_client.patch(detail_url(other.pk), {"name": "taken"}, format="json")

    assert_problem(response, 409, "provider_name_taken")
    other.refresh_from_db()
    assert other.name == "free"


def test_unauthenticated_callers_get_401(api_client):
    assert_problem(api_client.get(PROVIDERS), 401, "not_authenticated")


# --- shared providers and visibility -------------------------------------------------------------


def test_non_staff_cannot_create_a_shared_provider(user_client):
    response = user_client.post(
        PROVIDERS, {"name": "for all", "kind": "mock", "shared": True}, format="json"
    )

    assert_problem(response, 403, "staff_only")
    assert not Provider.objects.exists()


def test_staff_create_shared_providers_everyone_sees(staff_user, user, client_for):
    response = client_for(staff_user).post(
        PROVIDERS, {"name": "house", "kind": "mock", "shared": True}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["shared"] is True
    assert Provider.objects.get(pk=body["id"]).owner_id is None
    mine = client_for(user)
    assert [p["id"] for p in mine.get(PROVIDERS).json()["results"]] == [body["id"]]
    assert mine.get(detail_url(body["id"])).json()["shared"] is True


def test_shared_provider_names_are_unique(staff_user, client_for):
    staff = client_for(staff_user)
    body = {"name": "house", "kind": "mock", "shared": True}
    assert staff.post(PROVIDERS, body, format="json").status_code == 201

    assert_problem(staff.post(PROVIDERS, body, format="json"), 409, "provider_name_taken")
    # A staff member's own provider may share a shared one's name.
    assert staff.post(PROVIDERS, {**body, "shared": False}, format="json").status_code == 201


def test_users_see_shared_and_their_own_providers_never_anothers(
    user, other_user, staff_user, client_for
):
    shared = ProviderFactory(owner=None, name="shared")
    mine = ProviderFactory(owner=user, name="mine")
    theirs = ProviderFactory(owner=other_user, name="theirs")
    me = client_for(user)

    listed = {p["id"] for p in me.get(PROVIDERS).json()["results"]}

    assert listed == {str(shared.pk), str(mine.pk)}
    assert me.get(detail_url(mine.pk)).status_code == 200
    assert me.get(detail_url(shared.pk)).status_code == 200
    for response in (
        me.get(detail_url(theirs.pk)),
        me.patch(detail_url(theirs.pk), {"name": "stolen"}, format="json"),
        me.delete(detail_url(theirs.pk)),
        me.get(models_url(theirs.pk)),
    ):
        assert_problem(response, 404, "not_found")
    theirs.refresh_from_db()
    assert theirs.name == "theirs"

    staff_sees = {p["id"] for p in client_for(staff_user).get(PROVIDERS).json()["results"]}
    assert staff_sees == {str(shared.pk), str(mine.pk), str(theirs.pk)}


def test_non_staff_cannot_change_or_delete_a_shared_provider(user_client):
    shared = ProviderFactory(owner=None, name="house")

    assert_problem(
        user_client.patch(detail_url(shared.pk), {"name": "mine now"}, format="json"),
        403,
        "staff_only",
    )
    assert_problem(user_client.delete(detail_url(shared.pk)), 403, "staff_only")
    shared.refresh_from_db()
    assert shared.name == "house"


def test_staff_can_change_a_shared_provider(staff_user, client_for):
    shared = ProviderFactory(owner=None, name="house")

    response = client_for(staff_user).patch(
        detail_url(shared.pk), {"enabled": False}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["enabled"] is False
    assert response.json()["shared"] is True


def test_shared_flag_cannot_be_flipped_by_patch(user, user_client):
    provider = ProviderFactory(owner=user)

    response = user_client.patch(detail_url(provider.pk), {"shared": True}, format="json")

    assert response.status_code == 200
    assert response.json()["shared"] is False
    provider.refresh_from_db()
    assert provider.owner_id == user.pk


# --- changing the key ----------------------------------------------------------------------------


def test_patch_keeps_replaces_and_removes_the_key(user, user_client):
    created = create_compatible(user_client, "http://127.0.0.1:8000/v1", api_key=SECRET)
    url = detail_url(created["id"])

    kept = user_client.patch(url, {"default_model": "m2"}, format="json")
    assert kept.status_code == 200, kept.content
    assert kept.json()["has_api_key"] is True
    assert kept.json()["default_model"] == "m2"
    assert decrypt_secret(Provider.objects.get(pk=created["id"]).api_key_encrypted) == SECRET

    replaced = user_client.patch(url, {"api_key": "sk-new-key-987654"}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["has_api_key"] is True
    assert "sk-new-key-987654" not in replaced.content.decode()
    stored = Provider.objects.get(pk=created["id"])
    assert decrypt_secret(stored.api_key_encrypted) == "sk-new-key-987654"

    removed = user_client.patch(url, {"api_key": ""}, format="json")
    assert removed.status_code == 200
    assert removed.json()["has_api_key"] is False
    assert Provider.objects.get(pk=created["id"]).api_key_encrypted == ""


def test_patch_validates_against_the_stored_kind(user, user_client):
    created = create_compatible(user_client, "http://127.0.0.1:8000/v1")

    response = user_client.patch(detail_url(created["id"]), {"base_url": ""}, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert ("base_url", "required") in field_errors(body)
    assert Provider.objects.get(pk=created["id"]).base_url == "http://127.0.0.1:8000/v1"


def test_changing_the_base_url_forgets_the_cached_model_list(user, user_client):
    provider = ProviderFactory(
        owner=user,
        kind=Provider.Kind.OPENAI_COMPATIBLE,
        base_url="http://127.0.0.1:8000/v1",
        models_cache=["old-model"],
    )

    response = user_client.patch(
        detail_url(provider.pk), {"base_url": "http://127.0.0.1:9000/v1"}, format="json"
    )

    assert response.status_code == 200
    provider.refresh_from_db()
    assert provider.models_cache == []
    assert provider.models_cached_at is None


# --- deleting ------------------------------------------------------------------------------------


def test_deleting_a_provider_an_agent_uses_is_refused(user, user_client):
    provider = ProviderFactory(owner=user)
    agent_create(owner=user, name="uses it", provider=provider, model="mock-echo")

    assert_problem(user_client.delete(detail_url(provider.pk)), 409, "provider_in_use")
    assert Provider.objects.filter(pk=provider.pk).exists()


def test_deleting_an_unused_provider(user, user_client):
    provider = ProviderFactory(owner=user)

    response = user_client.delete(detail_url(provider.pk))

    assert response.status_code == 204
    assert not Provider.objects.filter(pk=provider.pk).exists()
    assert_problem(user_client.get(detail_url(provider.pk)), 404, "not_found")


# --- listing models ------------------------------------------------------------------------------


def test_mock_provider_lists_its_models(user, user_client):
    provider = ProviderFactory(owner=user)

    response = user_client.get(models_url(provider.pk))

    assert response.status_code == 200
    assert response.json() == {"models": ["mock-echo"], "listable": True}


def test_shared_provider_models_are_listable_by_users(user_client):
    shared = ProviderFactory(owner=None)
    assert user_client.get(models_url(shared.pk)).json()["models"] == ["mock-echo"]


@pytest.fixture
def fake_openai():
    with FakeOpenAI(models=["zeta-large", "alpha-small"], require_api_key=SECRET) as server:
        yield server


def test_openai_compatible_provider_lists_the_servers_models(user_client, fake_openai):
    created = create_compatible(
        user_client,
        fake_openai.base_url,
        api_key=SECRET,
        extra_headers={"X-Tenant": HEADER_SECRET},
    )

    response = user_client.get(models_url(created["id"]))

    assert response.status_code == 200, response.content
    assert response.json() == {"models": ["alpha-small", "zeta-large"], "listable": True}
    # The real HTTP path ran: our key and extra headers reached the server.
    listing = [r for r in fake_openai.requests if r.path.startswith("/v1/models")]
    assert listing
    assert listing[-1].headers["authorization"] == f"Bearer {SECRET}"
    assert listing[-1].headers["x-tenant"] == HEADER_SECRET
    stored = Provider.objects.get(pk=created["id"])
    assert stored.models_cache == ["alpha-small", "zeta-large"]
    assert stored.models_cached_at is not None


def test_after_listing_an_agent_must_use_an_offered_model(user_client, fake_openai):
    created = create_compatible(user_client, fake_openai.base_url, api_key=SECRET)
    assert user_client.get(models_url(created["id"])).status_code == 200

    refused = user_client.post(
        AGENTS,
        {"name": "a", "provider": created["id"], "model": "gpt-9"},
        format="json",
    )
    body = assert_problem(refused, 400, "model_not_available")
    assert body["available_models"] == ["alpha-small", "zeta-large"]

    accepted = user_client.post(
        AGENTS,
        {"name": "a", "provider": created["id"], "model": "zeta-large"},
        format="json",
    )
    assert accepted.status_code == 201, accepted.content
    assert accepted.json()["model"] == "zeta-large"


def test_a_refused_key_is_provider_auth_failed(user, user_client, fake_openai):
    created = create_compatible(user_client, fake_openai.base_url, api_key="sk-wrong-key-000")

    response = user_client.get(models_url(created["id"]))

    body = assert_problem(response, 502, "provider_auth_failed")
    assert "sk-wrong-key-000" not in response.content.decode()
    assert body["instance"] == models_url(created["id"])
    assert Provider.objects.get(pk=created["id"]).models_cache == []


def test_a_provider_without_a_key_against_a_server_that_needs_one(user_client, fake_openai):
    created = create_compatible(user_client, fake_openai.base_url)

    assert_problem(user_client.get(models_url(created["id"])), 502, "provider_auth_failed")


def test_an_unreachable_provider_is_provider_error(user_client):
    created = create_compatible(user_client, "http://127.0.0.1:1/v1", api_key=SECRET)

    response = user_client.get(models_url(created["id"]))

    assert_problem(response, 502, "provider_error")
    assert SECRET not in response.content.decode()


def test_litellm_provider_cannot_list_its_models(user_client):
    response = user_client.post(PROVIDERS, {"name": "router", "kind": "litellm"}, format="json")
    assert response.status_code == 201

    listed = user_client.get(models_url(response.json()["id"]))

    assert listed.status_code == 200
    assert listed.json() == {"models": [], "listable": False}


# --- credentials that cannot be sent -------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"api_key": "sk-ключ-0123"}, "api_key"),
        ({"api_key": "sk-with space"}, "api_key"),
        ({"api_key": "sk-line\nbreak"}, "api_key"),
        ({"api_key": "k" * 4097}, "api_key"),
        ({"extra_headers": {"X-Tenant": "café"}}, "extra_headers.X-Tenant"),
        ({"extra_headers": {"X-Tenant": "a\r\nX-Injected: 1"}}, "extra_headers.X-Tenant"),
        ({"extra_headers": {"X-Tenant": "tab\x07bell"}}, "extra_headers.X-Tenant"),
        ({"extra_headers": {"Content-Length": "10"}}, "extra_headers.Content-Length"),
        ({"extra_headers": {"bad name": "v"}}, "extra_headers"),
        ({"extra_headers": {"X-Ünicode": "v"}}, "extra_headers"),
        ({"extra_headers": {f"X-{i}": "v" for i in range(33)}}, "extra_headers"),
        ({"extra_headers": {"X-Tenant": "v" * 4097}}, "extra_headers.X-Tenant"),
    ],
)
def test_credentials_that_cannot_be_sent_are_refused_naming_the_field(user_client, extra, field):
    body = {"name": "p", "kind": "openai_compatible", "base_url": "http://127.0.0.1:1/v1"}

    created = user_client.post(PROVIDERS, {**body, **extra}, format="json")
    existing = create_compatible(user_client, "http://127.0.0.1:1/v1", name="ok")
    patched = user_client.patch(detail_url(existing["id"]), extra, format="json")

    for response in (created, patched):
        problem = assert_problem(response, 400, "validation_error")
        assert [e["field"] for e in problem["errors"]] == [field]
        assert "ключ" not in response.content.decode()
    assert list(Provider.objects.values_list("name", flat=True)) == ["ok"]
    assert Provider.objects.get().extra_headers == {}


def test_credentials_that_can_be_sent_are_stored(user_client):
    created = create_compatible(
        user_client,
        "http://127.0.0.1:1/v1",
        api_key="sk-proj_A1.b2~c3+/=",
        extra_headers={"X-Tenant": "acme corp\t(eu)", "OpenAI-Organization": "", "x-b": "!~"},
    )
    stored = Provider.objects.get(pk=created["id"])
    assert decrypt_secret(stored.api_key_encrypted) == "sk-proj_A1.b2~c3+/="
    assert stored.extra_headers["X-Tenant"] == "acme corp\t(eu)"


@pytest.fixture
def unsendable_provider(user):
    """A provider row written before the API refused such values (or by other means)."""

    def make(*, api_key: str = "", extra_headers: dict | None = None) -> Provider:
        return ProviderFactory(
            owner=user,
            name="legacy",
            kind=Provider.Kind.OPENAI_COMPATIBLE,
            base_url="http://127.0.0.1:1/v1",
            api_key=api_key,
            extra_headers=extra_headers or {},
        )

    return make


STORED_UNSENDABLE = [
    {"api_key": "sk-ключ-stored"},
    {"extra_headers": {"X-Tenant": "café-stored"}},
    {"extra_headers": {"bad name": "v"}},
    {"extra_headers": {"X-Tenant": "a\r\nb"}},
]


@pytest.mark.parametrize("stored", STORED_UNSENDABLE)
def test_listing_models_of_a_stored_unsendable_provider_is_a_clear_4xx(
    user_client, unsendable_provider, stored
):
    provider = unsendable_provider(**stored)

    response = user_client.get(models_url(provider.pk))

    body = assert_problem(response, 409, "provider_unavailable")
    assert "Set" in body["detail"]
    assert "stored" not in response.content.decode()  # the values themselves are not echoed


@pytest.mark.parametrize("stored", STORED_UNSENDABLE)
def test_a_run_on_a_stored_unsendable_provider_fails_provider_unavailable(
    user, unsendable_provider, stored
):
    from agentdeck.agents.models import AgentRun
    from agentdeck.agents.services.runs import agent_run_start
    from agentdeck.agents.tasks import execute_run

    provider = unsendable_provider(**stored)
    agent = agent_create(owner=user, name="legacy agent", provider=provider, model="any-model")
    run, _ = agent_run_start(user=user, agent=agent, input="hello")

    assert execute_run(str(run.id)) == "failed"

    run = AgentRun.objects.get(pk=run.pk)
    assert run.error_code == "provider_unavailable"
    assert "stored" not in run.error_message
