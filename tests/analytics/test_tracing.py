"""Agents SDK spans are stored as RunSpan rows against their run, and stay at home by default.

Agents run for real through the SDK's Runner inside ``asyncio.run`` (as the worker does), with
``ScriptedModel`` or the SDK's OpenAI model classes on a mocked HTTP transport; a socket guard
fails any test that tries to reach the network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import agents
import httpx2  # the HTTP client the openai package is built on
import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    RunResult,
    function_tool,
)
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.tracing import CustomSpanData, Span, Trace, TracingProcessor, get_trace_provider
from agents.tracing.processors import BatchTraceProcessor, default_processor
from agents.tracing.spans import SpanImpl
from agents.tracing.traces import TraceImpl
from agents.usage import Usage
from django.test import override_settings
from openai import AsyncOpenAI
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from agentdeck.agents.models import AgentRun
from agentdeck.analytics.models import RunSpan
from agentdeck.analytics.tracing import (
    RUN_ID_METADATA_KEY,
    RunSpanProcessor,
    get_span_processor,
    install_tracing,
)
from tests.factories import AgentRunFactory, ConversationFactory

pytestmark = pytest.mark.django_db


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every non-loopback connection and name lookup (the test database is local)."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def is_local(host: Any) -> bool:
        if host in ("localhost", "", None):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def connect(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
            raise AssertionError(f"network access in a test: {address!r}")
        return real_connect(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_local(host):
            raise AssertionError(f"name lookup in a test: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(autouse=True)
def tracing_enabled() -> Iterator[None]:
    """Other test modules switch SDK tracing off process-wide (set_tracing_disabled(True)); these
    tests need it on, and put the previous state back afterwards."""
    provider = get_trace_provider()
    previous = getattr(provider, "_manual_disabled", None)
    agents.set_tracing_disabled(False)
    yield
    if previous is None:
        provider._manual_disabled = None  # type: ignore[attr-defined]
    else:
        agents.set_tracing_disabled(previous)


@pytest.fixture(autouse=True)
def processor(tracing_enabled: None) -> Iterator[RunSpanProcessor]:
    with override_settings(OPENAI_TRACING_EXPORT=False):
        installed = install_tracing()
    yield installed
    # Nothing a test left buffered may leak into the next one; the rows it writes are rolled
    # back with the test's transaction.
    installed.force_flush()


class Recorder(TracingProcessor):
    """Keeps the SDK's span objects, so a test can hand them to the processor a second time."""

    def __init__(self) -> None:
        self.spans: list[Span[Any]] = []

    def on_trace_start(self, trace: Trace) -> None:
        pass

    def on_trace_end(self, trace: Trace) -> None:
        pass

    def on_span_start(self, span: Span[Any]) -> None:
        pass

    def on_span_end(self, span: Span[Any]) -> None:
        self.spans.append(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


@pytest.fixture
def recorder(processor: RunSpanProcessor) -> Iterator[Recorder]:
    recording = Recorder()
    agents.add_trace_processor(recording)
    yield recording
    agents.set_trace_processors([processor])


# --- helpers ----------------------------------------------------------------------------------


@function_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def usage(input_tokens: int, output_tokens: int) -> Usage:
    return Usage(
        requests=1,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=1, cache_write_tokens=0),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
    )


def calculator(**kwargs: Any) -> Agent:
    model = ScriptedModel(
        [
            ModelStep(
                output=[function_call("add", {"a": 2, "b": 3}, call_id="call_1")],
                usage=usage(10, 4),
            ),
            ModelStep(output=[assistant_message("5")], usage=usage(20, 2)),
        ],
        # Without it ScriptedModel opens its generation spans disabled.
        emit_traces=True,
    )
    return Agent(name="Calculator", instructions="Add.", model=model, tools=[add], **kwargs)


def config_for(run: AgentRun, **kwargs: Any) -> RunConfig:
    """The RunConfig the runtime uses: the run id in the trace metadata."""
    kwargs.setdefault("group_id", str(run.id))
    kwargs.setdefault("workflow_name", "Calculator")
    return RunConfig(trace_metadata={RUN_ID_METADATA_KEY: str(run.id)}, **kwargs)


