"""A provider that echoes the credentials it was sent (tests/support/openai_server.py with
``echo_credentials``) must not get them to anyone: not into a run's error or events, its spans,
the model listing's problem+json, nor a file's embedding error. The log keeps the provider's
words with the secrets redacted."""

from __future__ import annotations

import json
import logging

import pytest

from agentdeck.agents.models import AgentRun, RunEvent
from agentdeck.agents.services.agents import agent_create
from agentdeck.agents.services.providers import provider_create
from agentdeck.agents.services.runs import agent_run_start
from agentdeck.agents.tasks import execute_run
from agentdeck.analytics.models import RunSpan
from agentdeck.core.redaction import REDACTED
from tests.support.openai_server import FakeOpenAI

pytestmark = pytest.mark.django_db

# Shaped like no known credential, so only the provider's own values can redact them.
API_KEY = "k3y-UNSHAPED-7f9c2a61d4e8"
HEADER_VALUE = "tenant-5e8a1b9c0d"
SECRETS = (API_KEY, HEADER_VALUE)


@pytest.fixture
def server():
    with FakeOpenAI(echo_credentials=True) as fake:
        yield fake


@pytest.fixture(params=["openai_compatible", "openai"])
def provider(request, user, server):
    return provider_create(
        actor=user,
        name=f"echoing-{request.param}",
        kind=request.param,
        base_url=server.base_url,
        api_key=API_KEY,
        extra_headers={"X-Tenant-Key": HEADER_VALUE},
    )


@pytest.fixture(autouse=True)
def _no_retries(settings):
    settings.PROVIDER_MAX_RETRIES = 0


@pytest.fixture
def _spans_recorded(settings):
    # tests/agents/conftest.py turns tracing off; these runs' spans are stored at home (the
    # SDK's exporter is replaced: OPENAI_TRACING_EXPORT is off).
    from agents import set_tracing_disabled

    settings.OPENAI_TRACING_EXPORT = False
    set_tracing_disabled(False)
    yield
    set_tracing_disabled(True)


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {where}: {text[:2000]}"


def assert_logged_redacted(caplog, upstream_words: str) -> None:
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert upstream_words in logged, logged  # the provider's own text is kept for operators
    assert REDACTED in logged
    assert_no_secret(logged, "the log")


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, "provider_auth_failed"), (400, "provider_error"), (500, "provider_error")],
)
@pytest.mark.usefixtures("_spans_recorded")
def test_a_provider_echoing_the_key_leaks_it_nowhere_in_the_run(
    status, code, user, provider, server, client_for, caplog
):
    agent = agent_create(
        owner=user, name="Public helper", provider=provider, model="fake-model", instructions="x"
    )
    server.add_error(status=status, message="upstream says no")
    run, _ = agent_run_start(user=user, agent=agent, input="hello")
    with caplog.at_level(logging.WARNING):
        execute_run(str(run.id))
    run.refresh_from_db()

    assert (run.status, run.error_code) == (AgentRun.Status.FAILED, code)
    # What the provider said was sent (so the echo happened) ...
    assert any(API_KEY in (r.headers.get("authorization") or "") for r in server.requests)
    # ... and reaches no one: the run, its events, its spans, the API.
    assert "upstream says no" not in run.error_message
    assert f"HTTP {status}" in run.error_message
    assert_no_secret(run.error_message, "run.error_message")
    events = list(RunEvent.objects.filter(run=run).values_list("data", flat=True))
    assert events
    assert_no_secret(json.dumps(events), "the run's events")
    spans = list(RunSpan.objects.filter(run=run).values("error", "data"))
    assert any(span["error"] for span in spans)
    assert_no_secret(json.dumps(spans, default=str), "the run's spans")
    client = client_for(user)
    for url in (f"/api/v1/runs/{run.id}/", f"/api/v1/runs/{run.id}/events/"):
        response = client.get(url)
        assert response.status_code == 200
        assert_no_secret(response.content.decode(), url)
    assert_logged_redacted(caplog, "upstream says no")


