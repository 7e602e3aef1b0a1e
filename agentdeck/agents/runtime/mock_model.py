"""The offline ``mock`` model provider: a deterministic model for demos and tests.

It needs no API key and makes no network calls. It plugs into the OpenAI Agents SDK as an
ordinary model (``MockModel``) and provider (``MockModelProvider``, reporting ``MOCK_MODELS``),
so runs, tool calls, handoffs, structured output, streaming and usage accounting all go through
the real SDK machinery. Every answer is a pure function of the input: the same input always gives
the same reply, ids and usage.

How it answers, looking at the latest user message (the string input, or the last
``{"role": "user"}`` item; its text, or its ``input_text`` parts joined by newlines):

1. **Tool calls.** If the message names a tool the agent has, directly followed by a JSON object,
   the model calls that tool with that object as its arguments, e.g.
   ``use calculator {"expression": "2+2"}`` or just ``calculator {"expression": "2+2"}``.
   Handoffs are called the same way by their tool name, e.g. ``transfer_to_billing {}``.
   Several tools named in one message are called together, in the order they appear (only the
   first one when the agent's model settings set ``parallel_tool_calls=False``; none when they
   set ``tool_choice="none"``). This only happens while no tool has answered since that user
   message; a call already made since then (with the same arguments) is not repeated.
2. **Tool results.** Once tools have answered since the latest user message, the model replies
   with one line per result: ``<tool name> returned: <output>``. Handoff transfers are not tool
   results: the agent receiving a handoff answers the user message itself (echoing it, or calling
   its own tools named in it).
3. **Echo.** Otherwise it replies ``Echo: <message text>``.
4. **Structured output.** When the agent has an output type (a JSON Schema), the reply above
   becomes a JSON document that is a minimal valid instance of that schema: strings are the
   reply text, numbers and integers 0, booleans false, arrays empty, objects carry their required
   properties (recursively), enums and consts their first value, ``anyOf``/``oneOf`` the first
   branch. Length, item-count, range and common ``format`` constraints are honoured; regular
   expression ``pattern`` constraints are not.

Usage is counted in whitespace-separated words, not real tokens: ``input_tokens`` is the number
of words in all the input items' text (message text, tool-call names and arguments, tool outputs;
not the agent's instructions), ``output_tokens`` the number of words in the reply (for a tool
call: its name and arguments), each at least 1; ``requests`` is 1, cached and reasoning tokens 0.

Streaming (``Runner.run_streamed``) emits the same Responses-API events as OpenAI does: for text,
one ``response.output_text.delta`` per word (keeping the whitespace after it, so the deltas join
up to the full text); for tool calls, the function-call item and its arguments. Pass
``delay_per_token`` (seconds) to sleep before each delta, so a demo shows the text appearing.

Ids are derived from hashes of the content: a tool call's ``call_id`` from the tool name, the
arguments and the call's position in the conversation (so the same request later in a
conversation gets a new id).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import math
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from agents.agent_output import AgentOutputSchemaBase
from agents.exceptions import UserError
from agents.handoffs import Handoff
from agents.items import (
    ModelResponse,
    TResponseInputItem,
    TResponseOutputItem,
    TResponseStreamEvent,
)
from agents.models.interface import Model, ModelProvider, ModelTracing
from agents.tool import FunctionTool, Tool
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
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

if TYPE_CHECKING:
    from agents.model_settings import ModelSettings

__all__ = ["MOCK_MODELS", "MockModel", "MockModelProvider"]

MOCK_MODELS: list[str] = ["mock-echo"]
"""The model names the mock provider serves."""

DEFAULT_MOCK_MODEL = MOCK_MODELS[0]

_JSON = json.JSONDecoder()


# --------------------------------------------------------------------------------------------
# Reading the input
# --------------------------------------------------------------------------------------------


def _field(item: Any, key: str) -> Any:
    """A field of an input item, which is normally a dict but may be a pydantic model."""
    if isinstance(item, Mapping):
        return item.get(key)
    return getattr(item, key, None)


def _content_text(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts with ``text``/``refusal``."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
                continue
            text = _field(part, "text")
            if not isinstance(text, str):
                text = _field(part, "refusal")
            if isinstance(text, str):
                texts.append(text)
        return "\n".join(texts)
    return str(content)


def _output_text(output: Any) -> str:
    """A tool output (``function_call_output.output``) as text."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, Sequence):
        texts: list[str] = []
        for part in output:
            text = _field(part, "text")
            if isinstance(text, str):
                texts.append(text)
            else:
                texts.append(_to_json(part))
        return "\n".join(texts)
    return _to_json(output)


def _to_json(value: Any) -> str:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump(mode="json", exclude_none=True)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _is_user_message(item: Any) -> bool:
    return _field(item, "role") == "user" and _field(item, "type") in (None, "message")


