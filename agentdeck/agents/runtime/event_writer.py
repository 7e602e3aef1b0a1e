"""A run's event log, written while the run goes on: events are queued and written in batches
by one task, in order, surviving a database restart (used by ``executor``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from django.conf import settings

from agentdeck.agents.runtime.sink import AppendResult, QueuedEvent, RunSink
from agentdeck.core.db_threads import run_db
from agentdeck.core.reconnect import Backoff, Outage, is_connection_error

logger = logging.getLogger(__name__)

# Events queued beyond this many make append() wait for the writer (never in a normal run).
MAX_QUEUED_EVENTS = 256


class EventWriter:
    """A run's events, written while the run goes on. ``append`` queues an event (with the
    write that belongs to it, if any) and returns; one task writes everything queued in one
    statement, then whatever queued up meanwhile, and so on. A burst of events (a model turn
    ending: usage, a tool call, a message) costs one write instead of one each, the order and
    the gapless seqs are kept, and the SDK is not held up by the database between events. An
    event waits for no other write than the one in flight, so a listener sees it as soon as it
    did before. ``drain`` waits for everything queued; a write that failed raises there or at
    the next ``append``, and nothing after it is written."""

    def __init__(
        self, run_id: UUID, sink: RunSink, on_written: Callable[[AppendResult], None]
    ) -> None:
        self._run_id = run_id
        self._sink = sink
        self._on_written = on_written
        self._queue: list[QueuedEvent] = []
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._last_seq: int | None = None
        self.outage = Outage(f"run {run_id}: database (event log writes)", logger)

    async def append(
        self,
        event_type: str,
        data: dict[str, Any],
        first_token: bool = False,
        then: Callable[[], None] | None = None,
    ) -> None:
        if self._error is not None:
            raise self._error
        self._queue.append((event_type, data, first_token, then))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write())
        elif len(self._queue) >= MAX_QUEUED_EVENTS:
            await self.drain()

    async def _write(self) -> None:
        while self._queue and self._error is None:
            batch, self._queue = self._queue, []
            try:
                outcome = await self._write_batch(batch)
            except Exception as exc:
                self._error = exc
                self._queue.clear()
                return
            self._last_seq = outcome.seq
            self._on_written(outcome)

    async def _write_batch(self, batch: list[QueuedEvent]) -> AppendResult:
        """One batch, surviving a database restart: on a connection error, wait with backoff
        and write it again unless it turns out to have committed (``RunSink.append_again``);
        give up after ``RUN_STALE_AFTER_SECONDS``."""
        try:
            return await self._append(batch)
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            self.outage.failed(exc)
        backoff = Backoff()
        give_up_at = time.monotonic() + settings.RUN_STALE_AFTER_SECONDS
        while True:
            await asyncio.sleep(backoff.next())
            try:
                outcome = await run_db(self._sink.append_again, self._run_id, batch, self._last_seq)
            except Exception as exc:
                if not is_connection_error(exc) or time.monotonic() > give_up_at:
                    raise
                self.outage.failed(exc)
                continue
            self.outage.recovered()
            return outcome

    async def _append(self, batch: list[QueuedEvent]) -> AppendResult:
        # A sink that batches the writes of concurrent runs (the run worker's) says so by
        # offering append_async; otherwise the write runs where the ORM belongs.
        append_async = getattr(self._sink, "append_async", None)
        if append_async is not None:
            written: AppendResult = await append_async(self._run_id, batch)
            return written
        return await run_db(self._sink.append, self._run_id, batch)

    async def drain(self) -> None:
        # Shielded: a caller cancelled while it waits (the run's timeout) must not cancel a
        # write that may already be committing.
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        if self._error is not None:
            raise self._error
