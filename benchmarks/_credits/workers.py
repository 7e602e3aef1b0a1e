"""The workers: a job each, in forked processes or threads, released together by a barrier; the
rate and the CPU they and the PostgreSQL server spent.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from _support import (
    BenchError,
    cpu_by_group,
)

from .environment import FAILED_PUBLISHES
from .sql import bare_once, service_sql_once, settle_once


@dataclass
class Job:
    side: str
    user_id: str
    run_ids: list[str]  # the holding sides: the warm-up ones first
    count: int  # timed settlements
    plan: Any
    cost: int
    warmup: int  # untimed settlements before the barrier


def server_cpu(postmaster: int | None) -> float | None:
    """CPU seconds the local PostgreSQL server has used (postmaster, its backends and their
    reaped CPU); None for a server on another machine."""
    return None if postmaster is None else cpu_by_group({"postgres": postmaster}).get("postgres")


@dataclass
class Outcome:
    start: float
    end: float
    done: int
    client_cpu: float  # this worker's CPU seconds (its process, or its thread in thread mode)
    failed_publishes: int  # in this process (process mode)


def settle_many(job: Job, run_ids: list[str], count: int) -> None:
    """``count`` settlements of the job's side (the holding sides: on ``run_ids``)."""
    from django.db import connection

    if job.side in ("agentdeck", "no_publish", "own_statements"):
        from agentdeck.core import realtime

        in_run_transactions = job.side != "own_statements"
        for run_id in run_ids:
            settle_once(job.user_id, run_id, job.plan, job.cost, in_run_transactions)
        # credits.updated leaves from the publishing thread: count the time it takes to send
        # what the settlements published, as a task's end does.
        realtime.flush(timeout=60)
    elif job.side == "service_sql":
        with connection.cursor() as cursor:
            for run_id in run_ids:
                service_sql_once(cursor, job.user_id, run_id, job.plan, job.cost)
    else:
        with connection.cursor() as cursor:
            for _ in range(count):
                bare_once(cursor, job.user_id, job.plan.amount, job.cost)


def run_job(job: Job, barrier: Any, mode: str) -> Outcome:
    """One worker: connect, warm up, wait for the others, do its settlements, close its
    connection."""
    from django.db import connection

    clock = time.process_time if mode == "process" else time.thread_time
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        # Warm up like a long-lived worker process (a qcluster worker settles thousands of
        # runs): the side's own statements once, its publishing thread and channel-layer
        # connection started, the server process's caches of the tables it touches filled.
        # Each side does it the same way, before the barrier, untimed.
        settle_many(job, job.run_ids[: job.warmup], job.warmup)
        barrier.wait()
        failed0, cpu0, start = FAILED_PUBLISHES.count, clock(), time.monotonic()
        settle_many(job, job.run_ids[job.warmup :], job.count)
        end, cpu1 = time.monotonic(), clock()
    finally:
        connection.close()
    return Outcome(start, end, job.count, cpu1 - cpu0, FAILED_PUBLISHES.count - failed0)


@dataclass
class Sample:
    rate: float  # settlements/s
    client_ms: float  # worker CPU per settlement
    server_ms: float | None  # the whole PostgreSQL server's CPU per settlement
    failed_publishes: int = 0


def _fresh_process_state() -> None:
    """A forked worker starts like a fresh process: no channel layer instance (channels_redis
    keeps per-event-loop pools) and, for channels_postgres, no module-level connection pool whose
    sockets and background tasks belong to the parent."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    pg_layer_db = sys.modules.get("channels_postgres.db")
    if pg_layer_db is not None:
        pg_layer_db.connection_pool = None


def _process_entry(job: Job, barrier: Any, results: Any, index: int) -> None:
    try:
        _fresh_process_state()
        results.put((index, run_job(job, barrier, "process"), None))
    except BaseException:  # reported to the parent, which fails the benchmark
        with contextlib.suppress(Exception):
            barrier.abort()
        results.put((index, None, traceback.format_exc()))


def run_workers(jobs: list[Job], mode: str, timeout: float, postmaster: int | None) -> Sample:
    """Run the jobs concurrently; settlements/s over first start -> last end, and CPU spent per
    settlement by the workers and by the PostgreSQL server (from before the workers start to
    after they have all disconnected, so it includes connecting, a few ms)."""
    from django.db import connections

    n = len(jobs)
    server0, failed0 = server_cpu(postmaster), FAILED_PUBLISHES.count
    outcomes: list[Outcome] = [None] * n  # type: ignore[list-item]
    errors: list[str] = []
    if mode == "thread":
        barrier: Any = threading.Barrier(n, timeout=timeout)

        def entry(i: int) -> None:
            try:
                outcomes[i] = run_job(jobs[i], barrier, "thread")
            except BaseException:
                barrier.abort()
                errors.append(traceback.format_exc())

        threads = [threading.Thread(target=entry, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in threads):
            raise BenchError(f"workers still running after {timeout:.0f}s")
    else:
        ctx = multiprocessing.get_context("fork")
        connections.close_all()  # no connection may be shared with a forked child
        barrier = ctx.Barrier(n, timeout=timeout)
        results = ctx.Queue()
        procs = [
            ctx.Process(target=_process_entry, args=(jobs[i], barrier, results, i), daemon=True)
            for i in range(n)
        ]
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout
        try:
            for _ in range(n):
                remaining = max(0.1, deadline - time.monotonic())
                try:
                    index, outcome, error = results.get(timeout=remaining)
                except Exception as e:
                    raise BenchError(f"workers still running after {timeout:.0f}s") from e
                if error:
                    errors.append(error)
                outcomes[index] = outcome
        finally:
            for p in procs:
                p.join(max(0.1, deadline - time.monotonic()))
                if p.is_alive():
                    p.terminate()
                    p.join(5)
    if errors:
        raise BenchError("a worker failed:\n" + errors[0])
    time.sleep(0.1)  # let the postmaster reap the closed backends (their CPU moves to it)
    server1 = server_cpu(postmaster)
    done = sum(o.done for o in outcomes)
    elapsed = max(o.end for o in outcomes) - min(o.start for o in outcomes)
    server = None if server0 is None or server1 is None else 1000 * (server1 - server0) / done
    if mode == "thread":
        failed = FAILED_PUBLISHES.count - failed0
    else:
        failed = sum(o.failed_publishes for o in outcomes)
    return Sample(
        rate=done / elapsed,
        client_ms=1000 * sum(o.client_cpu for o in outcomes) / done,
        server_ms=server,
        failed_publishes=failed,
    )
