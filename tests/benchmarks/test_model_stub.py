"""benchmarks/model_stub.py, the model of benchmarks/concurrency.py, driven by the real ``openai``
client and the Agents SDK (no database): the two-turn tool conversation both sides of the
benchmark run, and many calls waiting at once on one connection each."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import openai
from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, set_tracing_disabled

from agentdeck.agents.runtime.tools import calculator
from benchmarks.model_stub import MODEL, Stub


@contextlib.asynccontextmanager
async def running_stub(latency: float = 0.0) -> AsyncIterator[tuple[Stub, str]]:
    stub = Stub(latency)
    server = await asyncio.start_server(stub.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield stub, f"http://127.0.0.1:{port}/v1"


def test_a_streamed_run_calls_the_tool_then_answers_with_its_result():
    set_tracing_disabled(True)

    async def scenario():
        async with running_stub() as (stub, base_url):
            client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
            agent = Agent(
                name="bench",
                model=OpenAIChatCompletionsModel(model=MODEL, openai_client=client),
                tools=[calculator],
                model_settings=ModelSettings(include_usage=True),
            )
            result = Runner.run_streamed(agent, 'calculator {"expression": "2+2"}')
            kinds = [event.type async for event in result.stream_events()]
            await client.close()
            return result, kinds, stub.stats

    result, kinds, stats = asyncio.run(scenario())
    assert result.final_output == "calculator returned: 4"
    assert "run_item_stream_event" in kinds
    # Two model calls, each reporting 10 + 5 tokens in the stream's last chunk.
    assert stats.calls == 2
    assert result.context_wrapper.usage.requests == 2
    assert result.context_wrapper.usage.total_tokens == 30


def test_calls_wait_their_latency_all_at_once_and_plain_json_is_answered_too():
    async def scenario():
        async with running_stub(latency=1.0) as (stub, base_url):
            client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
            started = asyncio.get_running_loop().time()
            answers = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model=MODEL, messages=[{"role": "user", "content": f"hello {i}"}]
                    )
                    for i in range(100)
                )
            )
            elapsed = asyncio.get_running_loop().time() - started
            await client.close()
            return answers, elapsed, stub.stats

    answers, elapsed, stats = asyncio.run(scenario())
    assert [a.choices[0].message.content for a in answers] == [
        f"Echo: hello {i}" for i in range(100)
    ]
    assert stats.max_in_flight == 100
    assert 1.0 <= elapsed < 10
