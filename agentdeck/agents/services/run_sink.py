"""The runs service's side of the runtime's :class:`~agentdeck.agents.runtime.sink.RunSink`:
where an executing run's events, tool calls and heartbeats go (the event log, ``tool_calls``,
``agent_runs``). The runtime calls it and never imports the service (one-way layers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from agentdeck.agents.models import AgentRun
from agentdeck.agents.runtime import events as ev
from agentdeck.agents.runtime.sink import AppendResult, QueuedEvent
from agentdeck.agents.services.runs import (
    run_events_append,
    tool_call_finished,
    tool_call_started,
)
from agentdeck.core.reconnect import drop_broken_connection
from agentdeck.credits.services import credit_hold_get, usage_cost


@dataclass(frozen=True)
class _HoldBudget:
    amount: int
    prices: dict[str, dict[str, int]]

    def cost(self, usage: dict[str, dict[str, int]]) -> int:
        return usage_cost(usage, self.prices)


class ServiceRunSink:
    """Writes through the runs service. Stateless: one instance serves every run of a process."""

    tool_call_started = staticmethod(tool_call_started)
    tool_call_finished = staticmethod(tool_call_finished)

    def append(self, run_id: Any, batch: Sequence[QueuedEvent]) -> AppendResult:
        """The queued events in one statement; with their companion writes (a tool call's row,
        after its event), all in one transaction."""
        events = [(event_type, data, first_token) for event_type, data, first_token, _ in batch]
        thens = [then for *_, then in batch if then is not None]
        if not thens:
            return run_events_append(run_id=run_id, events=events)
        with transaction.atomic():
            outcome = run_events_append(run_id=run_id, events=events)
            for then in thens:
                then()
        return outcome

    def append_again(
        self, run_id: Any, batch: Sequence[QueuedEvent], last_seq: int | None
    ) -> AppendResult:
        """While a run is ``running`` its worker is the only writer of its events (the reaper
        writes only once the run has stopped heartbeating), so the run's last seq tells:
        ``last_seq`` plus the batch's length means the batch is there; ``last_seq`` means it is
        not. Before this worker's first write, ``last_seq`` is that of the run's latest
        ``run.started`` / ``run.resumed`` event (the attempt's first, written by the service)."""
        drop_broken_connection()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT next_seq, status, cancel_requested_at IS NOT NULL FROM agent_runs "
                "WHERE id = %s",
                [run_id],
            )
            row = cursor.fetchone()
            if row is None:
                raise AgentRun.DoesNotExist(run_id)
            if last_seq is None:
                cursor.execute(
                    "SELECT max(seq) FROM run_events WHERE run_id = %s AND type IN (%s, %s)",
                    [run_id, ev.RUN_STARTED, ev.RUN_RESUMED],
                )
                last_seq = cursor.fetchone()[0] or 0
        seq, status, cancel_requested = row
        if seq == last_seq + len(batch):
            return AppendResult(seq=seq, status=status, cancel_requested=cancel_requested)
        if seq != last_seq:
            if status == AgentRun.Status.RUNNING:
                raise RuntimeError(f"run {run_id}: its log moved from seq {last_seq} to {seq}")
            # The reaper settled it after our heartbeat went stale: the write loop sees the
            # status and stops.
            return AppendResult(seq=seq, status=status, cancel_requested=cancel_requested)
        return self.append(run_id, batch)

    def budget(self, run_id: Any) -> _HoldBudget | None:
        hold = credit_hold_get(run_id)
        return None if hold is None else _HoldBudget(amount=hold.amount, prices=hold.prices)

    def beat(self, run_id: Any) -> bool | None:
        drop_broken_connection()
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE agent_runs SET heartbeat_at = clock_timestamp() "
                "WHERE id = %s AND status = 'running' "
                "RETURNING cancel_requested_at IS NOT NULL",
                [run_id],
            )
            row = cursor.fetchone()
        return None if row is None else bool(row[0])


run_sink = ServiceRunSink()