def run_agent(agent: Agent, run_config: RunConfig) -> RunResult:
    return asyncio.run(Runner.run(agent, "hi", run_config=run_config))


def mock_openai_client() -> AsyncOpenAI:
    """An OpenAI client whose HTTP transport answers in-process, with usage in both APIs."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/responses"):
            return httpx2.Response(
                200,
                json={
                    "id": "resp_1",
                    "object": "response",
                    "created_at": 0,
                    "model": "gpt-test-responses",
                    "status": "completed",
                    "output": [
                        {
                            "type": "message",
                            "id": "msg_1",
                            "role": "assistant",
                            "status": "completed",
                            "content": [
                                {"type": "output_text", "text": "hello", "annotations": []}
                            ],
                        }
                    ],
                    "parallel_tool_calls": False,
                    "tool_choice": "auto",
                    "tools": [],
                    "usage": {
                        "input_tokens": 11,
                        "output_tokens": 7,
                        "total_tokens": 18,
                        "input_tokens_details": {"cached_tokens": 4},
                        "output_tokens_details": {"reasoning_tokens": 3},
                    },
                },
            )
        return httpx2.Response(
            200,
            json={
                "id": "chatcmpl_1",
                "object": "chat.completion",
                "created": 0,
                "model": "gpt-test-chat",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "hello"},
                    }
                ],
                "usage": {
                    "prompt_tokens": 13,
                    "completion_tokens": 5,
                    "total_tokens": 18,
                    "prompt_tokens_details": {"cached_tokens": 2},
                    "completion_tokens_details": {"reasoning_tokens": 1},
                },
            },
        )

    return AsyncOpenAI(
        api_key="sk-test",
        base_url="http://openai.invalid/v1",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(answer)),
    )


# --- spans of a run ---------------------------------------------------------------------------


def test_a_run_s_spans_are_stored_with_structure_and_durations(processor):
    run = AgentRunFactory()

    result = run_agent(calculator(), config_for(run))
    written = processor.flush_run(run.id)

    assert result.final_output == "5"
    spans = list(run.spans.order_by("started_at", "id"))
    assert written == len(spans) == 7
    by_kind: dict[str, list[RunSpan]] = {}
    for span in spans:
        by_kind.setdefault(span.kind, []).append(span)
    assert {kind: len(items) for kind, items in by_kind.items()} == {
        "task": 1,
        "agent": 1,
        "turn": 2,
        "generation": 2,
        "function": 1,
    }
    assert len({span.trace_id for span in spans}) == 1
    assert all(span.duration_ms is not None and span.duration_ms >= 0 for span in spans)
    assert all(span.started_at <= span.ended_at for span in spans)

    (task,) = by_kind["task"]
    (agent,) = by_kind["agent"]
    (function,) = by_kind["function"]
    first_turn = min(by_kind["turn"], key=lambda span: span.started_at)
    assert task.parent_id == ""
    assert agent.name == "Calculator"
    assert agent.parent_id == task.span_id
    assert agent.data["span_data"]["tools"] == ["add"]
    assert function.name == "add"
    assert function.parent_id == first_turn.span_id
    # The tool's arguments and result stay in the run's events, not in every span row.
    assert "input" not in function.data["span_data"]
    assert "output" not in function.data["span_data"]
    assert function.error is None
    # Turn and task spans carry the SDK's running totals in data; only model-call spans fill the
    # token columns, so sums over a run's spans count every token once. (ScriptedModel's
    # generation spans carry no usage, so the columns stay 0 here.)
    assert first_turn.data["span_data"]["data"]["usage"]["input_tokens"] == 10
    assert task.data["span_data"]["data"]["usage"]["input_tokens"] == 30
    assert sum(span.input_tokens for span in spans) == 0
    assert processor.pending() == {}


def test_responses_api_spans_carry_model_and_token_counts(processor):
    run = AgentRunFactory()
    agent = Agent(
        name="Writer", model=OpenAIResponsesModel("gpt-test-responses", mock_openai_client())
    )

    run_agent(agent, config_for(run))
    processor.flush_run(run.id)

    response = run.spans.get(kind="response")
    assert response.model == "gpt-test-responses"
    assert response.name == "gpt-test-responses"
    assert (
        response.input_tokens,
        response.output_tokens,
        response.cached_input_tokens,
        response.reasoning_tokens,
    ) == (11, 7, 4, 3)
    assert response.duration_ms is not None
    assert response.duration_ms >= 0
    assert response.data["span_data"]["response_id"] == "resp_1"


def test_responses_api_spans_without_sensitive_data_still_count_tokens(processor):
    run = AgentRunFactory()
    agent = Agent(
        name="Writer", model=OpenAIResponsesModel("gpt-test-responses", mock_openai_client())
    )

    run_agent(agent, config_for(run, trace_include_sensitive_data=False))
    processor.flush_run(run.id)

    response = run.spans.get(kind="response")
    # The SDK then keeps neither the Response (with its model) nor, for a non-OpenAI base URL,
    # the response id on the span; the token counts are still there.
    assert (response.model, response.name) == ("", "")
    assert (response.input_tokens, response.output_tokens) == (11, 7)


def test_chat_completions_spans_carry_model_and_token_counts(processor):
    run = AgentRunFactory()
    agent = Agent(
        name="Writer", model=OpenAIChatCompletionsModel("gpt-test-chat", mock_openai_client())
    )

    run_agent(agent, config_for(run))
    processor.flush_run(run.id)

    generation = run.spans.get(kind="generation")
    assert generation.model == generation.name == "gpt-test-chat"
    assert (
        generation.input_tokens,
        generation.output_tokens,
        generation.cached_input_tokens,
        generation.reasoning_tokens,
    ) == (13, 5, 2, 1)
    # Prompt and completion are left out; the model settings stay.
    assert "input" not in generation.data["span_data"]
    assert "output" not in generation.data["span_data"]
    assert "model_config" in generation.data["span_data"]


def test_flushing_twice_writes_no_duplicates(processor, recorder):
    run = AgentRunFactory()
    run_agent(calculator(), config_for(run))

    first = processor.flush_run(run.id)
    again = processor.flush_run(run.id)
    # The same spans reported once more (as a resumed run's re-attached trace can) are skipped
    # by the (run, span_id) constraint.
    for span in recorder.spans:
        processor.on_span_end(span)
    replayed = processor.flush_run(run.id)

    assert first == 7
    assert again == 0
    assert replayed == 7
    assert run.spans.count() == 7


def test_spans_of_concurrent_runs_do_not_mix(processor):
    first, second = AgentRunFactory(), AgentRunFactory()

    async def both() -> None:
        await asyncio.gather(
            Runner.run(calculator(), "hi", run_config=config_for(first)),
            Runner.run(calculator(), "hi", run_config=config_for(second)),
        )

    asyncio.run(both())
    assert processor.flush_run(first.id) == 7
    assert processor.flush_run(second.id) == 7

    first_traces = set(first.spans.values_list("trace_id", flat=True))
    second_traces = set(second.spans.values_list("trace_id", flat=True))
    assert len(first_traces) == len(second_traces) == 1
    assert first_traces != second_traces
    assert RunSpan.objects.count() == 14


def test_a_trace_without_the_metadata_key_is_found_by_its_group_id(processor):
    run = AgentRunFactory()

    run_agent(calculator(), RunConfig(group_id=str(run.id).upper(), workflow_name="Calculator"))

    assert processor.flush_run(run.id) == 7


def test_a_conversation_group_id_does_not_claim_a_run_s_spans(processor):
    conversation = ConversationFactory()
    run = AgentRunFactory(conversation=conversation)
    run_agent(calculator(), config_for(run, group_id=str(conversation.id)))

    assert processor.flush_run(conversation.id) == 0
    assert processor.flush_run(run.id) == 7


def test_traces_of_other_code_are_not_buffered(processor):
    with agents.trace("not an agentdeck run"), agents.custom_span("work"):
        pass

    assert processor.pending() == {}


def test_tracing_disabled_for_a_run_stores_nothing(processor):
    run = AgentRunFactory()

    run_agent(calculator(), config_for(run, tracing_disabled=True))

    assert processor.flush_run(run.id) == 0


# --- the processor on its own -----------------------------------------------------------------


def _trace(processor: RunSpanProcessor, run: AgentRun) -> TraceImpl:
    return TraceImpl(
        name="wf",
        trace_id=None,
        group_id=None,
        metadata={RUN_ID_METADATA_KEY: str(run.id)},
        processor=processor,
    )


def _custom_span(
    processor: RunSpanProcessor,
    trace_id: str,
    run: AgentRun,
    data: dict[str, Any],
    *,
    with_metadata: bool = True,
) -> SpanImpl[CustomSpanData]:
    """A span as the SDK makes it: it inherits its trace's metadata (if the trace has any)."""
    return SpanImpl(
        trace_id=trace_id,
        span_id=None,
        parent_id=None,
        processor=processor,
        span_data=CustomSpanData(name="step", data=data),
        tracing_api_key=None,
        trace_metadata={RUN_ID_METADATA_KEY: str(run.id)} if with_metadata else None,
    )


