"""Agents SDK tracing kept at home: spans are stored as :class:`RunSpan` rows against their run.

By default the OpenAI Agents SDK registers a ``BatchTraceProcessor`` that uploads every trace
and span (including model inputs and outputs) to OpenAI's servers. :func:`install_tracing`
replaces it with :class:`RunSpanProcessor` unless the operator sets
``OPENAI_TRACING_EXPORT=true``, in which case both run side by side.

How a span finds its run: the runtime starts each run with
``RunConfig(trace_metadata={"agentdeck_run_id": "<run uuid>"}, group_id=<conversation id or run
id>, workflow_name=<agent name>)``. The SDK hands the metadata to ``on_trace_start(trace)`` (as
``trace.metadata`` / ``trace.export()["metadata"]``) and also copies it onto every span
(``span.trace_metadata``), so spans of a resumed run, whose trace is re-attached without a new
``on_trace_start``, still find their run. A trace without the metadata key falls back to its
``group_id``, which ``flush_run`` matches against the run id.

Threading: the SDK calls the ``on_*`` hooks synchronously from the code that opens and closes
spans. In agentdeck that is the worker's event loop, started from synchronous code
(``asyncio.run`` or asgiref's ``async_to_sync``, which runs the loop in a thread of its own), plus
whatever threads synchronous tools run in. Django refuses ORM calls from a thread running an
event loop, and a database round trip per span would slow the run down anyway, so the hooks only
copy plain data into memory under a lock. The worker calls :meth:`RunSpanProcessor.flush_run`
from synchronous code once the run has ended; that is the one place spans reach the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import agents
from agents.tracing import Span, Trace, TracingProcessor
from django.conf import settings

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
class _SpanRecord:
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


@dataclass(slots=True)
class _TraceBuffer:
    run_id: str | None
    group_id: str | None
    spans: list[_SpanRecord] = field(default_factory=list)
    dropped: int = 0


class RunSpanProcessor(TracingProcessor):
    """Buffers finished spans per trace and writes a run's spans as :class:`RunSpan` rows.

    Memory is bounded: at most ``max_traces`` traces are buffered (the oldest is dropped with a
    warning, e.g. spans of runs whose worker never called ``flush_run``) and at most
    ``max_spans_per_trace`` spans per trace (a runaway loop cannot exhaust the worker).
    """

    def __init__(self, *, max_traces: int | None = None, max_spans_per_trace: int = 5000) -> None:
        self._lock = threading.Lock()
        self._traces: OrderedDict[str, _TraceBuffer] = OrderedDict()
        if max_traces is None:
            # A run worker holds RUN_CONCURRENCY runs' traces at once (and a few nested ones
            # each): a smaller bound would drop the spans of runs still going.
            from django.conf import settings

            max_traces = max(1024, 4 * getattr(settings, "RUN_CONCURRENCY", 0))
        self._max_traces = max_traces
        self._max_spans_per_trace = max_spans_per_trace
        self._closed = False

    # --- SDK hooks: called on the run's event loop; memory only, never the ORM -----------------

    def on_trace_start(self, trace: Trace) -> None:
        exported = trace.export()
        if not exported:  # a disabled (no-op) trace
            return
        run_id = _run_id_from_metadata(exported.get("metadata"))
        group_id = _as_uuid_str(exported.get("group_id"))
        if run_id is None and group_id is None:
            # Nothing could ever claim this trace's spans (not an agentdeck run): don't keep them.
            return
        with self._lock:
            if self._closed:
                return
            buffer = self._traces.get(trace.trace_id)
            if buffer is None:
                self._add_trace(trace.trace_id, _TraceBuffer(run_id=run_id, group_id=group_id))
            else:
                buffer.run_id = buffer.run_id or run_id
                buffer.group_id = buffer.group_id or group_id

    def on_trace_end(self, trace: Trace) -> None:
        # Spans are kept until flush_run: the worker decides when a run's trace is complete.
        pass

    def on_span_start(self, span: Span[Any]) -> None:
        # Only finished spans are stored; they carry both timestamps.
        pass

    def on_span_end(self, span: Span[Any]) -> None:
        trace_id = span.trace_id
        if not trace_id or trace_id == "no-op":
            return
        # Spans of a resumed run arrive without an on_trace_start (the SDK re-attaches the
        # trace silently) but carry the trace metadata themselves.
        span_run_id = _run_id_from_metadata(getattr(span, "trace_metadata", None))
        with self._lock:
            if self._closed:
                return
            buffer = self._traces.get(trace_id)
            if buffer is None and span_run_id is None:
                return
        record = _record_span(span)  # outside the lock: export and truncation take a moment
        with self._lock:
            if self._closed:
                return
            buffer = self._traces.get(trace_id)
            if buffer is None:
                buffer = _TraceBuffer(run_id=span_run_id, group_id=None)
                self._add_trace(trace_id, buffer)
            if len(buffer.spans) >= self._max_spans_per_trace:
                buffer.dropped += 1
                return
            buffer.spans.append(record)

    def shutdown(self) -> None:
        """Stop buffering and forget what is buffered, without touching the database.

        The SDK calls this from an ``atexit`` hook. By then Django may have closed its
        connections, or (in a test session) pointed them back from the test database at the
        real one, so writing there would be wrong. Spans still buffered at exit belong to runs
        whose worker never reached ``flush_run``; the reaper fails those runs anyway.
        """
        with self._lock:
            self._closed = True
            pending = sum(len(buffer.spans) for buffer in self._traces.values())
            self._traces.clear()
        if pending:
            logger.info("discarding %d unflushed trace span(s) at shutdown", pending)

    def pending(self) -> dict[str, int]:
        """Buffered span counts by trace id (diagnostics and tests)."""
        with self._lock:
            return {trace_id: len(buffer.spans) for trace_id, buffer in self._traces.items()}

    # --- writing: synchronous code only ---------------------------------------------------------

    def flush_run(self, run_id: uuid.UUID | str) -> int:
        """Write every buffered span of ``run_id``'s traces as :class:`RunSpan` rows, in one
        ``INSERT ... ON CONFLICT DO NOTHING`` (``_insert_spans``), and forget them.

        Call it from synchronous code after the run ended (the worker does, after settling the
        run). A trace belongs to the run when its metadata's ``agentdeck_run_id`` is the run id,
        or, lacking that key, when its ``group_id`` is. Calling it twice is safe: the second call
        finds nothing buffered, and spans seen again (a resumed run) hit the (run, span_id)
        unique constraint and are skipped.

        Returns how many spans were handed to the database (rows that already existed are
        skipped silently). If the write fails the spans are buffered again for a retry and the
        database error propagates.
        """
        key = _as_uuid_str(run_id)
        if key is None:
            raise ValueError(f"not a run id: {run_id!r}")
        with self._lock:
            claimed = [
                (trace_id, buffer)
                for trace_id, buffer in self._traces.items()
                if buffer.run_id == key or (buffer.run_id is None and buffer.group_id == key)
            ]
            for trace_id, _ in claimed:
                del self._traces[trace_id]
        return self._write(key, claimed)

    def force_flush(self) -> None:
        """Write every buffered span whose run can be identified, then forget them.

        The SDK calls this from ``agents.flush_traces()``. From inside a running event loop the
        ORM is off limits, so there it only logs and leaves the spans for ``flush_run``.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            logger.warning(
                "RunSpanProcessor.force_flush called on an event loop; spans stay buffered"
            )
            return
        from agentdeck.agents.models import AgentRun

        with self._lock:
            run_ids = {buffer.run_id for buffer in self._traces.values() if buffer.run_id}
            group_ids = {
                buffer.group_id
                for buffer in self._traces.values()
                if buffer.run_id is None and buffer.group_id
            }
        if group_ids:
            # A group id is a conversation id or a run id; only the latter can be claimed.
            run_ids |= {
                str(pk)
                for pk in AgentRun.objects.filter(pk__in=group_ids).values_list("pk", flat=True)
            }
        for run_id in sorted(run_ids):
            self.flush_run(run_id)

    def _add_trace(self, trace_id: str, buffer: _TraceBuffer) -> None:
        # Called with the lock held.
        self._traces[trace_id] = buffer
        while len(self._traces) > self._max_traces:
            evicted_id, evicted = self._traces.popitem(last=False)
            logger.warning(
                "dropping %d buffered span(s) of trace %s (run %s): never flushed",
                len(evicted.spans),
                evicted_id,
                evicted.run_id or evicted.group_id,
            )

    def _write(self, run_id: str, claimed: list[tuple[str, _TraceBuffer]]) -> int:
        records = [record for _, buffer in claimed for record in buffer.spans]
        for trace_id, buffer in claimed:
            if buffer.dropped:
                logger.warning(
                    "run %s: trace %s had %d span(s) over the %d-span limit, not stored",
                    run_id,
                    trace_id,
                    buffer.dropped,
                    self._max_spans_per_trace,
                )
        if not records:
            return 0
        try:
            _insert_spans(run_id, records)
        except Exception:
            # Put the spans back (ahead of any that ended meanwhile) so a retry can store them.
            with self._lock:
                for trace_id, buffer in claimed:
                    newer = self._traces.pop(trace_id, None)
                    if newer is not None:
                        buffer.spans.extend(newer.spans)
                        buffer.dropped += newer.dropped
                    self._add_trace(trace_id, buffer)
            raise
        return len(records)


