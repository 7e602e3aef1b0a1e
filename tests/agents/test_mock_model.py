"""The offline mock model, driven through the real OpenAI Agents SDK runner."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
from typing import Any, Literal

import pytest
from agents import (
    Agent,
    FunctionTool,
    ModelSettings,
    RunConfig,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from agents.agent_output import AgentOutputSchemaBase
from agents.exceptions import UserError
from agents.items import MessageOutputItem, ToolCallItem, ToolCallOutputItem
from agents.models.interface import ModelTracing
from agents.result import RunResult, RunResultStreaming
from openai.types.responses import ResponseFunctionToolCall, ResponseTextDeltaEvent
from pydantic import BaseModel
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from agentdeck.agents.runtime.mock_model import MOCK_MODELS, MockModel, MockModelProvider

set_tracing_disabled(True)


def make_calculator(calls: list[str]) -> FunctionTool:
    @function_tool
    def calculator(expression: str) -> str:
        """Add up a sum such as "2+2".

        Args:
            expression: Numbers joined by "+".
        """
        calls.append(expression)
        return str(sum(int(term) for term in expression.split("+")))

    return calculator


@function_tool
def weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city.
    """
    return f"sunny in {city}"


def run(agent: Agent[Any], input: str | list[Any], **kwargs: Any) -> RunResult:
    return asyncio.run(Runner.run(agent, input, **kwargs))


def run_streamed(
    agent: Agent[Any], input: str | list[Any], **kwargs: Any
) -> tuple[RunResultStreaming, list[Any]]:
    async def go() -> tuple[RunResultStreaming, list[Any]]:
        result = Runner.run_streamed(agent, input, **kwargs)
        events = [event async for event in result.stream_events()]
        return result, events

    return asyncio.run(go())


def text_deltas(events: list[Any]) -> list[str]:
    return [
        event.data.delta
        for event in events
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent)
    ]


def call_ids(result: RunResult | RunResultStreaming) -> list[str]:
    return [
        item.call_id
        for response in result.raw_responses
        for item in response.output
        if isinstance(item, ResponseFunctionToolCall)
    ]


# --- echo ---------------------------------------------------------------------------------


def test_echo() -> None:
    agent = Agent(name="echo", instructions="Be brief.", model=MockModel())
    result = run(agent, "hello there")
    assert result.final_output == "Echo: hello there"
    assert [type(item) for item in result.new_items] == [MessageOutputItem]


def test_echo_takes_the_latest_user_message_from_item_input() -> None:
    agent = Agent(name="echo", model=MockModel())
    result = run(
        agent,
        [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "Echo: first question"},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "second"},
                    {"type": "input_text", "text": "part"},
                ],
            },
        ],
    )
    assert result.final_output == "Echo: second\npart"


def test_a_tool_name_without_json_arguments_is_echoed() -> None:
    agent = Agent(name="calc", model=MockModel(), tools=[make_calculator([])])
    assert run(agent, "what can the calculator do?").final_output == (
        "Echo: what can the calculator do?"
    )
    assert run(agent, "calculator {not json").final_output == "Echo: calculator {not json"
    # The name must stand on its own, not be part of a longer word.
    assert run(agent, 'mycalculator {"expression": "1+1"}').final_output.startswith("Echo:")


# --- tools --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    ['use calculator {"expression": "2+2"}', 'calculator {"expression": "2+2"}'],
)
def test_tool_call_then_summary(prompt: str) -> None:
    calls: list[str] = []
    agent = Agent(name="calc", model=MockModel(), tools=[make_calculator(calls)])
    result = run(agent, prompt)

    assert calls == ["2+2"]  # the real tool ran, with the JSON arguments
    assert result.final_output == "calculator returned: 4"
    assert [type(item) for item in result.new_items] == [
        ToolCallItem,
        ToolCallOutputItem,
        MessageOutputItem,
    ]
    call = result.new_items[0].raw_item
    assert isinstance(call, ResponseFunctionToolCall)
    assert call.name == "calculator"
    assert json.loads(call.arguments) == {"expression": "2+2"}
    assert call.call_id.startswith("call_")
    assert len(result.raw_responses) == 2