def test_span_data_is_truncated_and_made_storable():
    run = AgentRunFactory()
    own = RunSpanProcessor()
    data = {"blob": "x" * 100_000, "nul": "a\x00b", "many": list(range(1000)), "obj": object()}

    with _trace(own, run) as trace, _custom_span(own, trace.trace_id, run, data) as span:
        span.set_error({"message": "boom", "data": {"detail": "\x00bad"}})
    own.flush_run(run.id)

    row = RunSpan.objects.get(run=run)
    stored = row.data["span_data"]["data"]
    assert row.kind == "custom"
    assert row.name == "step"
    assert len(stored["blob"]) < 2_100
    assert stored["nul"] == "ab"
    assert len(stored["many"]) == 101
    assert stored["obj"].startswith("<object object")
    assert row.error == {"message": "boom", "data": {"detail": "bad"}}


def test_spans_of_a_re_attached_trace_are_claimed_through_their_metadata():
    run = AgentRunFactory()
    own = RunSpanProcessor()

    # A resumed run's trace is re-attached without on_trace_start; its spans carry the metadata.
    with _custom_span(own, "trace_resumed", run, {}):
        pass

    assert own.flush_run(run.id) == 1


def test_buffers_are_bounded(caplog):
    runs = [AgentRunFactory() for _ in range(3)]
    own = RunSpanProcessor(max_traces=2, max_spans_per_trace=2)

    for run in runs:
        with _trace(own, run) as trace:
            for _ in range(3):
                with _custom_span(own, trace.trace_id, run, {}):
                    pass

    # The oldest trace was dropped; the others kept their first two spans.
    assert own.flush_run(runs[0].id) == 0
    assert own.flush_run(runs[1].id) == 2
    assert own.flush_run(runs[2].id) == 2
    assert "never flushed" in caplog.text
    assert "over the 2-span limit" in caplog.text


