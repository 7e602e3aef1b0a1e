"""``MockModel`` and ``MockModelProvider``: the mock reply put through the SDK's ``Model``
interface, as one response or as the Responses-API stream events OpenAI would send."""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from agents.agent_output import AgentOutputSchemaBase
from agents.exceptions import UserError
from agents.handoffs import Handoff
from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.models.interface import Model, ModelProvider, ModelTracing
from agents.tool import Tool
from agents.tracing import generation_span
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam
from openai.types.responses.response_usage import OutputTokensDetails

from agentdeck.agents.runtime.mock_model.reply import (
    Reply,
    ReplyBuilder,
    input_tokens_details,
    to_plain,
)

if TYPE_CHECKING:
    from agents.model_settings import ModelSettings

MOCK_MODELS: list[str] = ["mock-echo"]
"""The model names the mock provider serves."""

DEFAULT_MOCK_MODEL = MOCK_MODELS[0]


def _response_usage(usage: Usage) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        input_tokens_details=input_tokens_details(),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
    )


def _split_deltas(text: str) -> list[str]:
    """One chunk per word, each keeping the whitespace after it; leading whitespace is its own
    chunk. The chunks join up to ``text``."""
    return [chunk for chunk in re.split(r"(?<=\s)(?=\S)", text) if chunk]