def test_several_tools_named_in_one_message_are_called_together() -> None:
    calls: list[str] = []
    agent = Agent(name="multi", model=MockModel(), tools=[make_calculator(calls), weather])
    result = run(agent, 'weather {"city": "Oslo"} and then calculator {"expression": "1+2"}')

    assert calls == ["1+2"]
    assert result.final_output == "weather returned: sunny in Oslo\ncalculator returned: 3"
    first = [item.name for item in result.raw_responses[0].output]
    assert first == ["weather", "calculator"]
    assert len(set(call_ids(result))) == 2


def test_parallel_tool_calls_false_calls_one_tool_per_response() -> None:
    agent = Agent(
        name="multi",
        model=MockModel(),
        tools=[make_calculator([]), weather],
        model_settings=ModelSettings(parallel_tool_calls=False),
    )
    result = run(agent, 'weather {"city": "Oslo"} calculator {"expression": "1+2"}')
    assert [item.name for item in result.raw_responses[0].output] == ["weather"]
    # The next response sees a tool result, so it summarises instead of calling the second tool.
    assert result.final_output == "weather returned: sunny in Oslo"


def test_tool_choice_none_echoes() -> None:
    calls: list[str] = []
    agent = Agent(
        name="calc",
        model=MockModel(),
        tools=[make_calculator(calls)],
        model_settings=ModelSettings(tool_choice="none"),
    )
    result = run(agent, 'calculator {"expression": "2+2"}')
    assert calls == []
    assert result.final_output == 'Echo: calculator {"expression": "2+2"}'


def test_tool_error_is_summarised() -> None:
    agent = Agent(name="calc", model=MockModel(), tools=[make_calculator([])])
    result = run(agent, 'calculator {"expression": "two"}')
    assert result.final_output.startswith("calculator returned: An error occurred")


def test_the_same_request_later_in_a_conversation_gets_a_new_call_id() -> None:
    calls: list[str] = []
    agent = Agent(name="calc", model=MockModel(), tools=[make_calculator(calls)])
    prompt = 'calculator {"expression": "2+2"}'
    first = run(agent, prompt)
    second = run(agent, [*first.to_input_list(), {"role": "user", "content": prompt}])

    assert second.final_output == "calculator returned: 4"
    assert calls == ["2+2", "2+2"]
    assert call_ids(first)[0] != call_ids(second)[0]


# --- streaming ----------------------------------------------------------------------------


