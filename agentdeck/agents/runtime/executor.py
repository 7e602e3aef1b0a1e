"""Execute one claimed run with ``Runner.run_streamed`` on an event loop.

Two callers: the run worker (``agentdeck.agents.worker``) awaits :func:`execute_async` for
hundreds of runs on its one loop; a django-q2 task or a test calls :func:`execute`, which
starts a loop of its own with ``async_to_sync`` (never ``Runner.run_sync`` inside a running
loop). The ORM is synchronous: every database call goes through
``agentdeck.core.db_threads.run_db`` (the worker's database threads, or back on the calling
thread under ``async_to_sync``). The runtime writes through a ``RunSink`` and returns a
``RunOutcome`` (``runtime/sink.py``); it imports no service. Three things run concurrently:

* the stream loop: each SDK event becomes zero or one ``RunEvent`` (``events.py`` maps them),
  persisted before it is published; tool calls are also recorded as ``ToolCall`` rows;
* the heartbeat: every ``RUN_HEARTBEAT_SECONDS`` the run's ``heartbeat_at`` is refreshed (so
  the reaper knows its worker lives) and a cancel request is looked for, for when no events
  flow. The run worker beats for all its runs in one statement and sets ``RunControl.cancel``;
  a lone run beats for itself;
* the deadline: ``RUN_TIMEOUT_SECONDS``.

A run that reaches a tool needing approval ends its stream with interruptions: the SDK's
``RunState`` is serialized and returned as a ``requires_action`` outcome; after the approvals,
a worker resumes from that state (the pinned version rebuilds the same agent).

A run survives a restart of PostgreSQL under it: a write that fails because the database is
unreachable is tried again with backoff (the SDK waits meanwhile once ``MAX_QUEUED_EVENTS``
are queued), and the heartbeat skips the beats it cannot make. Past ``RUN_STALE_AFTER_SECONDS``
of outage the run fails: by then the reaper may have settled it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, cast

from agents import RunConfig, Runner
from asgiref.sync import async_to_sync
from django.conf import settings

from agentdeck.agents.models import AgentRun
from agentdeck.agents.runtime import events as ev
from agentdeck.agents.runtime.builder import build_graph
from agentdeck.agents.runtime.clients import client_pool_scope
from agentdeck.agents.runtime.errors import RunTimedOut, classify_exception
from agentdeck.agents.runtime.event_writer import EventWriter
from agentdeck.agents.runtime.sink import AppendResult, RunControl, RunOutcome, RunSink
from agentdeck.core.db_threads import run_db
from agentdeck.core.reconnect import is_connection_error
from agentdeck.core.redaction import scoped_secrets
from agentdeck.files.tool import take_citations

if TYPE_CHECKING:
    from openai.types.responses import ResponseCompletedEvent, ResponseTextDeltaEvent

logger = logging.getLogger(__name__)


def execute(run: AgentRun, *, sink: RunSink) -> RunOutcome:
    """Execute ``run`` on a loop of its own (a caller without one: a task, a test)."""
    return async_to_sync(execute_async)(run, sink=sink)


async def execute_async(
    run: AgentRun, *, sink: RunSink, control: RunControl | None = None
) -> RunOutcome:
    from agentdeck.analytics.tracing import install_tracing

    install_tracing()
    # The credentials the run's clients and tools are built with join this scope as they are
    # read (builder.openai_client, tools), so the run's error, its spans and its tool outputs
    # are redacted with them (agentdeck.core.redaction).
    # The run's provider clients come from the pool of this event loop: the run worker's, shared
    # by all its runs, or one for this call alone, closed when it ends, before its loop is
    # (agentdeck.agents.runtime.clients).
    with scoped_secrets():
        async with client_pool_scope():
            return await _execute(run, sink, control or RunControl())


class _RunState:
    def __init__(self, control: RunControl) -> None:
        self.usage: dict[str, dict[str, int]] = {}
        self.agent_name = ""
        # Set by a cancel request, by the run leaving `running` under us (reaped), or by the
        # worker shutting down: the stream stops.
        self.cancel = control.cancel
        self.delta_buffer: list[str] = []
        self.delta_started = 0.0
        self.first_token_seen = False
        self.stopped = (
            False  # we cut the stream short (cancel or loss), so there is no final output
        )
        self.tool_started: dict[str, float] = {}
        self.budget_exhausted = False


async def _execute(run: AgentRun, sink: RunSink, control: RunControl) -> RunOutcome:
    from agentdeck.agents.runtime import guardrails as guard

    state = _RunState(control)
    if run.resume_state:
        # Tokens spent before the pause count too.
        state.usage = {model: dict(counts) for model, counts in (run.usage or {}).items()}
    try:
        graph = await run_db(build_graph, run.agent_version.snapshot, owner_id=run.owner_id)
    except Exception as exc:
        code, message = classify_exception(exc, context=f"run {run.id}")
        return RunOutcome(status=AgentRun.Status.FAILED, error_code=code, error_message=message)
    state.agent_name = graph.agent.name
    model_names = graph.model_names
    budget = await run_db(sink.budget, run)
    guardrail_config = graph.guardrails
    redact_output = guard.output_redaction_enabled(guardrail_config)

    session = None
    run_config_kwargs: dict[str, Any] = {}
    if run.conversation_id:
        from agentdeck.agents.runtime.session import DjangoSession

        session = DjangoSession(str(run.conversation_id), run_id=str(run.id))
        # List inputs are appended to the stored history as they are.
        run_config_kwargs["session_input_callback"] = lambda history, new: [*history, *new]

    def written(outcome: AppendResult) -> None:
        if outcome.cancel_requested:
            state.cancel.set()
        if outcome.status != AgentRun.Status.RUNNING:
            control.stop()

    writer = EventWriter(run.id, sink, written)
    append = writer.append

    async def flush_deltas() -> None:
        if state.delta_buffer:
            text = "".join(state.delta_buffer)
            state.delta_buffer.clear()
            first = not state.first_token_seen
            state.first_token_seen = True
            await append(
                ev.MESSAGE_DELTA, {"agent": state.agent_name, "delta": text}, first_token=first
            )

    async def record_item(event_type: str, data: dict[str, Any]) -> None:
        if event_type == ev.MESSAGE_COMPLETED and redact_output:
            data = {**data, "text": guard.redact_output(guardrail_config, data.get("text", ""))}
        if event_type == ev.TOOL_CALL_COMPLETED:
            # A file_search call left its citations (ids the model is not shown) for this event.
            citations = take_citations(data["call_id"], run_id=str(run.id))
            if citations:
                data = {**data, "citations": citations}
        then = None
        if event_type == ev.TOOL_CALL_STARTED:
            state.tool_started[data["call_id"]] = time.monotonic()
            then = functools.partial(
                sink.tool_call_started,
                run_id=run.id,
                call_id=data["call_id"],
                tool_name=data["name"],
                agent_name=data["agent"],
                arguments=data["arguments"],
                tool_id=graph.tool_ids.get(data["name"]),
            )
        elif event_type == ev.TOOL_CALL_COMPLETED:
            began = state.tool_started.pop(data["call_id"], None)
            then = functools.partial(
                sink.tool_call_finished,
                run_id=run.id,
                call_id=data["call_id"],
                output=data["output"],
                duration_ms=(time.monotonic() - began) * 1000 if began is not None else None,
            )
        await append(event_type, data, then=then)

    async with AsyncExitStack() as stack:
        for client in graph.clients:
            stack.push_async_callback(client.close)
        try:
            for server in graph.mcp_servers:
                await stack.enter_async_context(server)
            start_input: Any
            if run.resume_state:
                start_input = await _restore(graph.agent, run)
            else:
                start_input = guard.redact_input(guardrail_config, run.input)
        except Exception as exc:
            code, message = classify_exception(exc, context=f"run {run.id}")
            return RunOutcome(status=AgentRun.Status.FAILED, error_code=code, error_message=message)

        result = Runner.run_streamed(
            graph.agent,
            input=start_input,
            max_turns=run.max_turns,
            session=session,
            run_config=RunConfig(
                workflow_name=graph.agent.name,
                group_id=str(run.conversation_id or run.id),
                trace_metadata={"agentdeck_run_id": str(run.id)},
                **run_config_kwargs,
            ),
        )

        async def consume() -> None:
            await append(ev.AGENT_UPDATED, {"agent": state.agent_name})
            async for event in result.stream_events():
                if state.cancel.is_set():
                    state.stopped = True
                    result.cancel()
                    break
                if event.type == "raw_response_event":
                    data = event.data
                    kind = getattr(data, "type", "")
                    if kind == "response.output_text.delta" and not redact_output:
                        if not state.delta_buffer:
                            state.delta_started = time.monotonic()
                        state.delta_buffer.append(cast("ResponseTextDeltaEvent", data).delta)
                        if (
                            sum(map(len, state.delta_buffer)) >= ev.DELTA_FLUSH_CHARS
                            or time.monotonic() - state.delta_started >= ev.DELTA_FLUSH_SECONDS
                        ):
                            await flush_deltas()
                    elif kind == "response.completed":
                        usage = ev.usage_from_response(
                            cast("ResponseCompletedEvent", data).response
                        )
                        if usage:
                            model = model_names.get(state.agent_name, "")
                            ev.add_usage(state.usage, model, usage)
                            await flush_deltas()
                            await append(ev.USAGE, {"model": model, **usage})
                            if budget is not None and budget.cost(usage_so_far()) >= budget.amount:
                                # The hold is the run's spending cap: no further turn starts.
                                state.budget_exhausted = True
                                result.cancel(mode="after_turn")
                    continue
                await flush_deltas()
                if event.type == "agent_updated_stream_event":
                    if event.new_agent.name != state.agent_name:
                        await append(
                            ev.HANDOFF,
                            {"from_agent": state.agent_name, "to_agent": event.new_agent.name},
                        )
                        state.agent_name = event.new_agent.name
                        await append(ev.AGENT_UPDATED, {"agent": state.agent_name})
                elif event.type == "run_item_stream_event":
                    mapped = ev.map_run_item(event.name, event.item)
                    if mapped is not None:
                        await record_item(*mapped)
            await flush_deltas()
            await writer.drain()

        async def heartbeat() -> None:
            """Stop the stream once the run is cancelled (or lost), even between events; beat
            for the run unless its worker beats for all of its runs (``control.beats``)."""
            while not control.beats and not state.cancel.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(settings.RUN_HEARTBEAT_SECONDS):
                        await state.cancel.wait()
                if state.cancel.is_set():
                    break
                try:
                    row = await run_db(sink.beat, run.id)
                except Exception as exc:
                    if not is_connection_error(exc):
                        raise
                    continue  # the database is away; the next beat tries again
                if row is None or row:  # reaped or settled elsewhere, or a cancel is pending
                    control.stop()
            await state.cancel.wait()
            state.stopped = True
            result.cancel()

        def usage_so_far() -> dict[str, dict[str, int]]:
            usage = {
                m: dict(c)
                for m, c in (
                    state.usage or _fallback_usage(result, model_names, state.agent_name)
                ).items()
            }
            for model, counts in graph.nested_usage.items():
                ev.add_usage(usage, model, counts)
            return usage

        beat = asyncio.create_task(heartbeat())
        try:
            try:
                async with asyncio.timeout(settings.RUN_TIMEOUT_SECONDS):
                    await consume()
            except TimeoutError:
                result.cancel()
                raise RunTimedOut(f"The run exceeded {settings.RUN_TIMEOUT_SECONDS} s.") from None
        except Exception as exc:
            code, message = classify_exception(exc, context=f"run {run.id}")
            if code == "guardrail_tripped":
                info = guard.tripped_guardrail_info(exc)
                with contextlib.suppress(Exception):  # a failed write already failed the run
                    await append(ev.GUARDRAIL_TRIPPED, info)
                message = (
                    f"Guardrail {info.get('guardrail')} tripped: {info.get('detail', '')}".strip()
                )
            # Every event before the run's last one (the caller writes it).
            with contextlib.suppress(Exception):
                await writer.drain()
            return RunOutcome(
                status=AgentRun.Status.FAILED,
                error_code=code,
                error_message=message,
                usage=usage_so_far(),
                last_agent=state.agent_name,
            )
        finally:
            beat.cancel()

        usage = usage_so_far()
        last_agent = getattr(getattr(result, "last_agent", None), "name", state.agent_name)
        if state.budget_exhausted and not (result.is_complete and result.final_output is not None):
            return RunOutcome(
                status=AgentRun.Status.FAILED,
                error_code="budget_exhausted",
                usage=usage,
                last_agent=last_agent,
                error_message="The run reached its credit hold (the agent's per-run spending cap).",
            )
        if state.stopped:
            return RunOutcome(status=AgentRun.Status.CANCELLED, usage=usage, last_agent=last_agent)
        if result.interruptions:
            pending = [
                {
                    "call_id": item.call_id,
                    "tool": item.name,
                    "arguments": _arguments(item.arguments),
                    "agent": getattr(getattr(item, "agent", None), "name", ""),
                }
                for item in result.interruptions
            ]
            return RunOutcome(
                status=AgentRun.Status.REQUIRES_ACTION,
                usage=usage,
                last_agent=last_agent,
                resume_state=result.to_state().to_string(),
                pending_approvals=pending,
            )
        output = ev.jsonable(result.final_output)
        if redact_output and isinstance(output, str):
            output = guard.redact_output(guardrail_config, output)
        return RunOutcome(
            status=AgentRun.Status.SUCCEEDED, output=output, usage=usage, last_agent=last_agent
        )


async def _restore(agent: Any, run: AgentRun) -> Any:
    """The serialized RunState with each pending call approved or rejected as decided."""
    from agents import RunState

    sdk_state = await RunState.from_string(agent, run.resume_state)
    decisions = {p["call_id"]: p for p in run.pending_approvals}
    for item in sdk_state.get_interruptions():
        decision = decisions.get(item.call_id) or {}
        if decision.get("approved"):
            sdk_state.approve(item)
        else:
            sdk_state.reject(
                item, rejection_message=decision.get("message") or "A person rejected this call."
            )
    return sdk_state


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _fallback_usage(
    result: Any, model_names: dict[str, str], agent_name: str
) -> dict[str, dict[str, int]]:
    """When a provider streams no usage per response, take the SDK's run total."""
    usage = getattr(getattr(result, "context_wrapper", None), "usage", None)
    if usage is None or not usage.requests:
        return {}
    return {
        model_names.get(agent_name, ""): {
            "requests": usage.requests,
            "input_tokens": usage.input_tokens,
            "cached_input_tokens": getattr(usage.input_tokens_details, "cached_tokens", 0) or 0,
            "output_tokens": usage.output_tokens,
            "reasoning_tokens": getattr(usage.output_tokens_details, "reasoning_tokens", 0) or 0,
            "total_tokens": usage.total_tokens,
        }
    }