# --- installation -------------------------------------------------------------------------------

_processor = RunSpanProcessor()
_install_lock = threading.Lock()
# The OPENAI_TRACING_EXPORT value the SDK's processors were last set up for; None: not yet.
_installed_export: bool | None = None


def get_span_processor() -> RunSpanProcessor:
    """The process-wide :class:`RunSpanProcessor` (whether or not it is installed yet)."""
    return _processor


def install_tracing() -> RunSpanProcessor:
    """Point the Agents SDK's tracing at agentdeck; call once per process before any run.

    Unless ``settings.OPENAI_TRACING_EXPORT`` is true, the SDK's processors (its default OpenAI
    exporter included) are replaced with only ours, so nothing leaves the machine. When it is
    true, ours is added next to the default exporter. Calling it again is a no-op unless the
    setting changed since the last call (tests flip it), in which case the new value is applied.
    """
    global _installed_export
    export = bool(getattr(settings, "OPENAI_TRACING_EXPORT", False))
    with _install_lock:
        if _installed_export is export:
            return _processor
        if not export:
            agents.set_trace_processors([_processor])
        elif _installed_export is None:
            agents.add_trace_processor(_processor)
        else:
            # Export switched back on after it was off: our processor is already registered,
            # only the SDK's default exporter is missing.
            from agents.tracing.processors import default_processor

            agents.add_trace_processor(default_processor())
        _installed_export = export
    return _processor


