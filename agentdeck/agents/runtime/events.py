"""The run event vocabulary: what ``RunEvent.type`` can be, and how SDK stream events map to it.

Stable types (clients switch on them; add, never rename):

==================== =======================================================================
``run.started``       the worker claimed the run: ``{agent, model, version, attempt}``
``agent.updated``     the agent now speaking changed (start, handoff): ``{agent}``
``message.delta``     streamed text: ``{agent, delta}``; consecutive deltas are coalesced
                      (up to ``DELTA_FLUSH_CHARS`` characters or ``DELTA_FLUSH_SECONDS``)
``message.completed`` a whole assistant message: ``{agent, text}``
``reasoning.completed`` a reasoning item: ``{agent, summary}``
``tool_call.started`` the model called a tool: ``{agent, call_id, name, arguments}``
``tool_call.completed`` the tool answered: ``{agent, call_id, output}``; a ``file_search`` call
                      that found passages adds ``citations: [{citation, file_id, file_name,
                      vector_index_id, chunk_id, position, page, score}]`` (``citation`` is
                      the number the model cites as ``[n]``)
``handoff``           control passed between agents: ``{from_agent, to_agent}``
``guardrail.tripped`` a guardrail stopped the run: ``{guardrail, kind, detail}``
``approval.required`` the run paused for a person: ``{calls: [{call_id, tool, arguments, agent}],
                      expires_at}``; the run is now ``requires_action``
``approval.resolved`` every pending call was answered: ``{decisions: [{call_id, approved}]}``
``run.resumed``       a worker picked the run up again after approvals: ``{attempt}``
``usage``             one model response's tokens: ``{model, requests, input_tokens,
                      cached_input_tokens, output_tokens, reasoning_tokens, total_tokens}``
``run.succeeded``     terminal: ``{output, last_agent, usage}``
``run.failed``        terminal: ``{code, message, usage}``
``run.cancelled``     terminal: ``{usage}``
==================== =======================================================================

Every event of a run has a gapless ``seq`` starting at 1; a terminal event is always last.
"""

from __future__ import annotations

import json
from typing import Any

RUN_STARTED = "run.started"
AGENT_UPDATED = "agent.updated"
MESSAGE_DELTA = "message.delta"
MESSAGE_COMPLETED = "message.completed"
REASONING_COMPLETED = "reasoning.completed"
TOOL_CALL_STARTED = "tool_call.started"
TOOL_CALL_COMPLETED = "tool_call.completed"
HANDOFF = "handoff"
GUARDRAIL_TRIPPED = "guardrail.tripped"
USAGE = "usage"
APPROVAL_REQUIRED = "approval.required"
APPROVAL_RESOLVED = "approval.resolved"
RUN_RESUMED = "run.resumed"
RUN_SUCCEEDED = "run.succeeded"
RUN_FAILED = "run.failed"
RUN_CANCELLED = "run.cancelled"

TERMINAL_EVENT_TYPES = frozenset({RUN_SUCCEEDED, RUN_FAILED, RUN_CANCELLED})
EVENT_TYPES = frozenset({
    RUN_STARTED, AGENT_UPDATED, MESSAGE_DELTA, MESSAGE_COMPLETED, REASONING_COMPLETED,
    TOOL_CALL_STARTED, TOOL_CALL_COMPLETED, HANDOFF, GUARDRAIL_TRIPPED, USAGE,
    APPROVAL_REQUIRED, APPROVAL_RESOLVED, RUN_RESUMED,
    *TERMINAL_EVENT_TYPES,
})  # fmt: skip

DELTA_FLUSH_CHARS = 200
DELTA_FLUSH_SECONDS = 0.05
MAX_PAYLOAD_CHARS = 64_000


def clip(value: Any, limit: int = MAX_PAYLOAD_CHARS) -> Any:
    """Keep one event's payload bounded: a tool that returns a megabyte must not bloat the log."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"… [{len(value) - limit} more characters]"
    return value


def jsonable(value: Any) -> Any:
    """SDK outputs can be pydantic models, dataclasses or anything else; the log stores JSON."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


def _raw_field(raw: Any, name: str, default: Any = None) -> Any:
    if isinstance(raw, dict):
        return raw.get(name, default)
    return getattr(raw, name, default)


def map_run_item(name: str, item: Any) -> tuple[str, dict[str, Any]] | None:
    """Map a ``run_item_stream_event`` (by its ``name``) to (type, data), or None to skip."""
    agent = getattr(getattr(item, "agent", None), "name", "")
    raw = getattr(item, "raw_item", None)
    if name == "message_output_created":
        from agents import ItemHelpers

        return MESSAGE_COMPLETED, {
            "agent": agent,
            "text": clip(ItemHelpers.text_message_output(item)),
        }
    if name == "tool_called":
        return TOOL_CALL_STARTED, {
            "agent": agent,
            "call_id": _raw_field(raw, "call_id") or _raw_field(raw, "id") or "",
            "name": _raw_field(raw, "name") or _raw_field(raw, "type") or "",
            "arguments": clip(_raw_field(raw, "arguments") or ""),
        }
    if name == "tool_output":
        return TOOL_CALL_COMPLETED, {
            "agent": agent,
            "call_id": _raw_field(raw, "call_id") or "",
            "output": clip(jsonable(getattr(item, "output", None))),
        }
    # "handoff_occured" is not mapped: a handoff input filter can drop that item from the
    # stream, so the executor emits ``handoff`` from the change of agent instead.
    if name == "reasoning_item_created":
        summary = [_raw_field(part, "text", "") for part in (_raw_field(raw, "summary") or [])]
        return REASONING_COMPLETED, {"agent": agent, "summary": clip("\n".join(summary))}
    return None


def usage_from_response(response: Any) -> dict[str, int]:
    """Token counts of one Responses-API ``Response`` (also what the SDK synthesises for Chat
    Completions)."""
    usage = _raw_field(response, "usage")
    if usage is None:
        return {}
    input_details = _raw_field(usage, "input_tokens_details")
    output_details = _raw_field(usage, "output_tokens_details")
    input_tokens = int(_raw_field(usage, "input_tokens", 0) or 0)
    output_tokens = int(_raw_field(usage, "output_tokens", 0) or 0)
    return {
        "requests": 1,
        "input_tokens": input_tokens,
        "cached_input_tokens": int(_raw_field(input_details, "cached_tokens", 0) or 0),
        "output_tokens": output_tokens,
        "reasoning_tokens": int(_raw_field(output_details, "reasoning_tokens", 0) or 0),
        "total_tokens": int(_raw_field(usage, "total_tokens", 0) or input_tokens + output_tokens),
    }


def add_usage(total: dict[str, dict[str, int]], model: str, usage: dict[str, int]) -> None:
    bucket = total.setdefault(model, {})
    for key, value in usage.items():
        bucket[key] = bucket.get(key, 0) + value