class MockModel(Model):
    """A deterministic, offline model; docs/mock_model.md says how it answers.

    Args:
        model: The model name it reports (``mock-echo``).
        delay_per_token: Seconds to sleep before each streamed delta (0 = no delay).
    """

    def __init__(self, model: str = DEFAULT_MOCK_MODEL, *, delay_per_token: float = 0.0) -> None:
        if delay_per_token < 0:
            raise ValueError("delay_per_token must not be negative.")
        self.model = model
        self.delay_per_token = float(delay_per_token)

    def __repr__(self) -> str:
        return f"MockModel(model={self.model!r}, delay_per_token={self.delay_per_token!r})"

    def _reply(
        self,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
    ) -> Reply:
        return ReplyBuilder(
            self.model, input, model_settings, tools, output_schema, handoffs
        ).build()

    def _span_data(
        self,
        span: Any,
        input: str | list[TResponseInputItem],
        reply: Reply,
        tracing: ModelTracing,
    ) -> None:
        data = span.span_data
        data.model = self.model
        data.usage = {
            "requests": 1,
            "input_tokens": reply.usage.input_tokens,
            "output_tokens": reply.usage.output_tokens,
        }
        if tracing.include_data():
            items = [{"role": "user", "content": input}] if isinstance(input, str) else input
            data.input = [to_plain(item) for item in items]
            data.output = [item.model_dump(mode="json", exclude_none=True) for item in reply.output]

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        with generation_span(model=self.model, disabled=tracing.is_disabled()) as span:
            reply = self._reply(input, model_settings, tools, output_schema, handoffs)
            self._span_data(span, input, reply, tracing)
        return ModelResponse(
            output=reply.output,
            usage=copy.deepcopy(reply.usage),
            response_id=reply.response_id,
        )

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        # Not made the current span: an async generator's context is not the caller's.
        span = generation_span(model=self.model, disabled=tracing.is_disabled())
        span.start(mark_as_current=False)
        try:
            reply = self._reply(input, model_settings, tools, output_schema, handoffs)
            self._span_data(span, input, reply, tracing)
            async for event in self._events(reply):
                yield event
        finally:
            span.finish(reset_current=False)

    async def _events(self, reply: Reply) -> AsyncIterator[TResponseStreamEvent]:
        response = Response(
            id=reply.response_id,
            created_at=0,
            model=self.model,
            object="response",
            output=list(reply.output),
            tool_choice="auto",
            tools=[],
            top_p=None,
            parallel_tool_calls=True,
            status="completed",
            usage=_response_usage(reply.usage),
        )
        pending = response.model_copy(update={"output": [], "status": "in_progress", "usage": None})
        sequence = 0

        def number() -> int:
            nonlocal sequence
            sequence += 1
            return sequence - 1

        yield ResponseCreatedEvent(
            type="response.created", response=pending.model_copy(), sequence_number=number()
        )
        yield ResponseInProgressEvent(
            type="response.in_progress", response=pending.model_copy(), sequence_number=number()
        )
        for output_index, item in enumerate(reply.output):
            if isinstance(item, ResponseOutputMessage):
                async for event in self._message_events(item, output_index, number):
                    yield event
            elif isinstance(item, ResponseFunctionToolCall):
                async for event in self._call_events(item, output_index, number):
                    yield event
        yield ResponseCompletedEvent(
            type="response.completed", response=response, sequence_number=number()
        )

    async def _sleep(self) -> None:
        if self.delay_per_token > 0:
            await asyncio.sleep(self.delay_per_token)

    async def _message_events(
        self, item: ResponseOutputMessage, output_index: int, number: Callable[[], int]
    ) -> AsyncIterator[TResponseStreamEvent]:
        yield ResponseOutputItemAddedEvent(
            type="response.output_item.added",
            item=item.model_copy(update={"content": [], "status": "in_progress"}),
            output_index=output_index,
            sequence_number=number(),
        )
        for content_index, part in enumerate(item.content):
            if not isinstance(part, ResponseOutputText):
                continue
            yield ResponseContentPartAddedEvent(
                type="response.content_part.added",
                item_id=item.id,
                output_index=output_index,
                content_index=content_index,
                part=part.model_copy(update={"text": "", "annotations": [], "logprobs": []}),
                sequence_number=number(),
            )
            for delta in _split_deltas(part.text):
                await self._sleep()
                yield ResponseTextDeltaEvent(
                    type="response.output_text.delta",
                    item_id=item.id,
                    output_index=output_index,
                    content_index=content_index,
                    delta=delta,
                    logprobs=[],
                    sequence_number=number(),
                )
            yield ResponseTextDoneEvent(
                type="response.output_text.done",
                item_id=item.id,
                output_index=output_index,
                content_index=content_index,
                text=part.text,
                logprobs=[],
                sequence_number=number(),
            )
            yield ResponseContentPartDoneEvent(
                type="response.content_part.done",
                item_id=item.id,
                output_index=output_index,
                content_index=content_index,
                part=part.model_copy(),
                sequence_number=number(),
            )
        yield ResponseOutputItemDoneEvent(
            type="response.output_item.done",
            item=item.model_copy(deep=True),
            output_index=output_index,
            sequence_number=number(),
        )

    async def _call_events(
        self, item: ResponseFunctionToolCall, output_index: int, number: Callable[[], int]
    ) -> AsyncIterator[TResponseStreamEvent]:
        item_id = item.id or item.call_id
        yield ResponseOutputItemAddedEvent(
            type="response.output_item.added",
            item=item.model_copy(update={"arguments": "", "status": "in_progress"}),
            output_index=output_index,
            sequence_number=number(),
        )
        await self._sleep()
        yield ResponseFunctionCallArgumentsDeltaEvent(
            type="response.function_call_arguments.delta",
            item_id=item_id,
            output_index=output_index,
            delta=item.arguments,
            sequence_number=number(),
        )
        # model_validate: ``name`` is a field in some openai releases and an extra in others.
        yield ResponseFunctionCallArgumentsDoneEvent.model_validate(
            {
                "type": "response.function_call_arguments.done",
                "item_id": item_id,
                "output_index": output_index,
                "name": item.name,
                "arguments": item.arguments,
                "sequence_number": number(),
            }
        )
        yield ResponseOutputItemDoneEvent(
            type="response.output_item.done",
            item=item.model_copy(deep=True),
            output_index=output_index,
            sequence_number=number(),
        )


class MockModelProvider(ModelProvider):
    """Serves ``MockModel`` for the names in ``MOCK_MODELS`` (and for no name at all).

    Args:
        delay_per_token: Passed to every ``MockModel`` it creates.
    """

    def __init__(self, *, delay_per_token: float = 0.0) -> None:
        self.delay_per_token = delay_per_token
        self._models: dict[str, MockModel] = {}

    @property
    def models(self) -> list[str]:
        """The model names this provider serves."""
        return list(MOCK_MODELS)

    def get_model(self, model_name: str | None) -> Model:
        name = model_name or DEFAULT_MOCK_MODEL
        if name not in MOCK_MODELS:
            raise UserError(
                f"The mock provider has no model {name!r}; it serves {', '.join(MOCK_MODELS)}."
            )
        if name not in self._models:
            self._models[name] = MockModel(name, delay_per_token=self.delay_per_token)
        return self._models[name]
