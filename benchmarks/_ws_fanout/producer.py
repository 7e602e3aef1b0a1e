"""The producer role: append the events of some runs through the worker's own service functions."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from .protocol import (
    Pacer,
    count_layer_drops,
    cpu_seconds_since,
    emit,
    wait_go,
    write_result,
)


def role_producer(spec: dict[str, Any]) -> None:
    """Append the events of some runs through the worker's own service functions."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from asgiref.sync import async_to_sync

    # As the worker's executor does: an event loop of our own under async_to_sync, the ORM
    # through sync_to_async, publish_on_commit's async_to_sync landing back on this loop.
    write_result(spec, async_to_sync(_producer)(spec))


async def _producer(spec: dict[str, Any]) -> dict[str, Any]:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer
    from django.db import connection

    from agentdeck.agents.services.runs import (
        RunOutcome,
        agent_run_claim,
        agent_run_finish,
        run_event_append,
    )

    # threads == 1 is the worker's own arrangement: every ORM call on the one thread that called
    # async_to_sync. More threads (each with its own connection) let one process append for
    # several runs at once, but under the GIL they mostly wait for each other.
    threads = spec["threads"]
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="append")

    def in_pool(fn):
        if threads == 1:
            return sync_to_async(fn)
        return sync_to_async(fn, thread_sensitive=False, executor=pool)

    runs: list[tuple[int, str]] = [tuple(r) for r in spec["runs"]]
    for _, run_id in runs:
        if not await in_pool(agent_run_claim)(run_id=run_id):
            raise SystemExit(f"run {run_id} could not be claimed")
    barrier = threading.Barrier(threads, timeout=30)

    def warm() -> None:
        connection.ensure_connection()
        if threads > 1:
            barrier.wait()

    await asyncio.gather(*(in_pool(warm)() for _ in range(threads)))
    await get_channel_layer().group_send("bench.warmup", {"type": "bench.noop"})

    # Instrumentation only: time the publish step (group_send after commit) apart from the
    # append as a whole, by wrapping the module function publish_on_commit's callback calls.
    from agentdeck.core import realtime

    publish_ms: list[float] = []
    original_publish = realtime.publish

    def timed_publish(group: str, message: dict[str, Any], **options: Any) -> None:
        started = time.perf_counter()
        original_publish(group, message, **options)
        if group.startswith("run."):
            publish_ms.append((time.perf_counter() - started) * 1000)

    realtime.publish = timed_publish
    drops = count_layer_drops()

    pacer = Pacer(spec)
    emit("ready")
    t0 = await wait_go()
    usage_before = os.times()

    async def send(index: int, run_id: str, seq: int, event_type: str, data: dict) -> None:
        if seq == pacer.n:
            outcome = RunOutcome(status="succeeded", output="done", last_agent="bench")
            if not await in_pool(agent_run_finish)(run_id=run_id, outcome=outcome):
                raise SystemExit(f"run {run_id} could not be finished")
        else:
            result = await in_pool(run_event_append)(run_id=run_id, type=event_type, data=data)
            if result.seq != seq:
                raise SystemExit(f"run {run_id}: appended seq {result.seq}, expected {seq}")

    await pacer.run(t0, runs, send)
    pool.shutdown(wait=False)
    return {
        "layer_drops": drops.drops,
        "publish_ms": publish_ms,
        "cpu_s": cpu_seconds_since(usage_before),
        **pacer.figures(),
    }