def _item_text(item: Any) -> str:
    """The words an input item contributes to the input token count."""
    item_type = _field(item, "type")
    if item_type == "function_call":
        return f"{_field(item, 'name') or ''} {_field(item, 'arguments') or ''}"
    if item_type == "function_call_output":
        return _output_text(_field(item, "output"))
    if _field(item, "role") is not None:
        return _content_text(_field(item, "content"))
    return ""


def _word_count(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class _Conversation:
    items: list[Any]
    user_index: int
    """Index of the latest user message in ``items``, -1 when there is none."""
    user_text: str

    @classmethod
    def parse(cls, input: str | list[TResponseInputItem]) -> _Conversation:
        if isinstance(input, str):
            return cls(items=[{"role": "user", "content": input}], user_index=0, user_text=input)
        items = list(input)
        for index in range(len(items) - 1, -1, -1):
            if _is_user_message(items[index]):
                text = _content_text(_field(items[index], "content"))
                return cls(items=items, user_index=index, user_text=text)
        return cls(items=items, user_index=-1, user_text="")

    @property
    def since_user(self) -> list[Any]:
        return self.items[self.user_index + 1 :]

    def input_words(self) -> int:
        return sum(_word_count(_item_text(item)) for item in self.items)

    def calls_by_id(self) -> dict[str, Any]:
        return {
            str(_field(item, "call_id")): item
            for item in self.items
            if _field(item, "type") == "function_call"
        }


def _is_transfer_message(text: str) -> bool:
    """Whether a tool output is a handoff's transfer message (``{"assistant": "<agent>"}``)."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, dict) and set(value) == {"assistant"}


# --------------------------------------------------------------------------------------------
# Deciding the reply
# --------------------------------------------------------------------------------------------


def _digest(*parts: str, length: int = 24) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class _RequestedCall:
    start: int
    end: int
    name: str
    arguments: str


def _requested_calls(text: str, names: Sequence[str]) -> list[_RequestedCall]:
    """Tool names in ``text`` directly followed by a JSON object, in order of appearance."""
    found: list[_RequestedCall] = []
    for name in dict.fromkeys(names):
        pattern = re.compile(rf"(?<![\w-]){re.escape(name)}\s*(?=\{{)")
        for match in pattern.finditer(text):
            try:
                value, end = _JSON.raw_decode(text, match.end())
            except ValueError:
                continue
            if isinstance(value, dict):
                arguments = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
                found.append(_RequestedCall(match.start(), end, name, arguments))
    found.sort(key=lambda call: (call.start, -len(call.name)))
    calls: list[_RequestedCall] = []
    for call in found:
        # A name inside an earlier call's JSON arguments is not a request of its own.
        if calls and call.start < calls[-1].end:
            continue
        calls.append(call)
    return calls


@dataclass(frozen=True)
class _Reply:
    output: list[TResponseOutputItem]
    usage: Usage
    response_id: str
    text: str | None
    """The message text, for a text reply; None for tool calls."""


class _ReplyBuilder:
    def __init__(
        self,
        model_name: str,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: Sequence[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: Sequence[Handoff],
    ) -> None:
        self.model_name = model_name
        self.conversation = _Conversation.parse(input)
        self.model_settings = model_settings
        self.tool_names = [tool.name for tool in tools if isinstance(tool, FunctionTool)]
        self.handoff_names = [handoff.tool_name for handoff in handoffs]
        self.output_schema = output_schema

    def build(self) -> _Reply:
        results = self._tool_results()
        if results:
            return self._text_reply("\n".join(results))
        calls = self._calls_to_make()
        if calls:
            return self._call_reply(calls)
        return self._text_reply(f"Echo: {self.conversation.user_text}")

    def _tool_results(self) -> list[str]:
        """``<name> returned: <output>`` for each tool output since the latest user message."""
        calls = self.conversation.calls_by_id()
        lines: list[str] = []
        for item in self.conversation.since_user:
            if _field(item, "type") != "function_call_output":
                continue
            output = _output_text(_field(item, "output"))
            call = calls.get(str(_field(item, "call_id")))
            name = str(_field(call, "name") or "tool") if call is not None else "tool"
            if name in self.handoff_names or _is_transfer_message(output):
                continue
            lines.append(f"{name} returned: {output}")
        return lines

    def _calls_to_make(self) -> list[ResponseFunctionToolCall]:
        if self.model_settings.tool_choice == "none":
            return []
        made = {
            (_field(item, "name"), _canonical_arguments(_field(item, "arguments")))
            for item in self.conversation.since_user
            if _field(item, "type") == "function_call"
        }
        requested = [
            call
            for call in _requested_calls(
                self.conversation.user_text, [*self.tool_names, *self.handoff_names]
            )
            if (call.name, call.arguments) not in made
        ]
        if self.model_settings.parallel_tool_calls is False:
            requested = requested[:1]
        position = len(self.conversation.items)
        calls: list[ResponseFunctionToolCall] = []
        for index, call in enumerate(requested):
            digest = _digest(call.name, call.arguments, f"{position}.{index}")
            calls.append(
                ResponseFunctionToolCall(
                    id=f"fc_mock_{digest}",
                    call_id=f"call_{digest}",
                    type="function_call",
                    name=call.name,
                    arguments=call.arguments,
                    status="completed",
                )
            )
        return calls

    def _text_reply(self, text: str) -> _Reply:
        if self.output_schema is not None and not self.output_schema.is_plain_text():
            value = _SchemaInstance(self.output_schema.json_schema(), text).build()
            text = json.dumps(value, ensure_ascii=False)
        digest = _digest(self.model_name, self._input_key(), text)
        message = ResponseOutputMessage(
            id=f"msg_mock_{digest}",
            type="message",
            role="assistant",
            status="completed",
            content=[
                ResponseOutputText(type="output_text", text=text, annotations=[], logprobs=[])
            ],
        )
        return _Reply(
            output=[message],
            usage=self._usage(_word_count(text)),
            response_id=f"resp_mock_{digest}",
            text=text,
        )

    def _call_reply(self, calls: list[ResponseFunctionToolCall]) -> _Reply:
        words = sum(_word_count(f"{call.name} {call.arguments}") for call in calls)
        digest = _digest(self.model_name, self._input_key(), *(call.call_id for call in calls))
        return _Reply(
            output=list(calls),
            usage=self._usage(words),
            response_id=f"resp_mock_{digest}",
            text=None,
        )

    def _usage(self, output_words: int) -> Usage:
        input_tokens = max(1, self.conversation.input_words())
        output_tokens = max(1, output_words)
        return Usage(
            requests=1,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
            input_tokens_details=_input_tokens_details(),
            output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
        )

    def _input_key(self) -> str:
        return _to_json([_to_plain(item) for item in self.conversation.items])


def _to_plain(item: Any) -> Any:
    dump = getattr(item, "model_dump", None)
    return dump(mode="json", exclude_none=True) if callable(dump) else item


def _canonical_arguments(arguments: Any) -> str:
    if not isinstance(arguments, str):
        return ""
    try:
        return json.dumps(json.loads(arguments), ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        return arguments


def _input_tokens_details() -> InputTokensDetails:
    # model_validate: ``cache_write_tokens`` is required by newer openai releases only.
    return InputTokensDetails.model_validate({"cached_tokens": 0, "cache_write_tokens": 0})


# --------------------------------------------------------------------------------------------
# A minimal instance of a JSON Schema
# --------------------------------------------------------------------------------------------


class _Cycle(Exception):
    """A required ``$ref`` leads back to itself; another ``anyOf`` branch must be chosen."""


_FORMAT_EXAMPLES = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00Z",
    "duration": "PT0S",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


class _SchemaInstance:
    """Builds the smallest sensible value that validates against a JSON Schema."""

    def __init__(self, schema: Mapping[str, Any], text: str) -> None:
        self.root = schema
        self.text = text

    def build(self) -> Any:
        try:
            return self._value(self.root, ())
        except _Cycle as cycle:
            raise UserError(
                f"The mock model cannot build a finite instance of the output schema: {cycle} "
                "refers back to itself with no way out."
            ) from cycle

    def _resolve(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            raise UserError(f"The mock model cannot resolve the external $ref {ref!r}.")
        node: Any = self.root
        for token in ref[1:].split("/")[1:] if ref != "#" else []:
            token = token.replace("~1", "/").replace("~0", "~")
            node = node[int(token)] if isinstance(node, list) else node[token]
        return cast(Mapping[str, Any], node)

    def _value(self, schema: Any, refs: tuple[str, ...]) -> Any:
        if schema is True or not isinstance(schema, Mapping):
            return self.text
        if "$ref" in schema:
            ref = str(schema["$ref"])
            if ref in refs:
                raise _Cycle(ref)
            merged = {**self._resolve(ref), **{k: v for k, v in schema.items() if k != "$ref"}}
            return self._value(merged, (*refs, ref))
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if schema.get("enum"):
            return copy.deepcopy(schema["enum"][0])
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self._first_branch(schema, key, refs)
        if schema.get("allOf"):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                if isinstance(part, Mapping) and "$ref" in part:
                    part = self._resolve(str(part["$ref"]))
                merged = _merge(merged, part)
            return self._value(merged, refs)
        kind = self._type(schema)
        if kind == "object":
            return self._object(schema, refs)
        if kind == "array":
            return self._array(schema, refs)
        if kind == "string":
            return self._string(schema)
        if kind in ("number", "integer"):
            return self._number(schema, integer=kind == "integer")
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        return self.text

    def _first_branch(self, schema: Mapping[str, Any], key: str, refs: tuple[str, ...]) -> Any:
        rest = {k: v for k, v in schema.items() if k != key}
        error: _Cycle | None = None
        for branch in schema[key]:
            try:
                merged = _merge(rest, branch) if isinstance(branch, Mapping) else branch
                return self._value(merged, refs)
            except _Cycle as cycle:
                error = cycle
        raise error or _Cycle(key)

    @staticmethod
    def _type(schema: Mapping[str, Any]) -> str | None:
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"] or kind
            kind = kinds[0] if kinds else None
        if kind is None:
            if "properties" in schema or "required" in schema:
                return "object"
            if "items" in schema or "prefixItems" in schema:
                return "array"
        return kind if isinstance(kind, str) else None

    def _object(self, schema: Mapping[str, Any], refs: tuple[str, ...]) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        value: dict[str, Any] = {}
        for name in schema.get("required") or []:
            value[name] = self._value(properties.get(name, {}), refs)
        return value

    def _array(self, schema: Mapping[str, Any], refs: tuple[str, ...]) -> list[Any]:
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems")
        value = [self._value(item, refs) for item in prefix or []]
        minimum = int(schema.get("minItems") or 0)
        while len(value) < minimum:
            value.append(self._value(items if items is not None else {}, refs))
        return value

    def _string(self, schema: Mapping[str, Any]) -> str:
        value = _FORMAT_EXAMPLES.get(str(schema.get("format")), self.text)
        maximum = schema.get("maxLength")
        if isinstance(maximum, int) and len(value) > maximum:
            value = value[:maximum]
        minimum = schema.get("minLength")
        if isinstance(minimum, int) and len(value) < minimum:
            value = value + "." * (minimum - len(value))
        return value

    @staticmethod
    def _number(schema: Mapping[str, Any], *, integer: bool) -> int | float:
        """0, or else the value nearest 0 that the range constraints allow."""
        low, low_open = _bound(schema, "minimum", "exclusiveMinimum", lower=True)
        high, high_open = _bound(schema, "maximum", "exclusiveMaximum", lower=False)

        def fits(value: float) -> bool:
            above = low is None or value > low or (value == low and not low_open)
            below = high is None or value < high or (value == high and not high_open)
            return above and below

        candidates: list[float] = [0]
        if low is not None:
            if integer:
                candidates.append(math.floor(low) + 1 if low_open else math.ceil(low))
            else:
                candidates.append(low + 1 if low_open else low)
        if high is not None:
            if integer:
                candidates.append(math.ceil(high) - 1 if high_open else math.floor(high))
            else:
                candidates.append(high - 1 if high_open else high)
        if low is not None and high is not None and not integer:
            candidates.append((low + high) / 2)
        value = next((candidate for candidate in candidates if fits(candidate)), candidates[-1])
        if integer or float(value).is_integer():
            return int(value)
        return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bound(
    schema: Mapping[str, Any], key: str, exclusive_key: str, *, lower: bool
) -> tuple[float | None, bool]:
    """A range bound and whether it is exclusive, from either JSON Schema spelling (draft 4's
    boolean ``exclusiveMinimum`` flag, or draft 6+'s numeric one)."""
    inclusive = schema.get(key) if _is_number(schema.get(key)) else None
    exclusive = schema.get(exclusive_key)
    if isinstance(exclusive, bool):
        return inclusive, exclusive and inclusive is not None
    if _is_number(exclusive) and (
        inclusive is None or (exclusive >= inclusive if lower else exclusive <= inclusive)
    ):
        return exclusive, True
    return inclusive, False


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if key == "properties" and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        elif key == "required" and isinstance(merged.get(key), list):
            merged[key] = [*merged[key], *(name for name in value if name not in merged[key])]
        else:
            merged[key] = value
    return merged


# --------------------------------------------------------------------------------------------
# The model and its provider
# --------------------------------------------------------------------------------------------


def _response_usage(usage: Usage) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        input_tokens_details=_input_tokens_details(),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
    )


def _split_deltas(text: str) -> list[str]:
    """One chunk per word, each keeping the whitespace after it; leading whitespace is its own
    chunk. The chunks join up to ``text``."""
    return [chunk for chunk in re.split(r"(?<=\s)(?=\S)", text) if chunk]


class MockModel(Model):
    """A deterministic, offline model; see the module docstring for how it answers.

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
    ) -> _Reply:
        return _ReplyBuilder(
            self.model, input, model_settings, tools, output_schema, handoffs
        ).build()

    def _span_data(
        self,
        span: Any,
        input: str | list[TResponseInputItem],
        reply: _Reply,
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
            data.input = [_to_plain(item) for item in items]
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

    async def _events(self, reply: _Reply) -> AsyncIterator[TResponseStreamEvent]:
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