def test_force_flush_writes_every_identifiable_run():
    by_metadata, by_group = AgentRunFactory(), AgentRunFactory()
    own = RunSpanProcessor()

    with _trace(own, by_metadata) as trace, _custom_span(own, trace.trace_id, by_metadata, {}):
        pass
    grouped = TraceImpl(
        name="wf", trace_id=None, group_id=str(by_group.id), metadata=None, processor=own
    )
    with grouped, _custom_span(own, grouped.trace_id, by_group, {}, with_metadata=False):
        pass
    own.force_flush()

    assert by_metadata.spans.count() == 1
    assert by_group.spans.count() == 1
    assert own.pending() == {}


def test_shutdown_discards_without_writing():
    run = AgentRunFactory()
    own = RunSpanProcessor()
    with _trace(own, run) as trace, _custom_span(own, trace.trace_id, run, {}):
        pass

    own.shutdown()
    with _trace(own, run) as trace, _custom_span(own, trace.trace_id, run, {}):
        pass

    assert own.pending() == {}
    assert own.flush_run(run.id) == 0
    assert RunSpan.objects.count() == 0


# --- installation -----------------------------------------------------------------------------


def _active_processors() -> tuple[TracingProcessor, ...]:
    return get_trace_provider()._multi_processor._processors  # type: ignore[attr-defined]


