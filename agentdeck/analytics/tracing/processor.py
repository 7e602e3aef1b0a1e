"""``RunSpanProcessor``, the SDK tracing processor that keeps spans at home, and
``install_tracing``, which points the SDK at it (beside OpenAI's exporter only when
``OPENAI_TRACING_EXPORT`` is set). The hooks only buffer plain records in memory under a lock;
``flush_run`` writes a run's spans once the run has ended, from synchronous code."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import agents
from agents.tracing import Span, Trace, TracingProcessor
from django.conf import settings

from agentdeck.analytics.tracing.records import (
    SpanRecord,
    as_uuid_str,
    record_span,
    run_id_from_metadata,
)
from agentdeck.analytics.tracing.store import insert_spans

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _TraceBuffer:
    run_id: str | None
    group_id: str | None
    spans: list[SpanRecord] = field(default_factory=list)
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
        run_id = run_id_from_metadata(exported.get("metadata"))
        group_id = as_uuid_str(exported.get("group_id"))
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
        span_run_id = run_id_from_metadata(getattr(span, "trace_metadata", None))
        with self._lock:
            if self._closed:
                return
            buffer = self._traces.get(trace_id)
            if buffer is None and span_run_id is None:
                return
        record = record_span(span)  # outside the lock: export and truncation take a moment
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
        ``INSERT ... ON CONFLICT DO NOTHING`` (``insert_spans``), and forget them.

        Call it from synchronous code after the run ended (the worker does, after settling the
        run). A trace belongs to the run when its metadata's ``agentdeck_run_id`` is the run id,
        or, lacking that key, when its ``group_id`` is. Calling it twice is safe: the second call
        finds nothing buffered, and spans seen again (a resumed run) hit the (run, span_id)
        unique constraint and are skipped.

        Returns how many spans were handed to the database (rows that already existed are
        skipped silently). If the write fails the spans are buffered again for a retry and the
        database error propagates.
        """
        key = as_uuid_str(run_id)
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
            insert_spans(run_id, records)
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
