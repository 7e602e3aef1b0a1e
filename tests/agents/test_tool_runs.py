"""Tools, handoffs, agents as tools and approvals in real runs: the model is a local
OpenAI-compatible server, HTTP tools call a local test server, the worker entry point executes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.utils import timezone

from agentdeck.agents.models import AgentRun, RunEvent, ToolCall
from agentdeck.agents.services.agents import agent_create, agent_update
from agentdeck.agents.services.providers import provider_create
from agentdeck.agents.services.runs import agent_run_reap_stale, agent_run_start
from agentdeck.agents.services.tools import tool_create
from agentdeck.agents.tasks import execute_run
from tests.factories import ToolCallFactory, ToolFactory
from tests.support.openai_server import FakeOpenAI

pytestmark = pytest.mark.django_db


@pytest.fixture
def model():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def provider(user, model):
    return provider_create(
        actor=user, name="local", kind="openai_compatible", base_url=model.base_url
    )


@pytest.fixture
def make_agent(user, provider):
    def make(name: str, **kwargs):
        return agent_create(owner=user, name=name, provider=provider, model="fake-model", **kwargs)

    return make


class _Api(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_GET(self):
        type(self).seen.append({"path": self.path, "auth": self.headers.get("X-Api-Key")})
        body = json.dumps(
            {"order": self.path.split("?")[0].rsplit("/", 1)[-1], "status": "shipped"}
            if not self.path.startswith("/echo")
            # A careless API answering with the request it got, headers included.
            else {"you_sent": dict(self.headers.items())}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def orders_api(settings):
    settings.OUTBOUND_HTTP_ALLOWLIST = ["127.0.0.1"]
    _Api.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", _Api.seen
    server.shutdown()
    server.server_close()


def run(user, agent, text="go", **kwargs) -> AgentRun:
    r, _ = agent_run_start(user=user, agent=agent, input=text, **kwargs)
    execute_run(str(r.id))
    r.refresh_from_db()
    return r


def types(r) -> list[str]:
    return list(RunEvent.objects.filter(run=r).order_by("seq").values_list("type", flat=True))


def test_http_tool_call_reaches_the_endpoint_with_its_secret_header(
    user, model, make_agent, orders_api
):
    base, seen = orders_api
    tool = tool_create(
        owner=user,
        name="get_order",
        kind="http",
        description="Look up an order.",
        config={"method": "GET", "url_template": base + "/orders/{order_id}"},
        parameters_schema={
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "verbose": {"type": "boolean"}},
            "required": ["order_id"],
        },
        secret_headers={"X-Api-Key": "s3cret"},
    )
    agent = make_agent("Support", tools=[{"tool": tool}])
    model.add_tool_call("get_order", {"order_id": "A 17", "verbose": True})
    model.add_text("Your order shipped.")

    r = run(user, agent)

    assert r.status == "succeeded", r.error_message
    assert seen == [{"path": "/orders/A%2017?verbose=true", "auth": "s3cret"}]
    call = ToolCall.objects.get(run=r)
    assert (call.tool_id, call.tool_name, call.status) == (tool.id, "get_order", "succeeded")
    assert call.arguments == {"order_id": "A 17", "verbose": True}
    assert '"status": "shipped"' in call.output
    assert call.duration_ms is not None
    assert "shipped" in str(model.model_requests()[1].body)


def test_an_http_tool_whose_server_echoes_the_secret_header_does_not_leak_it(
    user, model, make_agent, orders_api
):
    base, seen = orders_api
    tool = tool_create(
        owner=user,
        name="echo",
        kind="http",
        config={"method": "GET", "url_template": base + "/echo"},
        secret_headers={"X-Api-Key": "s3cret-tool-header-9f2"},
    )
    agent = make_agent("Support", tools=[{"tool": tool}])
    model.add_tool_call("echo", {})
    model.add_text("done")

    r = run(user, agent)

    assert r.status == "succeeded", r.error_message
    assert seen[0]["auth"] == "s3cret-tool-header-9f2"  # the secret was sent, and echoed
    call = ToolCall.objects.get(run=r)
    assert "[REDACTED]" in call.output
    events = json.dumps(list(RunEvent.objects.filter(run=r).values_list("data", flat=True)))
    # Not in the tool call, not in the run's events, not even to the model.
    for text in (call.output, events, str(model.model_requests()[1].body)):
        assert "s3cret-tool-header-9f2" not in text


def order_tool(user, base: str):
    """An http tool that looks an order up by id on the local orders API."""
    return tool_create(
        owner=user,
        name="get_order",
        kind="http",
        config={"method": "GET", "url_template": base + "/orders/{order_id}"},
        parameters_schema={
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    )


def test_http_tool_arguments_are_validated_before_any_request(user, model, make_agent, orders_api):
    base, seen = orders_api
    tool = order_tool(user, base)
    agent = make_agent("Support", tools=[{"tool": tool}])
    model.add_tool_call("get_order", {"order_id": 17})
    model.add_text("Sorry.")

    r = run(user, agent)

    assert r.status == "succeeded"
    assert seen == []
    call = ToolCall.objects.get(run=r)
    assert call.status == "failed"
    assert "invalid arguments at order_id" in call.output
    assert "invalid arguments" in str(model.model_requests()[1].body)  # the model saw why


def test_http_request_to_a_private_address_is_a_tool_error_not_a_crash(
    user, model, make_agent, settings
):
    settings.OUTBOUND_HTTP_ALLOWLIST = []
    tool = tool_create(owner=user, name="fetch", kind="builtin", config={"builtin": "http_request"})
    agent = make_agent("Browser", tools=[{"tool": tool}])
    model.add_tool_call("fetch", {"url": "http://169.254.169.254/latest/meta-data/"})
    model.add_text("I cannot reach that.")

    r = run(user, agent)

    assert r.status == "succeeded"
    call = ToolCall.objects.get(run=r)
    assert call.status == "failed"
    assert call.output.startswith("error:")


def test_three_agent_handoff_chain(user, model, make_agent):
    billing = make_agent("Billing")
    triage2 = make_agent("Accounts", handoffs=[{"to_agent": billing}])
    front = make_agent(
        "Front desk", handoffs=[{"to_agent": triage2, "input_filter": "remove_tool_history"}]
    )
    model.add_tool_call("transfer_to_accounts", {})
    model.add_tool_call("transfer_to_billing", {})
    model.add_text("Billing here: refunded.")

    r = run(user, front, "I want a refund")

    assert r.status == "succeeded", r.error_message
    assert r.last_agent == "Billing"
    handoffs = RunEvent.objects.filter(run=r, type="handoff").order_by("seq")
    assert [(h.data["from_agent"], h.data["to_agent"]) for h in handoffs] == [
        ("Front desk", "Accounts"),
        ("Accounts", "Billing"),
    ]
    assert r.usage["fake-model"]["requests"] == 3


def test_an_agent_used_as_a_tool_counts_its_nested_usage(user, model, make_agent):
    expert = make_agent("Expert")
    tool = tool_create(
        owner=user, name="ask_expert", kind="agent", config={"agent_id": str(expert.id)}
    )
    lead = make_agent("Lead", tools=[{"tool": tool}])
    model.add_tool_call("ask_expert", {"input": "what is 6x7?"})
    model.add_text("42", usage={"input_tokens": 100, "output_tokens": 1})  # the expert's answer
    model.add_text("The expert says 42.")

    r = run(user, lead)

    assert r.status == "succeeded", r.error_message
    assert r.output == "The expert says 42."
    assert ToolCall.objects.get(run=r).output == "42"
    # Two requests of the lead and one of the nested expert run.
    assert r.usage["fake-model"]["requests"] == 3
    assert r.usage["fake-model"]["input_tokens"] == 120


def test_another_users_tool_cannot_be_attached(user, other_user, client_for, make_agent):
    theirs = ToolFactory(owner=other_user, name="calc")
    agent = make_agent("Mine")
    response = client_for(user).patch(
        f"/api/v1/agents/{agent.id}/", {"tools": [{"tool": str(theirs.id)}]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_tool"


# --- approvals -----------------------------------------------------------------------------------


@pytest.fixture
def guarded(user, make_agent):
    tool = ToolFactory(owner=user, name="calc")
    return make_agent("Careful", tools=[{"tool": tool, "requires_approval": True}])


def test_approved_call_resumes_from_the_stored_state(user, user_client, model, guarded):
    model.add_tool_call("calc", {"expression": "6*7"})
    model.add_text("It is 42.")
    r = run(user, guarded)

    assert r.status == "requires_action"
    assert r.resume_state
    [pending] = r.pending_approvals
    assert (pending["tool"], pending["arguments"]) == ("calc", {"expression": "6*7"})
    assert types(r)[-1] == "approval.required"
    assert ToolCall.objects.get(run=r).status == "pending_approval"
    assert (
        user_client.get(f"/api/v1/runs/{r.id}/").json()["pending_approvals"][0]["call_id"]
        == pending["call_id"]
    )

    response = user_client.post(
        f"/api/v1/runs/{r.id}/approvals/",
        {"decisions": [{"call_id": pending["call_id"], "approved": True}]},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["status"] == "queued"

    assert execute_run(str(r.id)) == "succeeded"  # a worker picks it up again
    r.refresh_from_db()
    assert r.output == "It is 42."
    assert r.resume_state == ""
    assert ToolCall.objects.get(run=r).output == "42"
    t = types(r)
    assert t.index("approval.required") < t.index("approval.resolved") < t.index("run.resumed")
    assert t[-1] == "run.succeeded"
    assert r.usage["fake-model"]["requests"] == 2  # tokens from before the pause count too


def test_rejected_call_tells_the_model_why(user, user_client, model, guarded):
    model.add_tool_call("calc", {"expression": "1/0"})
    model.add_text("Understood, I will not.")
    r = run(user, guarded)
    call_id = r.pending_approvals[0]["call_id"]

    user_client.post(
        f"/api/v1/runs/{r.id}/approvals/",
        {"decisions": [{"call_id": call_id, "approved": False, "message": "Not allowed today."}]},
        format="json",
    )
    assert execute_run(str(r.id)) == "succeeded"
    assert "Not allowed today." in str(model.model_requests()[1].body)
    assert ToolCall.objects.get(run=r).status == "rejected"


def test_unanswered_approvals_expire(user, model, guarded):
    model.add_tool_call("calc", {"expression": "2+2"})
    r = run(user, guarded)
    AgentRun.objects.filter(pk=r.pk).update(approval_deadline=timezone.now() - timedelta(seconds=1))

    assert agent_run_reap_stale() == [str(r.id)]
    r.refresh_from_db()
    assert (r.status, r.error_code) == ("failed", "approval_timeout")
    assert ToolCall.objects.get(run=r).status == "expired"


def test_approvals_are_refused_when_nothing_waits_or_the_id_is_wrong(
    user, user_client, model, guarded
):
    model.add_tool_call("calc", {"expression": "2+2"})
    r = run(user, guarded)
    wrong = user_client.post(
        f"/api/v1/runs/{r.id}/approvals/",
        {"decisions": [{"call_id": "nope", "approved": True}]},
        format="json",
    )
    assert (wrong.status_code, wrong.json()["code"]) == (400, "invalid_call_id")
    AgentRun.objects.filter(pk=r.pk).update(status="failed")
    late = user_client.post(
        f"/api/v1/runs/{r.id}/approvals/",
        {"decisions": [{"call_id": r.pending_approvals[0]["call_id"], "approved": True}]},
        format="json",
    )
    assert (late.status_code, late.json()["code"]) == (409, "run_not_waiting")


def test_tool_calls_endpoint_lists_the_runs_calls(user, user_client, model, make_agent):
    tool = ToolFactory(owner=user, name="calc")
    agent = make_agent("Maths", tools=[{"tool": tool}])
    model.add_tool_call("calc", {"expression": "2**10"})
    model.add_text("1024")
    r = run(user, agent)
    calls = user_client.get(f"/api/v1/runs/{r.id}/tool-calls/").json()
    assert [(c["tool_name"], c["output"], c["status"]) for c in calls] == [
        ("calc", "1024", "succeeded")
    ]


def test_changing_tools_makes_a_new_version_captured_in_the_snapshot(user, make_agent):
    agent = make_agent("Versioned")
    tool = ToolFactory(owner=user, name="calc")
    agent_update(agent=agent, actor=user, tools=[{"tool": tool, "requires_approval": True}])
    agent.refresh_from_db()
    assert agent.current_version == 2
    snapshot = agent.versions.get(number=2).snapshot
    assert snapshot["tools"][0]["name"] == "calc"
    assert snapshot["tools"][0]["requires_approval"] is True
    agent_update(agent=agent, actor=user, tools=[{"tool": tool, "requires_approval": True}])
    agent.refresh_from_db()
    assert agent.current_version == 2  # no change, no version


# --- guardrails in runs ----------------------------------------------------------------------------


def test_input_guardrail_trips_the_run_before_the_model_is_called(user, model, make_agent):
    agent = make_agent(
        "Guarded",
        guardrails={"input": [{"type": "blocklist", "words": ["password"], "name": "no-secrets"}]},
    )
    r = run(user, agent, "my password is hunter2")
    assert (r.status, r.error_code) == ("failed", "guardrail_tripped")
    assert "no-secrets" in r.error_message
    tripped = RunEvent.objects.get(run=r, type="guardrail.tripped")
    assert tripped.data["guardrail"] == "no-secrets"
    assert tripped.data["kind"] == "input"
    assert "hunter2" not in json.dumps(tripped.data)
    assert model.model_requests() == []


def test_output_json_schema_guardrail_trips_and_passes(user, model, make_agent):
    schema = {"type": "object", "required": ["answer"]}
    agent = make_agent(
        "Structured", guardrails={"output": [{"type": "json_schema", "schema": schema}]}
    )
    model.add_text("not json at all")
    assert run(user, agent).error_code == "guardrail_tripped"
    model.add_text('{"answer": 1}')
    assert run(user, agent).status == "succeeded"


def test_pii_redaction_hides_emails_from_the_model_and_the_output(user, model, make_agent):
    agent = make_agent(
        "Private",
        guardrails={
            "input": [{"type": "pii", "detect": ["email"], "action": "redact"}],
            "output": [{"type": "pii", "detect": ["email"], "action": "redact"}],
        },
    )
    model.add_text("Write to boss@example.com today.")
    r = run(user, agent, "my mail is me@example.org")
    assert r.status == "succeeded"
    assert "me@example.org" not in json.dumps(model.model_requests()[0].body)
    assert "boss@example.com" not in r.output
    assert not RunEvent.objects.filter(run=r, type="message.delta").exists()  # no raw text streamed
    assert "boss@example.com" not in json.dumps(
        list(RunEvent.objects.filter(run=r).values_list("data", flat=True))
    )


def test_invalid_guardrails_are_refused_on_save(user_client, provider):
    response = user_client.post(
        "/api/v1/agents/",
        {
            "name": "Bad",
            "provider": str(provider.id),
            "model": "fake-model",
            "guardrails": {"input": [{"type": "moderation"}]},
        },
        format="json",
    )
    assert (response.status_code, response.json()["code"]) == (400, "invalid_guardrails")


# --- all three at once (the "done when") -----------------------------------------------------


def test_an_agent_with_an_mcp_tool_an_http_tool_and_a_handoff_completes(
    user, model, make_agent, orders_api
):
    from tests.support.mcp_server import LocalMCPServer

    base, seen = orders_api
    with LocalMCPServer() as mcp:
        maths = tool_create(
            owner=user,
            name="maths",
            kind="mcp",
            config={"url": mcp.url, "transport": "streamable_http", "allowed_tools": ["add"]},
        )
        orders = tool_create(
            owner=user,
            name="get_order",
            kind="http",
            config={"method": "GET", "url_template": base + "/orders/{order_id}"},
            parameters_schema={
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        )
        closer = make_agent("Closer")
        agent = make_agent(
            "Desk", tools=[{"tool": maths}, {"tool": orders}], handoffs=[{"to_agent": closer}]
        )
        model.add_tool_call("add", {"a": 2, "b": 3})
        model.add_tool_call("get_order", {"order_id": "A1"})
        model.add_tool_call("transfer_to_closer", {})
        model.add_text("Order A1 shipped; 2 + 3 = 5.")

        r = run(user, agent, "sum, order, then hand over")

    assert r.status == "succeeded", r.error_message
    assert r.last_agent == "Closer"
    calls = {c.tool_name: c for c in ToolCall.objects.filter(run=r)}
    assert calls["add"].status == calls["get_order"].status == "succeeded"
    assert "5" in calls["add"].output
    assert (calls["add"].tool_id, calls["get_order"].tool_id) == (maths.id, orders.id)
    assert seen[0]["path"] == "/orders/A1"
    assert "handoff" in types(r)


def test_finishing_a_call_keeps_a_rejection_and_records_success_or_failure(user, make_agent):
    from agentdeck.agents.services.runs import tool_call_finished

    r, _ = agent_run_start(user=user, agent=make_agent("Plain"), input="go")
    rows = {
        call_id: ToolCallFactory(
            run=r, call_id=call_id, tool_name="calc", status=status, error=error, duration_ms=dur
        )
        for call_id, status, error, dur in [
            ("ok", "started", "", None),
            ("bad", "started", "", None),
            ("no", "rejected", "A person rejected this call.", None),
        ]
    }
    tool_call_finished(run_id=r.id, call_id="ok", output={"value": 4}, duration_ms=12.5)
    tool_call_finished(run_id=r.id, call_id="bad", output="error: division by zero", duration_ms=3)
    tool_call_finished(run_id=r.id, call_id="no", output="Rejected: not now", duration_ms=1.0)
    ok, bad, no = (ToolCall.objects.get(pk=rows[c].pk) for c in ("ok", "bad", "no"))
    assert (ok.status, ok.output, ok.output_size, ok.error, ok.duration_ms) == (
        "succeeded",
        '{"value": 4}',
        12,
        "",
        12.5,
    )
    assert ok.finished_at is not None
    assert (bad.status, bad.error, bad.duration_ms) == ("failed", "error: division by zero", 3.0)
    assert (no.status, no.error, no.duration_ms) == (
        "rejected",
        "A person rejected this call.",
        None,
    )
    assert no.output == "Rejected: not now"  # the output is recorded all the same


def test_a_tool_that_ran_records_when_it_was_last_used(user, model, make_agent):
    from agentdeck.agents.models import Tool

    tool = ToolFactory(owner=user, name="calc")
    agent = make_agent("Counter", tools=[{"tool": tool}])
    model.add_tool_call("calc", {"expression": "6*7"})
    model.add_text("It is 42.")
    before = timezone.now()
    r = run(user, agent)
    assert r.status == "succeeded"
    last_used = Tool.objects.get(pk=tool.pk).last_used_at
    assert last_used is not None
    assert last_used >= before


def test_an_http_tool_with_unsendable_stored_headers_fails_the_call_not_the_run(
    user, model, make_agent, orders_api
):
    """Headers stored before the API refused such values: the HTTP client would raise and the
    run end in internal_error. The call fails, the model hears why, the run goes on."""
    from agentdeck.agents.models import Tool
    from agentdeck.core.crypto import encrypt_secret

    base, seen = orders_api
    tool = order_tool(user, base)
    Tool.objects.filter(pk=tool.pk).update(
        secret_headers_encrypted=encrypt_secret(json.dumps({"X-Api-Key": "ключ"}))
    )
    agent = make_agent("Support", tools=[{"tool": tool}])
    model.add_tool_call("get_order", {"order_id": "A"})
    model.add_text("I could not look it up.")

    r = run(user, agent)

    assert r.status == "succeeded", (r.error_code, r.error_message)
    assert seen == []
    output = ToolCall.objects.get(run=r).output
    assert "headers cannot be sent" in output
    assert "ключ" not in output


def test_the_builtin_tools_import_without_django_settings():
    # benchmarks/run_overhead.py builds its raw-SDK baseline agent (the mock model and the
    # calculator) without Django: an import that needs settings breaks the benchmark.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from agentdeck.agents.runtime.tools import calculator; "
            "from agentdeck.agents.runtime.mock_model import MockModel",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