def test_streamed_deltas_concatenate_to_the_final_output() -> None:
    agent = Agent(name="echo", model=MockModel())
    result, events = run_streamed(agent, "  stream   these words\nplease ")

    deltas = text_deltas(events)
    assert result.final_output == "Echo:   stream   these words\nplease "
    assert "".join(deltas) == result.final_output
    assert deltas == ["Echo:   ", "stream   ", "these ", "words\n", "please "]

    raw_types = [event.data.type for event in events if event.type == "raw_response_event"]
    assert raw_types[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert raw_types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    sequence_numbers = [
        event.data.sequence_number for event in events if event.type == "raw_response_event"
    ]
    assert sequence_numbers == list(range(len(sequence_numbers)))
    completed = next(
        event.data
        for event in events
        if event.type == "raw_response_event" and event.data.type == "response.completed"
    )
    assert completed.response.usage.output_tokens == 5
    run_item_names = [event.name for event in events if event.type == "run_item_stream_event"]
    assert run_item_names == ["message_output_created"]


def test_streamed_tool_call() -> None:
    calls: list[str] = []
    agent = Agent(name="calc", model=MockModel(), tools=[make_calculator(calls)])
    result, events = run_streamed(agent, 'use calculator {"expression": "3+4"}')

    assert calls == ["3+4"]
    assert result.final_output == "calculator returned: 7"
    assert "".join(text_deltas(events)) == result.final_output
    run_item_names = [event.name for event in events if event.type == "run_item_stream_event"]
    assert run_item_names == ["tool_called", "tool_output", "message_output_created"]
    raw_types = [event.data.type for event in events if event.type == "raw_response_event"]
    first_response = raw_types[: raw_types.index("response.completed") + 1]
    assert first_response == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_streamed_and_non_streamed_runs_agree() -> None:
    agent = Agent(name="calc", model=MockModel(), tools=[make_calculator([])])
    prompt = 'calculator {"expression": "2+5"}'
    plain = run(agent, prompt)
    streamed, _ = run_streamed(agent, prompt)
    assert streamed.final_output == plain.final_output
    assert call_ids(streamed) == call_ids(plain)
    assert [r.response_id for r in streamed.raw_responses] == [
        r.response_id for r in plain.raw_responses
    ]
    assert streamed.context_wrapper.usage.input_tokens == plain.context_wrapper.usage.input_tokens
    assert streamed.context_wrapper.usage.output_tokens == plain.context_wrapper.usage.output_tokens


def test_delay_per_token_sleeps_before_each_delta(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float, result: Any = None) -> Any:
        sleeps.append(delay)
        return await real_sleep(0, result)

    monkeypatch.setattr("agentdeck.agents.runtime.mock_model.model.asyncio.sleep", fake_sleep)
    agent = Agent(name="echo", model=MockModel(delay_per_token=0.25))
    _, events = run_streamed(agent, "one two three")
    assert len(text_deltas(events)) == 4
    assert sleeps.count(0.25) == 4

    sleeps.clear()
    run_streamed(Agent(name="echo", model=MockModel()), "one two three")
    assert 0.25 not in sleeps

    with pytest.raises(ValueError, match="negative"):
        MockModel(delay_per_token=-1)


# --- structured output --------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    street: str
    number: int


class Report(BaseModel):
    summary: str
    score: float
    count: int
    ok: bool
    tags: list[str]
    colour: Colour
    mood: Literal["calm", "busy"]
    address: Address
    note: str | None


def test_structured_output_with_a_pydantic_model() -> None:
    agent = Agent(name="report", model=MockModel(), output_type=Report)
    result = run(agent, "status please")
    assert result.final_output == Report(
        summary="Echo: status please",
        score=0,
        count=0,
        ok=False,
        tags=[],
        colour=Colour.RED,
        mood="calm",
        address=Address(street="Echo: status please", number=0),
        note="Echo: status please",
    )


@dataclasses.dataclass
class Point:
    label: str
    x: int
    y: float


class Movie(TypedDict):
    title: str
    year: int


def test_structured_output_with_a_dataclass_a_typeddict_and_a_wrapped_type() -> None:
    point = run(Agent(name="p", model=MockModel(), output_type=Point), "where").final_output
    assert point == Point(label="Echo: where", x=0, y=0.0)

    movie = run(Agent(name="m", model=MockModel(), output_type=Movie), "film").final_output
    assert movie == {"title": "Echo: film", "year": 0}

    # Non-object output types are wrapped in {"response": ...} by the SDK.
    names = run(Agent(name="l", model=MockModel(), output_type=list[str]), "list").final_output
    assert names == []


def test_structured_output_wraps_a_tool_summary() -> None:
    class Answer(BaseModel):
        text: str

    agent = Agent(name="calc", model=MockModel(), tools=[make_calculator([])], output_type=Answer)
    result = run(agent, 'calculator {"expression": "2+2"}')
    assert result.final_output == Answer(text="calculator returned: 4")


def test_structured_output_streamed() -> None:
    agent = Agent(name="point", model=MockModel(), output_type=Point)
    result, events = run_streamed(agent, "here")
    assert result.final_output == Point(label="Echo: here", x=0, y=0.0)
    # The SDK wraps dataclass output types in {"response": ...}.
    assert json.loads("".join(text_deltas(events))) == {
        "response": {"label": "Echo: here", "x": 0, "y": 0}
    }


class JsonSchemaOutput(AgentOutputSchemaBase):
    """A user-written (non-strict) JSON Schema, validated with jsonschema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        from jsonschema import Draft202012Validator

        self.schema = schema
        self.validator = Draft202012Validator(
            schema, format_checker=Draft202012Validator.FORMAT_CHECKER
        )

    def is_plain_text(self) -> bool:
        return False

    def name(self) -> str:
        return "output"

    def json_schema(self) -> dict[str, Any]:
        return self.schema

    def is_strict_json_schema(self) -> bool:
        return False

    def validate_json(self, json_str: str) -> Any:
        value = json.loads(json_str)
        self.validator.validate(value)
        return value


def test_structured_output_with_a_hand_written_json_schema() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["id", "when", "code", "short", "rating", "ratio", "items", "pair", "kind"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "when": {"type": "string", "format": "date-time"},
            "code": {"type": "string", "minLength": 40},
            "short": {"type": "string", "maxLength": 4},
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "items": {"type": "array", "minItems": 2, "items": {"$ref": "#/$defs/item"}},
            "pair": {"type": "array", "prefixItems": [{"type": "boolean"}, {"const": 7}]},
            "kind": {"type": ["null", "string"], "enum": ["a", "b"]},
            "optional": {"type": "string"},
        },
        "$defs": {
            "item": {
                "type": "object",
                "required": ["name", "child"],
                "properties": {
                    "name": {"type": "string"},
                    # Recursive: the null branch ends the recursion.
                    "child": {"anyOf": [{"$ref": "#/$defs/item"}, {"type": "null"}]},
                },
            }
        },
    }
    agent = Agent(name="custom", model=MockModel(), output_type=JsonSchemaOutput(schema))
    value = run(agent, "go").final_output
    assert value == {
        "id": "00000000-0000-0000-0000-000000000000",
        "when": "1970-01-01T00:00:00Z",
        "code": "Echo: go" + "." * 32,
        "short": "Echo",
        "rating": 1,
        "ratio": 0.5,
        "items": [{"name": "Echo: go", "child": None}, {"name": "Echo: go", "child": None}],
        "pair": [False, 7],
        "kind": "a",
    }


# --- handoffs -----------------------------------------------------------------------------


def test_handoff_to_a_second_agent() -> None:
    billing = Agent(name="Billing", instructions="Handle billing.", model=MockModel())
    triage = Agent(name="Triage", model=MockModel(), handoffs=[billing])

    result = run(triage, "please transfer_to_billing {}")
    assert result.last_agent is billing
    # The receiving agent answers the user message; the transfer is not a tool result.
    assert result.final_output == "Echo: please transfer_to_billing {}"
    assert [item.type for item in result.new_items] == [
        "handoff_call_item",
        "handoff_output_item",
        "message_output_item",
    ]

    streamed, events = run_streamed(triage, "please transfer_to_billing {}")
    assert streamed.last_agent is billing
    assert streamed.final_output == result.final_output
    assert any(event.type == "agent_updated_stream_event" for event in events)


def test_handoff_then_the_second_agents_tool() -> None:
    calls: list[str] = []
    maths = Agent(name="Maths", model=MockModel(), tools=[make_calculator(calls)])
    triage = Agent(name="Triage", model=MockModel(), handoffs=[maths])

    result = run(triage, 'transfer_to_maths {} then calculator {"expression": "5+5"}')
    assert result.last_agent is maths
    assert calls == ["5+5"]
    assert result.final_output == "calculator returned: 10"


# --- usage --------------------------------------------------------------------------------


def test_usage_counts_words() -> None:
    agent = Agent(name="echo", instructions="Many words that are not counted.", model=MockModel())
    usage = run(agent, "hello big  world").context_wrapper.usage
    assert usage.requests == 1
    assert usage.input_tokens == 3
    assert usage.output_tokens == 4  # "Echo: hello big  world"
    assert usage.total_tokens == 7
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0

    # Empty input still counts one token.
    assert run(agent, "").context_wrapper.usage.input_tokens == 1


@pytest.mark.parametrize("streamed", [False, True])
def test_usage_across_a_tool_call(streamed: bool) -> None:
    agent = Agent(name="calc", model=MockModel(), tools=[make_calculator([])])
    prompt = 'calculator {"expression": "2+2"}'  # 3 words
    result = run_streamed(agent, prompt)[0] if streamed else run(agent, prompt)

    first, second = (response.usage for response in result.raw_responses)
    # Reply 1 is the call: name + compact arguments 'calculator {"expression":"2+2"}'.
    assert (first.requests, first.input_tokens, first.output_tokens) == (1, 3, 2)
    # Input 2 = the message (3) + the call (2) + its output "4" (1); reply "calculator returned: 4".
    assert (second.requests, second.input_tokens, second.output_tokens) == (1, 6, 3)
    total = result.context_wrapper.usage
    assert (total.requests, total.input_tokens, total.output_tokens) == (2, 9, 5)
    assert total.total_tokens == 14


# --- determinism --------------------------------------------------------------------------


def test_same_input_same_output_and_ids() -> None:
    def once() -> RunResult:
        agent = Agent(
            name="calc", model=MockModel(), tools=[make_calculator([]), weather], output_type=None
        )
        return run(agent, 'weather {"city": "Rome"} calculator {"expression": "1+1"}')

    first, second = once(), once()
    assert first.final_output == second.final_output
    assert call_ids(first) == call_ids(second)
    assert len(call_ids(first)) == 2
    assert [r.response_id for r in first.raw_responses] == [
        r.response_id for r in second.raw_responses
    ]
    assert [r.usage for r in first.raw_responses] == [r.usage for r in second.raw_responses]
    assert [item.raw_item for item in first.new_items] == [
        item.raw_item for item in second.new_items
    ]


def test_get_response_directly_is_deterministic() -> None:
    model = MockModel()

    async def respond(text: str) -> Any:
        return await model.get_response(
            None,
            text,
            ModelSettings(),
            [],
            None,
            [],
            ModelTracing.DISABLED,
            previous_response_id=None,
            conversation_id=None,
            prompt=None,
        )

    one, two, other = (asyncio.run(respond(text)) for text in ("hi", "hi", "ho"))
    assert one.output == two.output
    assert one.response_id == two.response_id
    assert one.response_id != other.response_id


# --- provider -----------------------------------------------------------------------------


def test_provider() -> None:
    assert MOCK_MODELS == ["mock-echo"]
    provider = MockModelProvider(delay_per_token=0.5)
    assert provider.models == MOCK_MODELS

    model = provider.get_model("mock-echo")
    assert isinstance(model, MockModel)
    assert model.model == "mock-echo"
    assert model.delay_per_token == 0.5
    assert provider.get_model(None) is model
    with pytest.raises(UserError, match="gpt-4o"):
        provider.get_model("gpt-4o")


def test_provider_through_run_config() -> None:
    agent = Agent(name="echo", model="mock-echo")
    result = run(agent, "via provider", run_config=RunConfig(model_provider=MockModelProvider()))
    assert result.final_output == "Echo: via provider"


def test_an_output_schema_without_a_finite_instance_is_a_user_error() -> None:
    schema = {
        "type": "object",
        "required": ["next"],
        "properties": {"next": {"$ref": "#"}},
    }
    agent = Agent(name="loop", model=MockModel(), output_type=JsonSchemaOutput(schema))
    with pytest.raises(UserError, match="finite instance"):
        run(agent, "go")


@pytest.mark.parametrize("tracing", list(ModelTracing))
def test_get_response_with_tracing_modes(tracing: ModelTracing) -> None:
    async def respond() -> Any:
        return await MockModel().get_response(
            "instructions",
            [{"role": "user", "content": "traced"}],
            ModelSettings(),
            [],
            None,
            [],
            tracing,
            previous_response_id=None,
            conversation_id=None,
            prompt=None,
        )

    response = asyncio.run(respond())
    assert response.output[0].content[0].text == "Echo: traced"
