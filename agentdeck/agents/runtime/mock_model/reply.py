"""What the mock model answers: it reads the conversation (string input or input items, as dicts
or SDK objects) and decides between tool calls, a summary of tool results, and an echo; every
answer, id and usage count is a pure function of the input (see docs/mock_model.md)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import TResponseInputItem, TResponseOutputItem
from agents.tool import FunctionTool, Tool
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from agentdeck.agents.runtime.items import content_text, field, is_user_message
from agentdeck.agents.runtime.mock_model.schema_instance import SchemaInstance

if TYPE_CHECKING:
    from agents.model_settings import ModelSettings


_JSON = json.JSONDecoder()


# --------------------------------------------------------------------------------------------
# Reading the input
# --------------------------------------------------------------------------------------------


def _output_text(output: Any) -> str:
    """A tool output (``function_call_output.output``) as text."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, Sequence):
        texts: list[str] = []
        for part in output:
            text = field(part, "text")
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


def _item_text(item: Any) -> str:
    """The words an input item contributes to the input token count."""
    item_type = field(item, "type")
    if item_type == "function_call":
        return f"{field(item, 'name') or ''} {field(item, 'arguments') or ''}"
    if item_type == "function_call_output":
        return _output_text(field(item, "output"))
    if field(item, "role") is not None:
        return content_text(field(item, "content"))
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
            if is_user_message(items[index]):
                text = content_text(field(items[index], "content"))
                return cls(items=items, user_index=index, user_text=text)
        return cls(items=items, user_index=-1, user_text="")

    @property
    def since_user(self) -> list[Any]:
        return self.items[self.user_index + 1 :]

    def input_words(self) -> int:
        return sum(_word_count(_item_text(item)) for item in self.items)

    def calls_by_id(self) -> dict[str, Any]:
        return {
            str(field(item, "call_id")): item
            for item in self.items
            if field(item, "type") == "function_call"
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
class Reply:
    output: list[TResponseOutputItem]
    usage: Usage
    response_id: str
    text: str | None
    """The message text, for a text reply; None for tool calls."""


class ReplyBuilder:
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

    def build(self) -> Reply:
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
            if field(item, "type") != "function_call_output":
                continue
            output = _output_text(field(item, "output"))
            call = calls.get(str(field(item, "call_id")))
            name = str(field(call, "name") or "tool") if call is not None else "tool"
            if name in self.handoff_names or _is_transfer_message(output):
                continue
            lines.append(f"{name} returned: {output}")
        return lines

    def _calls_to_make(self) -> list[ResponseFunctionToolCall]:
        if self.model_settings.tool_choice == "none":
            return []
        made = {
            (field(item, "name"), _canonical_arguments(field(item, "arguments")))
            for item in self.conversation.since_user
            if field(item, "type") == "function_call"
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

    def _text_reply(self, text: str) -> Reply:
        if self.output_schema is not None and not self.output_schema.is_plain_text():
            value = SchemaInstance(self.output_schema.json_schema(), text).build()
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
        return Reply(
            output=[message],
            usage=self._usage(_word_count(text)),
            response_id=f"resp_mock_{digest}",
            text=text,
        )

    def _call_reply(self, calls: list[ResponseFunctionToolCall]) -> Reply:
        words = sum(_word_count(f"{call.name} {call.arguments}") for call in calls)
        digest = _digest(self.model_name, self._input_key(), *(call.call_id for call in calls))
        return Reply(
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
            input_tokens_details=input_tokens_details(),
            output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
        )

    def _input_key(self) -> str:
        return _to_json([to_plain(item) for item in self.conversation.items])


def to_plain(item: Any) -> Any:
    dump = getattr(item, "model_dump", None)
    return dump(mode="json", exclude_none=True) if callable(dump) else item


def _canonical_arguments(arguments: Any) -> str:
    if not isinstance(arguments, str):
        return ""
    try:
        return json.dumps(json.loads(arguments), ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        return arguments


def input_tokens_details() -> InputTokensDetails:
    # model_validate: ``cache_write_tokens`` is required by newer openai releases only.
    return InputTokensDetails.model_validate({"cached_tokens": 0, "cache_write_tokens": 0})
