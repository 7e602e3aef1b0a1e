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
from synchronous code once the run has ended; that is the one place spans reach the databa

``processor`` holds the processor and its installation, ``records`` turns a span into plain
values and ``store`` writes them. Callers import from this package.
"""

from __future__ import annotations

from agentdeck.analytics.tracing.processor import (
    RunSpanProcessor,
    get_span_processor,
    install_tracing,
)
from agentdeck.analytics.tracing.records import RUN_ID_METADATA_KEY

__all__ = ["RUN_ID_METADATA_KEY", "RunSpanProcessor", "get_span_processor", "install_tracing"]