def test_by_default_only_agentdeck_s_processor_is_active(processor):
    with override_settings(OPENAI_TRACING_EXPORT=False):
        assert install_tracing() is install_tracing() is get_span_processor() is processor

    active = _active_processors()
    assert active == (processor,)
    assert default_processor() not in active
    assert not any(isinstance(p, BatchTraceProcessor) for p in active)


def test_export_setting_adds_the_openai_exporter_next_to_ours(processor):
    try:
        with override_settings(OPENAI_TRACING_EXPORT=True):
            install_tracing()
            install_tracing()
            active = _active_processors()
    finally:
        with override_settings(OPENAI_TRACING_EXPORT=False):
            install_tracing()

    assert active.count(processor) == 1
    assert default_processor() in active
    assert _active_processors() == (processor,)


# --- admin ------------------------------------------------------------------------------------


def test_admin_lists_spans_read_only_and_searches_by_run_id(client, staff_user):
    run = AgentRunFactory()
    run_agent(calculator(), config_for(run))
    get_span_processor().flush_run(run.id)
    span = run.spans.get(kind="function")
    client.force_login(staff_user)

    listing = client.get("/admin/analytics/runspan/", {"q": str(run.id)})
    filtered = client.get("/admin/analytics/runspan/", {"kind__exact": "function"})
    not_a_uuid = client.get("/admin/analytics/runspan/", {"q": "nonsense"})
    detail = client.get(f"/admin/analytics/runspan/{span.pk}/change/")

    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 7
    assert filtered.context["cl"].result_count == 1
    assert not_a_uuid.status_code == 200
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    assert client.get("/admin/analytics/runspan/add/").status_code == 403
    assert (
        client.post(f"/admin/analytics/runspan/{span.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )


def test_a_span_row_keeps_its_values_json_and_times_included():
    """The spans' INSERT takes them as one JSON document: every column reads back as written,
    an error object as an object, no error as SQL NULL, times to the microsecond."""
    import dataclasses
    from datetime import UTC, datetime

    from agentdeck.analytics.tracing.records import SpanRecord
    from agentdeck.analytics.tracing.store import insert_spans

    run = AgentRunFactory()
    started = datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=UTC)
    ended = datetime(2026, 11, 30, 10, 0, 1, 654321, tzinfo=UTC)
    failed = SpanRecord(
        trace_id="trace_1",
        span_id="span_1",
        parent_id="",
        kind="function",
        name="calculator",
        model="",
        started_at=started,
        ended_at=ended,
        duration_ms=1530.865,
        input_tokens=0,
        output_tokens=0,
        cached_input_tokens=0,
        reasoning_tokens=0,
        error={"message": "boom", "data": {"expression": "1/0"}},
        data={"span_data": {"type": "function", "name": "calculator"}, "n": [1, 2.5, None]},
    )
    ok = dataclasses.replace(
        failed,
        span_id="span_2",
        error=None,
        kind="generation",
        model="gpt-x",
        input_tokens=12,
        started_at=None,
        ended_at=None,
        duration_ms=None,
    )
    insert_spans(str(run.id), [failed, ok])
    insert_spans(str(run.id), [failed])  # stored once

    rows = {s.span_id: s for s in RunSpan.objects.filter(run=run)}
    assert set(rows) == {"span_1", "span_2"}
    one, two = rows["span_1"], rows["span_2"]
    assert (one.trace_id, one.kind, one.name, one.parent_id) == (
        "trace_1",
        "function",
        "calculator",
        "",
    )
    assert (one.started_at, one.ended_at, one.duration_ms) == (started, ended, 1530.865)
    assert one.error == {"message": "boom", "data": {"expression": "1/0"}}
    assert one.data == failed.data
    assert two.error is None
    assert (two.kind, two.model, two.input_tokens) == ("generation", "gpt-x", 12)
    assert (two.started_at, two.ended_at, two.duration_ms) == (None, None, None)
    assert RunSpan.objects.filter(run=run, error__isnull=True).count() == 1
