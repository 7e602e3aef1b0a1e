"""A finished SDK span copied into plain, bounded, redacted values (``SpanRecord``), so no SDK
object, nor the model inputs and outputs it references, outlives the span's end. Only model-call
spans fill the token columns; the bulky ``input``/``output`` data stays in the run's events."""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agents.tracing import Span

from agentdeck.core.redaction import redact_data

logger = logging.getLogger(__name__)

#: The ``RunConfig.trace_metadata`` key that names the AgentRun a trace belongs to.
RUN_ID_METADATA_KEY = "agentdeck_run_id"

# Span types that stand for exactly one model call. Only these fill the token columns: task,
# turn and agent spans repeat the same tokens as running totals.
_MODEL_CALL_KINDS = frozenset({"generation", "response"})
# Bulky span_data fields (prompts, completions, tool arguments and results, audio). The run's
# events and the conversation already hold them; the span row keeps timings and shape.
_BULKY_SPAN_DATA_KEYS = ("input", "output")
_MAX_STRING_CHARS = 2_000
_MAX_ITEMS = 100
_MAX_DEPTH = 8
_MAX_DATA_CHARS = 64_000
# PositiveIntegerField is a PostgreSQL integer.
_MAX_TOKENS = 2**31 - 1


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """A finished span copied into plain values, so no SDK object (and none of the model inputs
    and outputs they reference) outlives the span's end."""

    trace_id: str
    span_id: str
    parent_id: str
    kind: str
    name: str
    model: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: float | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    error: Any
    data: dict[str, Any]


def record_span(span: Span[Any]) -> SpanRecord:
    span_data = span.span_data
    kind = str(span_data.type)
    exported = span.export() or {}
    exported_data = exported.get("span_data")
    if isinstance(exported_data, dict):
        exported["span_data"] = {
            key: value for key, value in exported_data.items() if key not in _BULKY_SPAN_DATA_KEYS
        }
    started_at = _parse_time(span.started_at)
    ended_at = _parse_time(span.ended_at)
    duration_ms = (
        (ended_at - started_at).total_seconds() * 1000
        if started_at is not None and ended_at is not None
        else None
    )
    tokens = (
        _usage_tokens(getattr(span_data, "usage", None))
        if kind in _MODEL_CALL_KINDS
        else (0, 0, 0, 0)
    )
    model = _span_model(span_data)
    response_id = exported_data.get("response_id") if isinstance(exported_data, dict) else None
    # A failed model call's span holds the provider's error text, which can quote the API key
    # it was sent: the run's secrets (its redaction scope, this hook runs inside the run) and
    # anything credential-shaped are replaced before the span is kept. Only the span's data and
    # error come from outside the SDK; the rest of the export (ids, timestamps) is not scanned:
    # redaction is most of what recording a span costs, on the run's event loop.
    data = _json_safe(exported)
    for key in ("span_data", "error"):
        if data.get(key):
            data[key] = redact_data(data[key])
    return SpanRecord(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_id=span.parent_id or "",
        kind=_clean_text(kind, 32),
        name=_clean_text(_span_name(span_data, kind, model, response_id), 255),
        model=_clean_text(model, 200),
        started_at=started_at,
        ended_at=ended_at,
        duration_ms=duration_ms,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cached_input_tokens=tokens[2],
        reasoning_tokens=tokens[3],
        error=redact_data(_json_safe(span.error)) if span.error else None,
        data=_bounded(data),
    )


# A run's spans in one statement, passed as one JSON document. bulk_create sent each column as
# an array for UNNEST, and psycopg quoting ~16 arrays into the SQL text (client-side binding)


def _span_model(span_data: Any) -> str:
    model = getattr(span_data, "model", None)
    if not model:
        # Responses API spans hold the Response object (only when sensitive data is traced).
        model = getattr(getattr(span_data, "response", None), "model", None)
    return model if isinstance(model, str) else ""


