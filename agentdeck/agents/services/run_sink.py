"""The runs service's side of the runtime's :class:`~agentdeck.agents.runtime.sink.RunSink`:
where an executing run's events, tool calls and heartbeats go (the event log, ``tool_calls``,
``agent_runs``). The runtime calls it and never imports the service (one-way layers)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from django.core.exceptions import ObjectDoesNotExist
from django.db import connection, transaction

from agentdeck.agents.models import AgentRun
from agentdeck.agents.runtime import events as ev
from agentdeck.agents.runtime.sink import AppendResult, QueuedEvent
from agentdeck.agents.services.runs import (
    run_events_append,
    run_events_append_many,
    tool_call_finished,
    tool_call_started,
)
from agentdeck.core.db_threads import run_db
from agentdeck.core.reconnect import drop_broken_connection, is_connection_error
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

    def append(self, run_id: UUID, batch: Sequence[QueuedEvent]) -> AppendResult:
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
        self, run_id: UUID, batch: Sequence[QueuedEvent], last_seq: int | None
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

    def budget(self, run: AgentRun) -> _HoldBudget | None:
        if AgentRun.hold.is_cached(run):  # read with the run (agent_runs_begin)
            try:
                hold = run.hold
            except ObjectDoesNotExist:
                hold = None
        else:
            hold = credit_hold_get(run.id)
        return None if hold is None else _HoldBudget(amount=hold.amount, prices=hold.prices)

    def beat(self, run_id: UUID) -> bool | None:
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


class BatchingRunSink(ServiceRunSink):
    """The run worker's sink (one per worker loop): the event writes of its concurrent runs that
    arrive together go to the database in one statement (``run_events_append_many``).

    ``append_async`` queues a run's batch and waits for its result; while a write is in flight
    (at most ``max_in_flight`` at once) the batches of other runs queue up, and the next write
    takes them all. A batch with companion writes (a tool call's row) is written on its own, in
    its own transaction. A write that fails with the connection fails every run in it, and each
    run's writer tries again on its own (``append_again``); any other failure is retried run by
    run, so one run's bad batch fails only that run."""

    def __init__(self, *, max_in_flight: int = 2) -> None:
        self._pending: list[tuple[UUID, Sequence[QueuedEvent], asyncio.Future[AppendResult]]] = []
        self._writers: set[asyncio.Task[None]] = set()  # held, so none is garbage-collected
        # Writers still taking batches: decremented by a writer in the same step in which it
        # finds nothing pending, so a batch queued after that step always gets a writer (the
        # task's done-callback comes later: counting by it left a batch nobody would write).
        self._active = 0
        self._max_in_flight = max_in_flight

    async def append_async(self, run_id: UUID, batch: Sequence[QueuedEvent]) -> AppendResult:
        if any(then is not None for *_, then in batch):
            return await run_db(self.append, run_id, batch)
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._pending.append((run_id, batch, future))
        if self._active < self._max_in_flight:
            self._active += 1
            task = asyncio.create_task(self._write_pending())
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        return await future

    async def _write_pending(self) -> None:
        try:
            while self._pending:
                items, self._pending = self._pending, []
                try:
                    await self._write(items)
                except BaseException:  # cancelled (the loop is closing): no run waits for ever
                    for *_, future in items:
                        future.cancel()
                    raise
        finally:
            self._active -= 1

    async def _write(
        self, items: list[tuple[UUID, Sequence[QueuedEvent], asyncio.Future[AppendResult]]]
    ) -> None:
        """Write ``items`` in one statement and resolve each one's future."""
        try:
            results = await run_db(
                run_events_append_many,
                items=[(run_id, [e[:3] for e in batch]) for run_id, batch, _ in items],
            )
        except Exception as exc:
            if is_connection_error(exc):
                for *_, future in items:
                    if not future.done():
                        future.set_exception(exc)
                return
            for run_id, batch, future in items:  # find the batch that failed
                try:
                    result = await run_db(self.append, run_id, batch)
                except Exception as one:
                    if not future.done():
                        future.set_exception(one)
                else:
                    if not future.done():
                        future.set_result(result)
            return
        for run_id, _, future in items:
            if future.done():
                continue
            written = results.get(str(run_id))
            if written is None:
                future.set_exception(AgentRun.DoesNotExist(run_id))
            else:
                future.set_result(written)