@pytest.mark.usefixtures("_spans_recorded")
def test_a_span_error_keeps_the_provider_words_without_the_key(user, provider, server):
    agent = agent_create(
        owner=user, name="Helper", provider=provider, model="fake-model", instructions="x"
    )
    server.add_error(status=401, message="upstream says no")
    run, _ = agent_run_start(user=user, agent=agent, input="hello")
    execute_run(str(run.id))

    errors = json.dumps([s.error for s in RunSpan.objects.filter(run=run) if s.error])
    assert "upstream says no" in errors  # staff still see what went wrong in the admin
    assert REDACTED in errors
    assert_no_secret(errors, "span errors")


@pytest.mark.parametrize(
    ("status", "code"), [(401, "provider_auth_failed"), (500, "provider_error")]
)
def test_listing_models_of_an_echoing_provider_shows_no_secret(
    status, code, user, provider, server, client_for, caplog
):
    server.models_failures.extend([status] * 3)  # listing retries once
    with caplog.at_level(logging.WARNING):
        response = client_for(user).get(f"/api/v1/providers/{provider.pk}/models/")

    assert response.status_code == 502
    assert response.json()["code"] == code
    assert_no_secret(response.content.decode(), "the problem+json")
    assert "listing failed" not in response.json()["detail"]
    assert_logged_redacted(caplog, "listing failed")


@pytest.mark.parametrize(
    ("status", "code"), [(401, "provider_auth_failed"), (500, "provider_error")]
)
def test_an_embedding_failure_keeps_the_key_out_of_the_files_error(
    status, code, user, server, client_for, settings, tmp_path, caplog
):
    from agentdeck.files import services as files
    from agentdeck.files.models import VectorIndexFile
    from agentdeck.files.processing import file_process

    settings.MEDIA_ROOT = tmp_path / "media"
    provider = provider_create(
        actor=user,
        name="echoing-embedder",
        kind="openai_compatible",
        base_url=server.base_url,
        api_key=API_KEY,
        extra_headers={"X-Tenant-Key": HEADER_VALUE},
    )
    index = files.vector_index_create(
        owner=user,
        name="remote",
        embedder="openai_compatible",
        embedding_model="embed-small",
        dimensions=384,
        provider=provider,
    )
    file, _ = files.file_upload(
        owner=user, name="a.txt", data=b"Otters hold hands.", vector_indices=[index]
    )
    server.embedding_failures.extend([status] * 5)
    with caplog.at_level(logging.WARNING):
        file_process(file_id=file.pk)
        # A search embeds its query through the same endpoint: its 502 is clean too.
        search = client_for(user).post(
            f"/api/v1/vector-indices/{index.pk}/search/", {"query": "otters"}, format="json"
        )

    attachment = VectorIndexFile.objects.get(index=index, file=file)
    assert (attachment.status, attachment.error_code) == ("failed", code)
    assert_no_secret(attachment.error_message, "the attachment's error")
    assert "embedding failed" not in attachment.error_message
    listed = client_for(user).get(f"/api/v1/vector-indices/{index.pk}/files/")
    assert_no_secret(listed.content.decode(), "the index's files")
    assert search.status_code == 502, search.content
    assert_no_secret(search.content.decode(), "the search problem+json")
    assert_logged_redacted(caplog, "embedding failed")


def test_a_failure_that_is_not_the_providers_answer_is_logged_without_its_secrets(provider, caplog):
    from agentdeck.agents.runtime.errors import provider_call_failure

    error = OSError(f"could not send X-Tenant-Key: {HEADER_VALUE} with {API_KEY}")
    with caplog.at_level(logging.WARNING):
        code, message = provider_call_failure(
            error, provider=provider, context="listing models", codes=["provider_auth_failed"]
        )

    assert code == "provider_error"
    assert_no_secret(message, "the message")
    assert_logged_redacted(caplog, "could not send X-Tenant-Key")
