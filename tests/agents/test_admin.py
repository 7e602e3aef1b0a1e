from __future__ import annotations

import pytest

from agentdeck.agents.models import Agent, AgentRun, Provider
from agentdeck.agents.services.providers import provider_create
from agentdeck.agents.services.runs import agent_run_start
from agentdeck.agents.tasks import execute_run
from agentdeck.core.crypto import decrypt_secret

pytestmark = pytest.mark.django_db

SECRET = "sk-live-abcdefghijklmnop1234"


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def test_agent_list_shows_runs_in_the_last_day_and_actions_work(staff_client, user, mock_agent):
    for text in ("a", "b"):
        agent_run_start(user=user, agent=mock_agent, input=text)
    page = staff_client.get("/admin/agents/agent/")
    assert page.status_code == 200
    assert b"Echo" in page.content

    response = staff_client.post(
        "/admin/agents/agent/",
        {"action": "suspend", "_selected_action": [str(mock_agent.pk)]},
        follow=True,
    )
    assert b"Suspended 1 agent(s)." in response.content
    assert Agent.objects.get(pk=mock_agent.pk).status == "suspended"
    staff_client.post(
        "/admin/agents/agent/", {"action": "activate", "_selected_action": [str(mock_agent.pk)]}
    )
    assert Agent.objects.get(pk=mock_agent.pk).status == "active"


def test_run_page_is_read_only_with_the_transcript_in_order(staff_client, user, mock_agent):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="show me")
    execute_run(str(run.id))
    page = staff_client.get(f"/admin/agents/agentrun/{run.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index("run.started") < html.index("message.completed") < html.index("run.succeeded")
    assert 'name="_save"' not in html
    assert (
        staff_client.post(f"/admin/agents/agentrun/{run.id}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert staff_client.get("/admin/agents/agentrun/?status__exact=succeeded").status_code == 200


def test_admin_cancel_action_cancels_queued_runs(staff_client, user, mock_agent):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    response = staff_client.post(
        "/admin/agents/agentrun/",
        {"action": "cancel_runs", "_selected_action": [str(run.pk)]},
        follow=True,
    )
    assert b"Cancellation requested for 1 run(s)." in response.content
    assert AgentRun.objects.get(pk=run.pk).status == "cancelled"


def provider_form(user) -> dict:
    """The admin's provider change form, as a browser posts it unchanged."""
    return {
        "name": "mine",
        "owner": user.pk,
        "kind": "openai",
        "base_url": "",
        "default_model": "",
        "extra_headers": "{}",
        "enabled": "on",
    }


def test_provider_key_is_write_only_and_masked(staff_client, user):
    provider = provider_create(actor=user, name="mine", kind="openai", api_key=SECRET)
    page = staff_client.get(f"/admin/agents/provider/{provider.pk}/change/")
    assert page.status_code == 200
    assert SECRET.encode() not in page.content
    assert b"sk-\xe2\x80\xa61234" in page.content  # sk-…1234
    listing = staff_client.get("/admin/agents/provider/")
    assert SECRET.encode() not in listing.content

    # Saving without typing a key keeps it; typing one replaces it.
    form = provider_form(user)
    staff_client.post(f"/admin/agents/provider/{provider.pk}/change/", form)
    assert decrypt_secret(Provider.objects.get(pk=provider.pk).api_key_encrypted) == SECRET
    staff_client.post(
        f"/admin/agents/provider/{provider.pk}/change/", {**form, "api_key": "sk-new-key-5678"}
    )
    assert (
        decrypt_secret(Provider.objects.get(pk=provider.pk).api_key_encrypted) == "sk-new-key-5678"
    )


def test_provider_form_refuses_credentials_that_cannot_be_sent(staff_client, user):
    provider = provider_create(actor=user, name="mine", kind="openai", api_key=SECRET)
    form = provider_form(user)
    url = f"/admin/agents/provider/{provider.pk}/change/"

    bad_key = staff_client.post(url, {**form, "api_key": "sk-ключ"})
    bad_header = staff_client.post(url, {**form, "extra_headers": '{"X-Tenant": "caf\\u00e9"}'})

    for page in (bad_key, bad_header):
        assert page.status_code == 200  # the form again, with the error; not a 500
        assert b"visible ASCII" in page.content
    stored = Provider.objects.get(pk=provider.pk)
    assert decrypt_secret(stored.api_key_encrypted) == SECRET
    assert stored.extra_headers == {}


@pytest.mark.parametrize("owned", [True, False], ids=["for a user", "shared"])
def test_provider_added_in_the_admin_goes_through_the_service(staff_client, user, owned):
    form = {**provider_form(user), "api_key": SECRET}
    if not owned:
        form["owner"] = ""
    response = staff_client.post("/admin/agents/provider/add/", form)
    assert response.status_code == 302, response.content
    provider = Provider.objects.get(name="mine")
    assert provider.owner_id == (user.pk if owned else None)
    assert decrypt_secret(provider.api_key_encrypted) == SECRET
    assert response["Location"].endswith("/admin/agents/provider/")
