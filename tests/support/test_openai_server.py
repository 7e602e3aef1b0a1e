"""FakeOpenAI driven by the real ``openai`` client and the OpenAI Agents SDK (no database)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import openai
import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.support.openai_server import FakeOpenAI, FakeUsage

API_KEY = "sk-test"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server():
    with FakeOpenAI(require_api_key=API_KEY) as fake:
        yield fake


def make_client(server: FakeOpenAI, **kwargs: Any) -> openai.AsyncOpenAI:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("api_key", API_KEY)
    return openai.AsyncOpenAI(base_url=server.base_url, **kwargs)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def raw_post(server: FakeOpenAI, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    """POST with the standard library only: the bytes exactly as the server sent them."""
    request = urllib.request.Request(
        f"{server.base_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read()


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    events = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields.get("event"), fields["data"]))
    return events


# The openai client ----------------------------------------------------------------------------


def test_models_list(server):
    async def scenario():
        async with make_client(server) as client:
            page = await client.models.list()
            one = await client.models.retrieve("fake-mini")
            return [model.id for model in page.data], one

    ids, one = asyncio.run(scenario())

    assert ids == ["fake-model", "fake-mini"]
    assert (one.id, one.object, one.owned_by) == ("fake-mini", "model", "fake")
    assert [r.path for r in server.requests] == ["/v1/models", "/v1/models/fake-mini"]


def test_models_are_configurable():
    with FakeOpenAI(models=["gpt-x"]) as fake:

        async def scenario():
            async with make_client(fake) as client:
                return [model.id async for model in client.models.list()]

        assert asyncio.run(scenario()) == ["gpt-x"]


def test_chat_completion_plain(server):
    server.add_text(
        "hello world",
        usage=FakeUsage(input_tokens=12, output_tokens=7, cached_tokens=4, reasoning_tokens=3),
    )

    async def scenario():
        async with make_client(server) as client:
            return await client.chat.completions.create(model="fake-mini", messages=MESSAGES)

    completion = asyncio.run(scenario())

    assert completion.choices[0].message.content == "hello world"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "fake-mini"
    assert completion.usage.prompt_tokens == 12
    assert completion.usage.completion_tokens == 7
    assert completion.usage.total_tokens == 19
    assert completion.usage.prompt_tokens_details.cached_tokens == 4
    assert completion.usage.completion_tokens_details.reasoning_tokens == 3
    assert completion._request_id.startswith("req_fake_")
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.api_key == API_KEY
    assert request.body["messages"] == MESSAGES
    assert server.pending_steps == 0


def test_chat_completion_default_reply_is_ok(server):
    async def scenario():
        async with make_client(server) as client:
            return await client.chat.completions.create(model="fake-model", messages=MESSAGES)

    completion = asyncio.run(scenario())

    assert completion.choices[0].message.content == "ok"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (10, 5)


def test_chat_completion_streamed_with_usage(server):
    server.add_text("the quick brown fox", usage={"output_tokens": 9, "cached_tokens": 2})
    server.add_text("no usage please")

    async def scenario():
        async with make_client(server) as client:
            with_usage = await client.chat.completions.create(
                model="fake-model",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in with_usage]
            without_usage = await client.chat.completions.create(
                model="fake-model", messages=MESSAGES, stream=True
            )
            return chunks, [chunk async for chunk in without_usage]

    chunks, plain_chunks = asyncio.run(scenario())

    deltas = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert deltas == ["the ", "quick ", "brown ", "fox"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    *others, last = chunks
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (10, 9)
    assert last.usage.total_tokens == 19
    assert last.usage.prompt_tokens_details.cached_tokens == 2
    assert all(c.usage is None for c in others)
    assert "".join(c.choices[0].delta.content or "" for c in plain_chunks) == "no usage please"
    assert all(c.usage is None for c in plain_chunks)
    # Both answers were chunked bodies on one kept-alive connection.
    assert len({r.client_port for r in server.requests}) == 1


def test_chat_completion_tool_call_plain_and_streamed(server):
    call_id = server.add_tool_call("get_weather", {"city": "Paris"}, call_id="call_1")
    server.add_tool_call("get_weather", {"city": "Rome"})

    async def scenario():
        async with make_client(server) as client:
            plain = await client.chat.completions.create(model="fake-model", messages=MESSAGES)
            stream = await client.chat.completions.create(
                model="fake-model", messages=MESSAGES, stream=True
            )
            return plain, [chunk async for chunk in stream]

    plain, chunks = asyncio.run(scenario())

    assert call_id == "call_1"
    (tool_call,) = plain.choices[0].message.tool_calls
    assert (tool_call.id, tool_call.function.name) == ("call_1", "get_weather")
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}
    assert plain.choices[0].finish_reason == "tool_calls"
    pieces = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert pieces[0].id.startswith("call_fake_")
    assert pieces[0].function.name == "get_weather"
    assert len(pieces) > 2
    assert json.loads("".join(p.function.arguments or "" for p in pieces)) == {"city": "Rome"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_responses_plain(server):
    server.add_text("hello world", usage={"cached_tokens": 6, "reasoning_tokens": 2})
    call_id = server.add_tool_call("lookup", {"q": "x"})

    async def scenario():
        async with make_client(server) as client:
            text = await client.responses.create(model="fake-model", input="hi")
            tool = await client.responses.create(
                model="fake-model", input="hi", instructions="Be brief."
            )
            return text, tool

    text, tool = asyncio.run(scenario())

    assert text.output_text == "hello world"
    assert text.status == "completed"
    assert text.usage.input_tokens == 10
    assert text.usage.output_tokens == 5
    assert text.usage.total_tokens == 15
    assert text.usage.input_tokens_details.cached_tokens == 6
    assert text.usage.output_tokens_details.reasoning_tokens == 2
    (item,) = tool.output
    assert (item.type, item.name, item.call_id) == ("function_call", "lookup", call_id)
    assert json.loads(item.arguments) == {"q": "x"}
    assert tool.instructions == "Be brief."
    assert [r.body["input"] for r in server.requests] == ["hi", "hi"]


def test_responses_streamed(server):
    server.add_text("streaming is fun", usage=FakeUsage(input_tokens=20, output_tokens=8))

    async def scenario():
        async with make_client(server) as client:
            stream = await client.responses.create(model="fake-model", input="hi", stream=True)
            return [event async for event in stream]

    events = asyncio.run(scenario())

    types = [e.type for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["streaming ", "is ", "fun"]
    completed = events[-1].response
    assert completed.output_text == "streaming is fun"
    assert completed.usage.total_tokens == 28
    assert completed.usage.input_tokens_details.cached_tokens == 0
    assert completed.usage.output_tokens_details.reasoning_tokens == 0
    assert events[0].response.status == "in_progress"
    assert events[0].response.id == completed.id


def test_responses_streamed_tool_call(server):
    call_id = server.add_tool_call("lookup", {"q": "x" * 30})

    async def scenario():
        async with make_client(server) as client:
            stream = await client.responses.create(model="fake-model", input="hi", stream=True)
            return [event async for event in stream]

    events = asyncio.run(scenario())

    types = [e.type for e in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert "response.function_call_arguments.delta" in types
    assert types[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    (item,) = events[-1].response.output
    assert (item.type, item.call_id, json.loads(item.arguments)) == (
        "function_call",
        call_id,
        {"q": "x" * 30},
    )


def test_payloads_validate_strictly(server):
    """The client parses leniently; pydantic validation proves the payloads match the types."""
    server.add_text("plain chat")
    server.add_text("streamed chat")
    server.add_text("plain response")
    server.add_tool_call("lookup", {"q": "x"})
    server.add_text("streamed response")
    server.add_tool_call("lookup", {"q": "y"})

    status, raw = raw_post(server, "/chat/completions", {"model": "m", "messages": MESSAGES})
    assert status == 200
    ChatCompletion.model_validate_json(raw)

    _, raw = raw_post(
        server,
        "/chat/completions",
        {
            "model": "m",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    *chunks, done = sse_events(raw)
    assert done == (None, "[DONE]")
    for event, data in chunks:
        assert event is None
        ChatCompletionChunk.model_validate_json(data)

    adapter = TypeAdapter(ResponseStreamEvent)
    for _ in range(2):
        _, raw = raw_post(server, "/responses", {"model": "m", "input": "hi"})
        Response.model_validate_json(raw)
    for _ in range(2):
        _, raw = raw_post(server, "/responses", {"model": "m", "input": "hi", "stream": True})
        for event, data in sse_events(raw):
            parsed = adapter.validate_json(data)
            assert parsed.type == event
            if event == "response.completed":
                assert parsed.response.usage.total_tokens == 15


def test_error_then_success_with_one_retry(server):
    server.add_error(500, headers={"retry-after-ms": "10"})
    server.add_text("recovered")

    async def scenario():
        async with make_client(server, max_retries=1) as client:
            return await client.responses.create(model="fake-model", input="hi")

    response = asyncio.run(scenario())

    assert response.output_text == "recovered"
    first, second = server.requests
    assert first.headers["x-stainless-retry-count"] == "0"
    assert second.headers["x-stainless-retry-count"] == "1"
    assert first.body == second.body


@pytest.mark.parametrize(
    ("status", "exception", "code"),
    [
        (500, openai.InternalServerError, None),
        (429, openai.RateLimitError, "rate_limit_exceeded"),
        (400, openai.BadRequestError, None),
    ],
)
def test_error_step_is_answered_once(server, status, exception, code):
    server.add_error(status, message="scripted failure")

    async def scenario():
        async with make_client(server) as client:
            with pytest.raises(exception) as excinfo:
                await client.chat.completions.create(model="fake-model", messages=MESSAGES)
            after = await client.chat.completions.create(model="fake-model", messages=MESSAGES)
            return excinfo.value, after

    error, after = asyncio.run(scenario())

    assert error.status_code == status
    assert error.code == code
    assert error.body["message"] == "scripted failure"
    assert after.choices[0].message.content == "ok"


def test_custom_error_body(server):
    body = {"error": {"message": "nope", "type": "custom", "param": "x", "code": "c1"}}
    server.add_error(403, body=body)

    async def scenario():
        async with make_client(server) as client:
            with pytest.raises(openai.PermissionDeniedError) as excinfo:
                await client.responses.create(model="fake-model", input="hi")
            return excinfo.value

    error = asyncio.run(scenario())

    assert (error.type, error.code, error.param) == ("custom", "c1", "x")
    assert error.body["message"] == "nope"
    assert error.message == "Error code: 403 - nope"


def test_delay_provokes_client_timeout(server):
    server.add_delay(1.0)
    server.add_text("too late")

    async def scenario():
        async with make_client(server, timeout=0.5) as client:
            started = time.monotonic()
            with pytest.raises(openai.APITimeoutError):
                await client.chat.completions.create(model="fake-model", messages=MESSAGES)
            elapsed = time.monotonic() - started
            # The delayed request consumed the step after the delay; then back to the default.
            after = await client.chat.completions.create(model="fake-model", messages=MESSAGES)
            return elapsed, after

    elapsed, after = asyncio.run(scenario())

    assert elapsed < 0.9
    assert after.choices[0].message.content == "ok"
    timed_out = server.requests[0]
    assert wait_until(lambda: timed_out.disconnected)
    assert server.pending_steps == 0


def test_wrong_api_key_is_rejected(server):
    server.add_text("never sent")

    async def scenario():
        async with make_client(server, api_key="sk-wrong") as client:
            with pytest.raises(openai.AuthenticationError) as excinfo:
                await client.responses.create(model="fake-model", input="hi")
            return excinfo.value

    error = asyncio.run(scenario())

    assert error.status_code == 401
    assert error.code == "invalid_api_key"
    assert error.type == "invalid_request_error"
    assert server.requests[0].api_key == "sk-wrong"
    assert server.pending_steps == 1


def test_unknown_route_is_404(server):
    async def scenario():
        async with make_client(server) as client:
            with pytest.raises(openai.NotFoundError) as excinfo:
                await client.images.generate(model="fake-model", prompt="hi")
            return excinfo.value

    assert "Invalid URL (POST /v1/images/generations)" in asyncio.run(scenario()).message


def test_embeddings_are_deterministic_and_sized(server):
    async def scenario():
        async with make_client(server) as client:
            one = await client.embeddings.create(model="m", input=["a cat", "a dog"], dimensions=8)
            two = await client.embeddings.create(model="m", input="a cat")
            server.embedding_failures.append(500)
            with pytest.raises(openai.InternalServerError):
                await client.with_options(max_retries=0).embeddings.create(model="m", input="x")
            return one, two

    one, two = asyncio.run(scenario())
    assert [len(d.embedding) for d in one.data] == [8, 8]
    assert len(two.data[0].embedding) == server.embedding_dimensions
    assert one.data[0].embedding != one.data[1].embedding


def test_client_disconnect_mid_stream(server):
    server.add_text(" ".join(f"word{i}" for i in range(200)), chunk_delay=0.01)

    async def scenario():
        async with make_client(server) as client:
            stream = await client.responses.create(model="fake-model", input="hi", stream=True)
            received = []
            async for event in stream:
                received.append(event.type)
                if event.type == "response.output_text.delta":
                    break
            await stream.close()
            after = await client.responses.create(model="fake-model", input="hi")
            return received, after

    received, after = asyncio.run(scenario())

    assert received[-1] == "response.output_text.delta"
    assert after.output_text == "ok"
    assert wait_until(lambda: server.requests[0].disconnected)
    assert not server.requests[1].disconnected
    assert server.errors == []


def test_close_does_not_wait_for_idle_connections_or_delays():
    fake = FakeOpenAI()
    fake.add_delay(30)
    thread_error: list[BaseException] = []

    def slow_request():
        try:
            raw_post(fake, "/responses", {"model": "m", "input": "hi"})
        except OSError as exc:  # the server drops the connection on close
            thread_error.append(exc)

    worker = threading.Thread(target=slow_request)

    async def scenario():
        async with make_client(fake) as client:
            await client.models.list()  # its kept-alive connection now idles in the pool
            worker.start()
            assert await asyncio.to_thread(wait_until, lambda: len(fake.requests) == 2)
            started = time.monotonic()
            await asyncio.to_thread(fake.close)
            return time.monotonic() - started

    elapsed = asyncio.run(scenario())
    worker.join(timeout=5)
    fake.close()  # idempotent

    assert elapsed < 2
    assert not worker.is_alive()
    assert thread_error
    assert fake.requests[1].disconnected


# The Agents SDK -------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
@pytest.mark.parametrize("api", ["chat_completions", "responses"])
def test_agent_with_tool_end_to_end(server, api, streamed):
    set_tracing_disabled(True)
    call_id = server.add_tool_call(
        "get_weather",
        {"city": "Paris"},
        usage=FakeUsage(input_tokens=11, output_tokens=3, cached_tokens=4, reasoning_tokens=2),
    )
    server.add_text("It is sunny in Paris.", usage=FakeUsage(input_tokens=30, output_tokens=6))
    tool_calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Return the weather of a city."""
        tool_calls.append(city)
        return f"sunny in {city}"

    async def scenario():
        async with make_client(server) as client:
            if api == "responses":
                model = OpenAIResponsesModel(model="fake-model", openai_client=client)
                settings = ModelSettings()
            else:
                model = OpenAIChatCompletionsModel(model="fake-model", openai_client=client)
                # The SDK asks a non-OpenAI base URL for streamed usage only when told to.
                settings = ModelSettings(include_usage=True)
            agent = Agent(
                name="assistant",
                instructions="Be brief.",
                model=model,
                model_settings=settings,
                tools=[get_weather],
            )
            if not streamed:
                return await Runner.run(agent, "hi"), []
            result = Runner.run_streamed(agent, "hi")
            return result, [event async for event in result.stream_events()]

    result, events = asyncio.run(scenario())

    assert result.final_output == "It is sunny in Paris."
    assert tool_calls == ["Paris"]
    usage = result.context_wrapper.usage
    assert usage.requests == 2
    assert usage.input_tokens == 41
    assert usage.output_tokens == 9
    assert usage.total_tokens == 50
    assert usage.input_tokens_details.cached_tokens == 4
    assert usage.output_tokens_details.reasoning_tokens == 2

    first, second = server.model_requests()
    assert first.api_key == second.api_key == API_KEY
    assert bool(first.body.get("stream")) is streamed
    if api == "responses":
        assert first.path == "/v1/responses"
        assert [t["name"] for t in first.body["tools"]] == ["get_weather"]
        assert first.body["instructions"] == "Be brief."
        outputs = [i for i in second.body["input"] if i.get("type") == "function_call_output"]
        assert outputs == [
            {"type": "function_call_output", "call_id": call_id, "output": "sunny in Paris"}
        ]
    else:
        assert first.path == "/v1/chat/completions"
        assert [t["function"]["name"] for t in first.body["tools"]] == ["get_weather"]
        if streamed:
            assert first.body["stream_options"] == {"include_usage": True}
        tool_messages = [m for m in second.body["messages"] if m["role"] == "tool"]
        assert tool_messages == [
            {"role": "tool", "tool_call_id": call_id, "content": "sunny in Paris"}
        ]

    if streamed:
        item_types = [e.item.type for e in events if e.type == "run_item_stream_event"]
        assert item_types == ["tool_call_item", "tool_call_output_item", "message_output_item"]
        deltas = [
            e.data.delta
            for e in events
            if e.type == "raw_response_event" and e.data.type == "response.output_text.delta"
        ]
        assert "".join(deltas) == "It is sunny in Paris."
        assert len(deltas) == 5
