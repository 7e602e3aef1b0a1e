"""MCP tools against a real MCP server on loopback (tests/support/mcp_server.py): discovery, the
allowlist, secret headers, runs that call an MCP tool through a local OpenAI-compatible model
server, the cross-run tool-list cache, and the failures (SSRF refusal, server down)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx2
import pytest

from agentdeck.agents.models import AgentRun, RunEvent, Tool, ToolCall
from agentdeck.agents.runtime import mcp
from agentdeck.agents.services.agents import agent_create
from agentdeck.agents.services.providers import provider_create
from agentdeck.agents.services.runs import agent_run_start
from agentdeck.agents.services.tools import tool_create, tool_refresh_mcp
from agentdeck.agents.tasks import execute_run
from agentdeck.core.exceptions import ApplicationError
from tests.support.mcp_server import LocalMCPServer, free_port
from tests.support.openai_server import FakeOpenAI

pytestmark = pytest.mark.django_db

API_KEY = "sk-test-mcp-0001"


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.OUTBOUND_HTTP_ALLOWLIST = ["127.0.0.1", "localhost"]


@pytest.fixture(autouse=True)
def _fresh_tool_list_cache():
    mcp.tools_list_cache.clear()
    yield
    mcp.tools_list_cache.clear()


@pytest.fixture
def mcp_server():
    with LocalMCPServer("streamable_http") as server:
        yield server


@pytest.fixture
def sse_server():
    with LocalMCPServer("sse") as server:
        yield server


@pytest.fixture
def model_server():
    with FakeOpenAI(require_api_key=API_KEY) as server:
        yield server


def make_tool(user, url: str, *, transport: str = "streamable_http", **kwargs) -> Tool:
    return tool_create(
        owner=user,
        name=kwargs.pop("name", "calc"),
        kind="mcp",
        description="A calculator on an MCP server.",
        config={
            "url": url,
            "transport": transport,
            "allowed_tools": ["add", "shout"],
            **kwargs.pop("config", {}),
        },
        **kwargs,
    )


def make_agent(user, model_server: FakeOpenAI, tool: Tool):
    provider = provider_create(
        actor=user,
        name="fake-compatible",
        kind="openai_compatible",
        base_url=model_server.base_url,
        api_key=API_KEY,
    )
    return agent_create(
        owner=user,
        name="Calculator",
        provider=provider,
        model="fake-model",
        instructions="Use the calculator.",
        tools=[{"tool": tool}],
    )


def run_once(user, agent, text: str = "what is 2 + 3?") -> AgentRun:
    run, _ = agent_run_start(user=user, agent=agent, input=text)
    execute_run(str(run.id))
    run.refresh_from_db()
    return run


def tool_messages(request) -> list[str]:
    """The tool results a Chat Completions request carries back to the model, as text (the SDK
    sends an MCP result as a list of content parts)."""
    return [
        m["content"] if isinstance(m["content"], str) else json.dumps(m["content"])
        for m in request.body["messages"]
        if m.get("role") == "tool"
    ]


# --- discovery -----------------------------------------------------------------------------------


def test_refresh_stores_the_allowed_tools(user, mcp_server):
    tool = make_tool(user, mcp_server.url)
    assert tool.discovered == []

    tool = tool_refresh_mcp(tool=tool)

    tool.refresh_from_db()
    assert [t["name"] for t in tool.discovered] == ["add", "shout"]  # not secret_admin
    add = tool.discovered[0]
    assert add["description"] == "Add two integers."
    assert set(add["input_schema"]["properties"]) == {"a", "b"}
    assert tool.discovered_at is not None
    assert mcp_server.count("tools/list") == 1


def test_refresh_without_an_allowlist_stores_every_tool(user, mcp_server):
    tool = tool_create(owner=user, name="everything", kind="mcp", config={"url": mcp_server.url})
    tool = tool_refresh_mcp(tool=tool)
    assert sorted(t["name"] for t in tool.discovered) == ["add", "secret_admin", "shout"]


def test_refresh_over_sse(user, sse_server):
    tool = make_tool(user, sse_server.url, transport="sse")
    tool = tool_refresh_mcp(tool=tool)
    assert [t["name"] for t in tool.discovered] == ["add", "shout"]
    assert sse_server.count("tools/list") == 1


def test_config_and_secret_headers_reach_the_server(user, mcp_server):
    tool = make_tool(
        user,
        mcp_server.url,
        config={"headers": {"X-Team": "blue"}},
        secret_headers={"Authorization": "Bearer mcp-secret-123"},
    )
    tool_refresh_mcp(tool=tool)
    assert mcp_server.headers
    for headers in mcp_server.headers:
        assert headers["authorization"] == "Bearer mcp-secret-123"
        assert headers["x-team"] == "blue"


# --- runs ----------------------------------------------------------------------------------------


def test_a_run_calls_an_mcp_tool(user, mcp_server, model_server):
    agent = make_agent(user, model_server, make_tool(user, mcp_server.url))
    call_id = model_server.add_tool_call("add", {"a": 2, "b": 3})
    model_server.add_text("2 + 3 = 5.")

    run = run_once(user, agent)

    assert run.status == "succeeded", (run.error_code, run.error_message)
    assert run.output == "2 + 3 = 5."
    first, second = model_server.model_requests()
    # The model was offered the allowed MCP tools only.
    offered = sorted(t["function"]["name"] for t in first.body["tools"])
    assert offered == ["add", "shout"]
    # The tool's output went back to the model.
    assert any('"5"' in content for content in tool_messages(second))

    types = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True))
    assert types.index("tool_call.started") < types.index("tool_call.completed")
    started = RunEvent.objects.get(run=run, type="tool_call.started")
    assert started.data["name"] == "add"
    arguments = started.data["arguments"]
    assert (json.loads(arguments) if isinstance(arguments, str) else arguments) == {"a": 2, "b": 3}
    completed = RunEvent.objects.get(run=run, type="tool_call.completed")
    assert '"5"' in json.dumps(completed.data["output"])

    call = ToolCall.objects.get(run=run)
    assert call.call_id == call_id
    assert call.tool_name == "add"
    assert call.status == ToolCall.Status.SUCCEEDED
    assert "5" in call.output
    assert mcp_server.count("tools/call") == 1


def test_a_second_run_reuses_the_cached_tool_list(user, mcp_server, model_server):
    agent = make_agent(user, model_server, make_tool(user, mcp_server.url))
    for a, b in ((2, 3), (4, 5)):
        model_server.add_tool_call("add", {"a": a, "b": b})
        model_server.add_text("done")

    first = run_once(user, agent)
    second = run_once(user, agent)

    assert first.status == second.status == "succeeded"
    assert any("9" in c for c in tool_messages(model_server.model_requests()[3]))
    # Two runs, four model turns, two tool calls: one tools/list.
    assert mcp_server.count("tools/call") == 2
    assert mcp_server.count("tools/list") == 1
    assert len(mcp.tools_list_cache) == 1


def test_a_refresh_invalidates_the_cached_tool_list(user, mcp_server, model_server):
    tool = make_tool(user, mcp_server.url)
    agent = make_agent(user, model_server, tool)
    model_server.add_text("one")
    model_server.add_text("two")

    assert run_once(user, agent).status == "succeeded"
    assert mcp_server.count("tools/list") == 1
    tool_refresh_mcp(tool=tool)  # moves updated_at
    assert mcp_server.count("tools/list") == 2
    assert run_once(user, agent).status == "succeeded"
    assert mcp_server.count("tools/list") == 3


def test_a_run_over_sse(user, sse_server, model_server):
    agent = make_agent(user, model_server, make_tool(user, sse_server.url, transport="sse"))
    model_server.add_tool_call("shout", {"text": "hello"})
    model_server.add_text("It said HELLO!")

    run = run_once(user, agent)

    assert run.status == "succeeded", (run.error_code, run.error_message)
    assert any("HELLO!" in c for c in tool_messages(model_server.model_requests()[1]))
    assert ToolCall.objects.get(run=run).status == ToolCall.Status.SUCCEEDED


# --- failures ------------------------------------------------------------------------------------


def test_a_url_refused_by_the_ssrf_policy_cannot_be_saved(user, settings):
    settings.OUTBOUND_HTTP_ALLOWLIST = []
    with pytest.raises(ApplicationError) as info:
        make_tool(user, f"http://127.0.0.1:{free_port()}/mcp")
    assert (info.value.status, info.value.code) == (400, "url_not_allowed")
    assert not Tool.objects.filter(owner=user).exists()


def test_refreshing_an_unreachable_server_fails_with_mcp_unreachable(user):
    tool = make_tool(user, f"http://127.0.0.1:{free_port()}/mcp")
    with pytest.raises(ApplicationError) as info:
        tool_refresh_mcp(tool=tool)
    assert (info.value.status, info.value.code) == (502, "mcp_unreachable")
    tool.refresh_from_db()
    assert tool.discovered_at is None


def test_refreshing_a_url_refused_since_it_was_saved_fails_with_mcp_unreachable(
    user, mcp_server, settings
):
    tool = make_tool(user, mcp_server.url)
    settings.OUTBOUND_HTTP_ALLOWLIST = []
    with pytest.raises(ApplicationError) as info:
        tool_refresh_mcp(tool=tool)
    assert info.value.code == "mcp_unreachable"
    assert "not allowed" in info.value.detail
    assert mcp_server.methods == []


def test_refreshing_a_server_that_never_answers_times_out(user, monkeypatch):
    monkeypatch.setattr(mcp.servers, "DISCOVERY_TIMEOUT_SECONDS", 1.0)
    monkeypatch.setattr(mcp.servers, "MCP_HTTP_TIMEOUT_SECONDS", 1.0)
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        tool = make_tool(user, f"http://127.0.0.1:{silent.getsockname()[1]}/mcp")
        started = time.monotonic()
        with pytest.raises(ApplicationError) as info:
            tool_refresh_mcp(tool=tool)
    assert (info.value.status, info.value.code) == (502, "mcp_unreachable")
    assert time.monotonic() - started < 10


def test_refreshing_something_that_is_not_an_mcp_server_fails_with_mcp_unreachable(
    user, model_server
):
    # An HTTP server that answers, but not MCP.
    tool = make_tool(user, f"{model_server.url}/mcp")
    with pytest.raises(ApplicationError) as info:
        tool_refresh_mcp(tool=tool)
    assert info.value.code == "mcp_unreachable"


def test_an_mcp_output_quoting_a_secret_header_is_redacted(user, mcp_server, model_server):
    # shout() upper-cases what it is given: the server "answers with" the header's value.
    tool = make_tool(user, mcp_server.url, secret_headers={"X-Team-Token": "TEAM-TOKEN-7A1C"})
    agent = make_agent(user, model_server, tool)
    model_server.add_tool_call("shout", {"text": "team-token-7a1c"})
    model_server.add_text("done")

    run = run_once(user, agent)

    assert run.status == "succeeded", (run.error_code, run.error_message)
    assert mcp_server.headers[-1]["x-team-token"] == "TEAM-TOKEN-7A1C"
    call = ToolCall.objects.get(run=run)
    assert "[REDACTED]" in call.output
    events = json.dumps(list(RunEvent.objects.filter(run=run).values_list("data", flat=True)))
    for text in (call.output, events, json.dumps(tool_messages(model_server.model_requests()[1]))):
        assert "TEAM-TOKEN-7A1C" not in text


def test_a_run_whose_mcp_server_is_down_fails_cleanly(user, model_server):
    agent = make_agent(user, model_server, make_tool(user, f"http://127.0.0.1:{free_port()}/mcp"))

    run = run_once(user, agent)

    assert run.status == "failed"
    assert model_server.model_requests() == []  # never got as far as the model
    types = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True))
    assert types[-1] == "run.failed"
    assert run.error_code == "tool_error", run.error_message
    assert "calc" in run.error_message


def test_a_run_whose_mcp_url_is_now_refused_fails_with_tool_error(
    user, mcp_server, model_server, settings
):
    agent = make_agent(user, model_server, make_tool(user, mcp_server.url))
    settings.OUTBOUND_HTTP_ALLOWLIST = []

    run = run_once(user, agent)

    assert run.status == "failed"
    assert mcp_server.methods == []
    assert run.error_code == "tool_error", run.error_message
    assert "not allowed" in run.error_message


def test_the_mcp_client_connection_is_guarded_against_ssrf(mcp_server, settings):
    """Even past check_url (DNS rebinding), the connection itself is refused."""
    settings.OUTBOUND_HTTP_ALLOWLIST = []

    async def post():
        async with mcp.guarded_client_factory() as client:
            return await client.post(mcp_server.url, json={"jsonrpc": "2.0"})

    with pytest.raises(httpx2.ConnectError, match="refused"):
        asyncio.run(post())
    assert mcp_server.headers == []


def test_the_guarded_client_talks_to_an_allowed_server(mcp_server):
    async def post():
        async with mcp.guarded_client_factory(headers={"X-Probe": "1"}) as client:
            response = await client.post(
                mcp_server.url,
                content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
            return response.status_code

    assert asyncio.run(post()) < 500
    assert mcp_server.headers[-1]["x-probe"] == "1"


def test_an_mcp_tool_that_requires_approval_pauses_the_run(user, mcp_server, model_server):
    tool = make_tool(user, mcp_server.url)
    provider = provider_create(
        actor=user,
        name="fake-compatible",
        kind="openai_compatible",
        base_url=model_server.base_url,
        api_key=API_KEY,
    )
    agent = agent_create(
        owner=user,
        name="Careful",
        provider=provider,
        model="fake-model",
        tools=[{"tool": tool, "requires_approval": True}],
    )
    model_server.add_tool_call("add", {"a": 2, "b": 3})

    run = run_once(user, agent)

    assert run.status == "requires_action", (run.error_code, run.error_message)
    assert [p["tool"] for p in run.pending_approvals] == ["add"]
    assert mcp_server.count("tools/call") == 0


# --- headers stored before the API refused unsendable ones ---------------------------------------


def _store_unsendable_secret_header(tool: Tool) -> None:
    from agentdeck.core.crypto import encrypt_secret

    Tool.objects.filter(pk=tool.pk).update(
        secret_headers_encrypted=encrypt_secret(json.dumps({"Authorization": "Bearer ключ"}))
    )
    tool.refresh_from_db()


def test_refreshing_a_tool_with_unsendable_stored_headers_is_409_not_500(
    user, user_client, mcp_server
):
    tool = make_tool(user, mcp_server.url)
    _store_unsendable_secret_header(tool)

    response = user_client.post(f"/api/v1/tools/{tool.pk}/refresh/")

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "invalid_tool"
    assert "ключ" not in response.content.decode()
    assert mcp_server.count("tools/list") == 0


def test_a_run_with_unsendable_stored_mcp_headers_fails_tool_error(user, mcp_server, model_server):
    tool = make_tool(user, mcp_server.url)
    agent = make_agent(user, model_server, tool)
    _store_unsendable_secret_header(tool)

    run = run_once(user, agent)

    assert (run.status, run.error_code) == ("failed", "tool_error")
    assert "Set them again" in run.error_message
    assert "ключ" not in run.error_message