def _span_name(span_data: Any, kind: str, model: str, response_id: Any) -> str:
    if kind == "handoff":
        source = getattr(span_data, "from_agent", None) or "?"
        target = getattr(span_data, "to_agent", None) or "?"
        return f"{source} -> {target}"
    if kind == "turn":
        return str(getattr(span_data, "agent_name", "") or "")
    if kind == "mcp_tools":
        return str(getattr(span_data, "server", "") or "")
    if kind in {"generation", "response", "transcription", "speech"}:
        # The model when known; a response span without sensitive data only has its id.
        return model or str(response_id or "")
    name = getattr(span_data, "name", None)
    return str(name) if name else ""


def _usage_tokens(usage: Any) -> tuple[int, int, int, int]:
    """(input, output, cached input, reasoning) tokens of a generation/response span's usage.

    The SDK's model classes disagree on the shape (details as a dict, a list of one dict, or
    absent, as in agentdeck's mock model), so every part is optional.
    """
    if not isinstance(usage, Mapping):
        return 0, 0, 0, 0
    input_details = _first_mapping(usage.get("input_tokens_details"))
    output_details = _first_mapping(usage.get("output_tokens_details"))
    return (
        _count(usage.get("input_tokens")),
        _count(usage.get("output_tokens")),
        _count(input_details.get("cached_tokens")),
        _count(output_details.get("reasoning_tokens")),
    )


def _first_mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, list | tuple) and value:
        value = value[0]
    if isinstance(value, Mapping):
        return value
    if hasattr(value, "model_dump"):
        dumped = value.model_dump()
        return dumped if isinstance(dumped, Mapping) else {}
    return {}


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return min(value, _MAX_TOKENS)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def run_id_from_metadata(metadata: Any) -> str | None:
    if not isinstance(metadata, Mapping):
        return None
    return as_uuid_str(metadata.get(RUN_ID_METADATA_KEY))


def as_uuid_str(value: Any) -> str | None:
    """The canonical text of a UUID, so "ABC..." and UUID("abc...") compare equal; None for
    anything else (run ids are UUIDs, so no other value can name a run)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _clean_text(value: str, max_length: int) -> str:
    # PostgreSQL text cannot hold NUL characters.
    return value.replace("\x00", "")[:max_length]


def _json_safe(value: Any, depth: int = 0) -> Any:
    """A JSON-serializable copy with long strings and collections cut short and NULs removed
    (jsonb rejects \\u0000). Unknown objects become their (truncated) ``str()``."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # jsonb has no NaN or Infinity
    if depth >= _MAX_DEPTH:
        return "[too deep]"
    if isinstance(value, str):
        text = value.replace("\x00", "")
        if len(text) > _MAX_STRING_CHARS:
            return f"{text[:_MAX_STRING_CHARS]}... [{len(text) - _MAX_STRING_CHARS} more chars]"
        return text
    if isinstance(value, Mapping):
        items = list(value.items())
        result = {
            _clean_text(str(key), _MAX_STRING_CHARS): _json_safe(item, depth + 1)
            for key, item in items[:_MAX_ITEMS]
        }
        if len(items) > _MAX_ITEMS:
            result["..."] = f"{len(items) - _MAX_ITEMS} more keys"
        return result
    if isinstance(value, list | tuple | set | frozenset):
        sequence = list(value)
        result_list = [_json_safe(item, depth + 1) for item in sequence[:_MAX_ITEMS]]
        if len(sequence) > _MAX_ITEMS:
            result_list.append(f"... {len(sequence) - _MAX_ITEMS} more items")
        return result_list
    if hasattr(value, "model_dump"):
        try:
            dumped = value.model_dump(mode="json")
        except Exception:  # a pydantic model that cannot dump itself: fall back to str()
            dumped = str(value)
        return _json_safe(dumped, depth + 1)
    return _json_safe(str(value), depth)


def _bounded(data: Any) -> dict[str, Any]:
    """Keep a row's ``data`` small even when truncation per value was not enough."""
    if not isinstance(data, dict):
        return {"value": data}
    if len(json.dumps(data)) <= _MAX_DATA_CHARS:
        return data
    span_data = data.get("span_data")
    return {
        "truncated": True,
        "span_data": {"type": span_data.get("type")} if isinstance(span_data, dict) else None,
    }
