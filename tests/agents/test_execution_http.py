"""Runs through the real HTTP code path: the openai client and the SDK's model classes talking to
a local OpenAI-compatible server (tests/support/openai_server.py), for both provider kinds."""

from __future__ import annotations

import pytest

from agentdeck.agents.models import AgentRun, AgentVersion, RunEvent
from agentdeck.agents.services.agents import agent_create
from agentdeck.agents.services.providers import provider_create
from agentdeck.agents.services.runs import agent_run_start
from agentdeck.agents.tasks import execute_run
from tests.support.openai_server import FakeOpenAI

pytestmark = pytest.mark.django_db

API_KEY = "sk-test-0123456789"


@pytest.fixture
def server():
    with FakeOpenAI(require_api_key=API_KEY) as fake:
        yield fake


@pytest.fixture(params=["openai_compatible", "openai"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def make_agent(user, server, kind):
    def make(*, tools: list[str] = (), output_schema=None, api_key: str = API_KEY):
        provider = provider_create(
            actor=user,
            name=f"fake-{kind}-{api_key[-4:]}",
            kind=kind,
            base_url=server.base_url,
            api_key=api_key,
        )
        agent = agent_create(
            owner=user,
            name="Helper",
            provider=provider,
            model="fake-model",
            instructions="Use tools when asked.",
            output_schema=output_schema,
        )
        if tools:
            # Tool records arrive with the tools issue; a snapshot entry is what the builder reads.
            version = AgentVersion.objects.get(agent=agent, number=agent.current_version)
            version.snapshot = {
                **version.snapshot,
                "tools": [{"kind": "builtin", "name": t} for t in tools],
            }
            version.save()
        return agent

    return make


def run_once(user, agent, text="hello", **kwargs) -> AgentRun:
    run, _ = agent_run_start(user=user, agent=agent, input=text, **kwargs)
    execute_run(str(run.id))
    run.refresh_from_db()
    return run


def event_types(run) -> list[str]:
    return list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True))


def test_streamed_reply_with_usage(user, server, make_agent):
    server.add_text(
        "The quick brown fox",
        usage={"input_tokens": 12, "output_tokens": 4, "cached_tokens": 3, "reasoning_tokens": 1},
    )
    run = run_once(user, make_agent())

    assert run.status == "succeeded", run.error_message
    assert run.output == "The quick brown fox"
    assert run.usage["fake-model"] == {
        "requests": 1,
        "input_tokens": 12,
        "cached_input_tokens": 3,
        "output_tokens": 4,
        "reasoning_tokens": 1,
        "total_tokens": 16,
    }
    deltas = RunEvent.objects.filter(run=run, type="message.delta").values_list("data", flat=True)
    assert "".join(d["delta"] for d in deltas) == "The quick brown fox"
    request = server.model_requests()[0]
    assert request.api_key == API_KEY
    assert request.body["stream"] is True
    assert run.first_token_at is not None


def test_tool_call_then_answer_counts_both_requests(user, server, make_agent):
    call_id = server.add_tool_call("calculator", {"expression": "6 * 7"})
    server.add_text("It is 42.")
    run = run_once(user, make_agent(tools=["calculator"]), "what is six times seven?")

    assert run.status == "succeeded", run.error_message
    assert run.output == "It is 42."
    types = event_types(run)
    assert (
        types.index("tool_call.started")
        < types.index("tool_call.completed")
        < types.index("run.succeeded")
    )
    completed = RunEvent.objects.get(run=run, type="tool_call.completed")
    assert completed.data["output"] == "42"
    assert completed.data["call_id"] == call_id
    assert run.usage["fake-model"]["requests"] == 2
    assert run.usage["fake-model"]["input_tokens"] == 20
    # The second request carried the tool's output back to the model.
    assert "42" in str(server.model_requests()[1].body)
    assert "calculator" in str(server.model_requests()[0].body)


def test_a_500_is_retried_and_the_run_succeeds(user, server, make_agent):
    server.add_error(status=500, headers={"retry-after-ms": "10"})
    server.add_text("recovered")
    run = run_once(user, make_agent())
    assert run.status == "succeeded", run.error_message
    assert run.output == "recovered"
    assert len(server.model_requests()) == 2


def test_persistent_5xx_fails_with_provider_error(user, server, make_agent, settings):
    settings.PROVIDER_MAX_RETRIES = 1
    for _ in range(2):
        server.add_error(status=503, message="overloaded", headers={"retry-after-ms": "10"})
    run = run_once(user, make_agent())
    assert (run.status, run.error_code) == ("failed", "provider_error")
    # The provider's words ("overloaded") stay in the log: users get the code's message.
    assert run.error_message == (
        "The model provider answered with an error, or could not be reached, after retries. "
        "(HTTP 503)"
    )
    assert event_types(run)[-1] == "run.failed"


def test_timeout_fails_with_provider_timeout(user, server, make_agent, settings):
    settings.PROVIDER_TIMEOUT_SECONDS = 0.5
    settings.PROVIDER_MAX_RETRIES = 0
    server.add_delay(3)
    run = run_once(user, make_agent())
    assert (run.status, run.error_code) == ("failed", "provider_timeout")


def test_a_refused_key_fails_with_provider_auth_failed(user, server, make_agent):
    run = run_once(user, make_agent(api_key="sk-wrong-key-9999"))
    assert (run.status, run.error_code) == ("failed", "provider_auth_failed")


def test_a_model_the_provider_rejects_fails_with_model_rejected(user, server, make_agent):
    server.add_error(
        status=404, message="The model `fake-model` does not exist", code="model_not_found"
    )
    run = run_once(user, make_agent())
    assert (run.status, run.error_code) == ("failed", "model_rejected")


def test_output_not_matching_the_schema_fails_with_output_invalid(user, server, make_agent):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "number"}},
        "required": ["answer"],
    }
    server.add_text('{"answer": "not a number"}')
    run = run_once(user, make_agent(output_schema=schema))
    assert (run.status, run.error_code) == ("failed", "output_invalid")
    assert "answer" in run.error_message


def test_structured_output_is_stored_as_json(user, server, make_agent):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "number"}},
        "required": ["answer"],
    }
    server.add_text('{"answer": 42}')
    run = run_once(user, make_agent(output_schema=schema))
    assert run.status == "succeeded", run.error_message
    assert run.output == {"answer": 42}


def test_too_many_turns_fails_with_max_turns_exceeded(user, server, make_agent):
    for _ in range(3):
        server.add_tool_call("calculator", {"expression": "1+1"})
    run = run_once(user, make_agent(tools=["calculator"]), max_turns=2)
    assert (run.status, run.error_code) == ("failed", "max_turns_exceeded")
    # Failed runs still account for the tokens they used.
    assert run.usage["fake-model"]["requests"] == 2
