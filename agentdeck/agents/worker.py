"""The run worker: one process, one event loop, up to ``RUN_CONCURRENCY`` runs in flight.

Models spend seconds per call, so a process that executed one run at a time (a django-q2 task
per run) served as many users at once as it had processes. Here each run is an asyncio task;
what they share is bounded: ``RUN_DB_THREADS`` database threads (one connection each,
``agentdeck.core.db_threads``), one HTTP client per provider (``runtime/clients.py``), one
LISTEN connection, one heartbeat statement per interval, and the event writes of runs that
arrive together, one statement for all (``BatchingRunSink``).

The run row stays the durable unit of work:

1. **Claim** (``agent_runs_claim``): queued -> running with a conditional UPDATE over
   ``FOR UPDATE SKIP LOCKED`` rows, as many as there are free slots, never more than
   ``RUN_PER_USER_CAP`` running for one user across all workers (the rest stay ``queued``
   until a slot frees). A run is claimed once, however many workers there are.
2. **Wake-up**: ``run_queue_notify`` NOTIFYs at the commit that queued a run; the worker
   LISTENs on its own connection (reconnecting with backoff) and also polls every
   ``RUN_POLL_SECONDS``, so a lost notification (or a listener being reconnected) delays a
   run, never loses it. A run finishing frees a slot and looks again at once.
3. **Heartbeat**: every ``RUN_HEARTBEAT_SECONDS`` one UPDATE refreshes all in-flight runs and
   reports which have a cancel pending (stopped at once, even in the middle of a model call)
   or left ``running`` under the worker (reaped: stopped, not settled here).
4. **Execute and settle** as ``agent_run_execute`` does for one run: begin (the runs of one
   claim together, ``agent_runs_begin``), ``execute_async``, ``agent_run_settle`` (credits
   captured for what was used, the terminal event). A worker that dies leaves ``running`` rows whose heartbeat goes stale: the reaper
   fails them (``worker_lost``) and releases their holds.
5. **Drain** (SIGTERM or SIGINT): stop claiming, let in-flight runs finish for up to
   ``WORKER_DRAIN_SECONDS``, then stop the rest and settle them ``failed`` with the code
   ``worker_shutdown`` (their usage so far is charged, the rest of the hold released), and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings

from agentdeck.agents.models import AgentRun
from agentdeck.agents.runtime.sink import RunControl, RunOutcome
from agentdeck.core.db_threads import DatabaseThreads, run_db, use_database_threads
from agentdeck.core.reconnect import Backoff, Outage, is_connection_error

logger = logging.getLogger(__name__)

Status = AgentRun.Status


@dataclass(frozen=True)
class WorkerConfig:
    concurrency: int
    per_user_cap: int
    db_threads: int
    poll_seconds: float
    heartbeat_seconds: float
    drain_seconds: float

    @classmethod
    def from_settings(cls, **overrides: Any) -> WorkerConfig:
        values = {
            "concurrency": settings.RUN_CONCURRENCY,
            "per_user_cap": settings.RUN_PER_USER_CAP,
            "db_threads": settings.RUN_DB_THREADS,
            "poll_seconds": settings.RUN_POLL_SECONDS,
            "heartbeat_seconds": settings.RUN_HEARTBEAT_SECONDS,
            "drain_seconds": settings.WORKER_DRAIN_SECONDS,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class RunWorker:
    """See the module docstring. ``serve()`` returns once the worker has drained."""

    def __init__(self, config: WorkerConfig, *, name: str | None = None) -> None:
        from agentdeck.agents.services.runs import worker_name

        self.config = config
        self.name = name or worker_name()
        self.in_flight: dict[UUID, RunControl] = {}
        self.peak_in_flight = 0
        self.executed = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: Any = None  # made on the worker's loop (serve)
        self._claim_outage = Outage(f"run worker {self.name}: claims", logger)

    # --- control ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming and drain (what SIGTERM does)."""
        if not self._stopping.is_set():
            logger.info(
                "run worker %s: draining %d run(s) (up to %g s)",
                self.name,
                len(self.in_flight),
                self.config.drain_seconds,
            )
        self._stopping.set()
        self._wake.set()

    def stop_threadsafe(self) -> None:
        """``stop()`` from another thread (a test, a signal handler outside the loop)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.stop)

    # --- the loop ---------------------------------------------------------------------------------

    async def serve(self, *, ready: Callable[[], object] | None = None) -> None:
        from agentdeck.agents.runtime.clients import client_pool_scope
        from agentdeck.agents.services.run_sink import BatchingRunSink

        self._loop = asyncio.get_running_loop()
        self._sink = BatchingRunSink()
        threads = DatabaseThreads(self.config.db_threads, name="run-db")
        try:
            with use_database_threads(threads):
                async with client_pool_scope():
                    listener = asyncio.create_task(self._listen())
                    beats = asyncio.create_task(self._beat_forever())
                    try:
                        if ready is not None:
                            ready()
                        await self._claim_forever()
                        await self._drain()
                    finally:
                        for task in (listener, beats):
                            task.cancel()
                        await asyncio.gather(listener, beats, return_exceptions=True)
        finally:
            await asyncio.get_running_loop().run_in_executor(None, threads.close)
            from agentdeck.core.realtime import flush

            await asyncio.get_running_loop().run_in_executor(None, flush)

    async def _claim_forever(self) -> None:
        from agentdeck.agents.services.runs import agent_runs_claim

        backoff = Backoff()
        claim_lost = False
        while not self._stopping.is_set():
            # Cleared before the claim: a run queued while it is in flight wakes the next one.
            self._wake.clear()
            free = self.config.concurrency - len(self.in_flight)
            claimed: list[UUID] = []
            if free > 0:
                try:
                    if claim_lost:
                        claimed = await self._held_but_not_running()
                        claim_lost = False
                    claimed += await run_db(
                        agent_runs_claim,
                        limit=free - len(claimed),
                        worker=self.name,
                        per_user_cap=self.config.per_user_cap,
                    )
                except Exception as exc:
                    if not is_connection_error(exc):
                        raise
                    # The claim may have committed before its answer was lost.
                    claim_lost = True
                    self._claim_outage.failed(exc)
                    await self._sleep(backoff.next())
                    continue
                self._claim_outage.recovered()
                backoff.reset()
            for run_id, run in (await self._begin(claimed)).items():
                self._start(run_id, run)
            if claimed and len(claimed) == free:
                continue  # full: the next wake is a run finishing
            if claimed:
                continue  # there may be more queued than one claim saw; look again at once
            await self._sleep(self.config.poll_seconds)

    async def _held_but_not_running(self) -> list[UUID]:
        """Runs claimed by this worker that it does not execute: a claim whose commit went
        through but whose answer was lost with the connection. Taken up again rather than left
        to the reaper (they would fail ``worker_lost`` a minute later)."""
        from agentdeck.agents.services.runs import agent_runs_held

        held = await run_db(agent_runs_held, worker=self.name)
        return [run_id for run_id in held if run_id not in self.in_flight]

    async def _begin(self, run_ids: list[UUID]) -> dict[UUID, AgentRun | None]:
        """The claimed runs, begun together (``agent_runs_begin``); None for each when that
        failed: each run then begins on its own, checking what the failed call did."""
        from agentdeck.agents.services.runs import agent_runs_begin

        if not run_ids:
            return {}
        try:
            runs = await run_db(agent_runs_begin, run_ids=run_ids)
        except Exception:
            logger.warning(
                "run worker %s: could not begin %d runs together",
                self.name,
                len(run_ids),
                exc_info=True,
            )
            return dict.fromkeys(run_ids)
        begun: dict[UUID, AgentRun | None] = {run.id: run for run in runs}
        return {run_id: begun.get(run_id) for run_id in run_ids}

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    def _start(self, run_id: UUID, run: AgentRun | None) -> None:
        control = RunControl(beats=True)
        self.in_flight[run_id] = control
        self.peak_in_flight = max(self.peak_in_flight, len(self.in_flight))
        task = asyncio.create_task(self._run(run_id, control, run), name=f"run:{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, run_id: UUID, control: RunControl, run: AgentRun | None) -> None:
        from agentdeck.agents.runtime.executor import execute_async
        from agentdeck.agents.services.runs import agent_run_begin, agent_run_settle

        try:
            if run is None:  # not begun with the others: it may have been, all the same
                run = await run_db(agent_run_begin, run_id=run_id, again=True)
            outcome = await execute_async(run, sink=self._sink, control=control)
            if control.shutdown and outcome.status == Status.CANCELLED:
                outcome = RunOutcome(
                    status=Status.FAILED,
                    usage=outcome.usage,
                    last_agent=outcome.last_agent,
                    error_code="worker_shutdown",
                    error_message="The worker shut down before the run finished; start it again.",
                )
            await run_db(agent_run_settle, run=run, outcome=outcome)
            self.executed += 1
        except Exception:
            # agent_run_begin / settle gave up on the database (past RUN_STALE_AFTER_SECONDS):
            # the reaper settles the run.
            logger.exception("run worker %s: run %s could not be executed", self.name, run_id)
        finally:
            self.in_flight.pop(run_id, None)
            self._wake.set()

    async def _drain(self) -> None:
        deadline = time.monotonic() + self.config.drain_seconds
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=deadline - time.monotonic())
        if self._tasks:
            logger.warning(
                "run worker %s: %d run(s) still running after %g s; stopping them (worker_shutdown)",
                self.name,
                len(self._tasks),
                self.config.drain_seconds,
            )
            for control in self.in_flight.values():
                control.shutdown = True
                control.stop()
            # Settling is a few statements each; the runs stop at their next await.
            await asyncio.wait(set(self._tasks), timeout=max(10.0, self.config.drain_seconds))

    # --- heartbeats -------------------------------------------------------------------------------

    async def _beat_forever(self) -> None:
        from agentdeck.agents.services.runs import agent_runs_heartbeat

        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            run_ids = list(self.in_flight)
            if not run_ids:
                continue
            try:
                running = await run_db(agent_runs_heartbeat, run_ids=run_ids)
            except Exception as exc:
                if not is_connection_error(exc):
                    logger.exception("run worker %s: heartbeat failed", self.name)
                continue  # the database is away; the next beat tries again
            for run_id in run_ids:
                control = self.in_flight.get(run_id)
                if control is None:
                    continue  # finished meanwhile
                # Reaped or settled elsewhere (missing), or a cancel is pending (True).
                if running.get(run_id, True):
                    control.stop()

    # --- wake-ups ---------------------------------------------------------------------------------

    async def _listen(self) -> None:
        """LISTEN for queued runs on a connection of its own, reconnecting with backoff; each
        notification wakes the claim loop (the poll covers the time it is away)."""
        import psycopg
        from django.db import connections

        from agentdeck.agents.services.runs import RUN_QUEUE_CHANNEL

        params = connections["default"].get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        outage = Outage(f"run worker {self.name}: LISTEN {RUN_QUEUE_CHANNEL}", logger)
        backoff = Backoff()
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(**params, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {RUN_QUEUE_CHANNEL}")
                    outage.recovered()
                    backoff.reset()
                    self._wake.set()  # whatever was queued while we were away
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                outage.failed(exc)
                await asyncio.sleep(backoff.next())


def install_signal_handlers(worker: RunWorker) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