# --- span -> plain values -----------------------------------------------------------------------


def _record_span(span: Span[Any]) -> _SpanRecord:
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
    return _SpanRecord(
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
# took 15% of the worker's busy time per run (py-spy, benchmarks/RESULTS.md run_overhead).
# ON CONFLICT: a span is stored once per run (flush_run may run twice).
_INSERT_SPANS_SQL = """
    INSERT INTO run_spans (run_id, trace_id, span_id, parent_id, kind, name, model, started_at,
                           ended_at, duration_ms, input_tokens, output_tokens,
                           cached_input_tokens, reasoning_tokens, error, data, created_at)
    SELECT %s::uuid, s.trace_id, s.span_id, s.parent_id, s.kind, s.name, s.model, s.started_at,
           s.ended_at, s.duration_ms, s.input_tokens, s.output_tokens, s.cached_input_tokens,
           s.reasoning_tokens, s.error, s.data, %s
      FROM jsonb_to_recordset(%s::jsonb) AS s(
               trace_id text, span_id text, parent_id text, kind text, name text, model text,
               started_at timestamptz, ended_at timestamptz, duration_ms double precision,
               input_tokens integer, output_tokens integer, cached_input_tokens integer,
               reasoning_tokens integer, error jsonb, data jsonb)
        ON CONFLICT (run_id, span_id) DO NOTHING
"""


def _insert_spans(run_id: str, records: list[_SpanRecord]) -> None:
    from django.db import connection
    from django.utils import timezone

    # A record's fields are the columns of _INSERT_SPANS_SQL's recordset, by the same names.
    names = [f.name for f in fields(_SpanRecord)]
    document = json.dumps(
        [{name: getattr(r, name) for name in names} for r in records],
        default=datetime.isoformat,  # started_at, ended_at
    )
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SPANS_SQL, [run_id, timezone.now(), document])


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


def _run_id_from_metadata(metadata: Any) -> str | None:
    if not isinstance(metadata, Mapping):
        return None
    return _as_uuid_str(metadata.get(RUN_ID_METADATA_KEY))


def _as_uuid_str(value: Any) -> str | None:
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
