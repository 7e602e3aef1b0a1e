"""Following one run's event log: shared by the WebSocket consumer and the SSE stream.

The log is the truth and the channel layer only a wake-up. A follower subscribes to the run's
group first and replays the log second; every live message is then checked against the last
``seq`` delivered:

* already delivered (it arrived during the replay): skipped;
* the next one, carried whole: delivered from the message;
* a jump past the next one (the layer dropped something) or a bare wake-up (an event too big to
  travel, ``in_log``): the gap is read from the log.

A dropped message is only noticed when a later one arrives, so a run's *last* messages could be
lost for good; followers therefore also read the log after ``RUN_STREAM_RECHECK_SECONDS``
without news (:meth:`RunEventCursor.backlog` is cheap: one indexed query).

When the channel layer's connection comes back after an outage it tells every local channel
(``channel_layer.reconnected``, agentdeck.core.channel_layers): followers read the log at once
rather than at the next recheck. A log read that fails because the database is away
(:func:`until_unreachable`) leaves the follower where it stands, to read again at its next
wake-up or recheck.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from channels.db import database_sync_to_async

from agentdeck.agents.models import RunEvent
from agentdeck.agents.runtime.events import TERMINAL_EVENT_TYPES
from agentdeck.core.reconnect import is_connection_error

logger = logging.getLogger(__name__)

REPLAY_BATCH = 500

Frame = dict[str, Any]


def parse_after(raw: str | None) -> int | None:
    """The ``after`` cursor: a non-negative integer (default 0), or None when invalid."""
    if raw is None or raw == "":
        return 0
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses (a 500 on SSE).
    if not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def _frames_after(run_id: str, after: int) -> list[Frame]:
    rows = (
        # The plugin takes a UUID only for a UUID key; Django converts the text as it does one.
        RunEvent.objects.filter(run_id=run_id, seq__gt=after)  # type: ignore[misc]
        .order_by("seq")
        .values_list("seq", "type", "created_at", "data")[:REPLAY_BATCH]
    )
    return [
        {
            "seq": seq,
            "type": type_,
            "run_id": run_id,
            "created_at": created_at.isoformat().replace("+00:00", "Z"),
            "data": data,
        }
        for seq, type_, created_at, data in rows
    ]


# Reads in flight, per event loop: when a message is dropped, every follower of that run in the
# process misses the same one and asks for the same rows at once; they share one query.
_reads: dict[tuple[int, str, int], asyncio.Future[list[Frame]]] = {}


async def read_after(run_id: str, after: int) -> list[Frame]:
    """``_frames_after`` through the database thread, one query per (run, after) at a time.
    The frames are shared between callers: they must not be changed."""
    key = (id(asyncio.get_running_loop()), run_id, after)
    future = _reads.get(key)
    if future is None:
        # database_sync_to_async closes stale connections around the read itself: the
        # WebSocket consumers skip channels' per-message close for live events.
        future = asyncio.ensure_future(database_sync_to_async(_frames_after)(run_id, after))
        _reads[key] = future
        future.add_done_callback(lambda _f: _reads.pop(key, None))
    # A follower that goes away must not cancel the read the others wait for.
    return await asyncio.shield(future)


class RunEventCursor:
    """Where one follower stands in one run's log. Not safe for concurrent use: callers that
    read live messages and recheck the log from two tasks hold a lock around it."""

    def __init__(self, run_id: str, after: int) -> None:
        self.run_id = run_id
        self.last_seq = after
        self.finished = False

    def _advance(self, frame: Frame) -> Frame:
        self.last_seq = frame["seq"]
        self.finished = frame["type"] in TERMINAL_EVENT_TYPES
        return frame

    async def backlog(self) -> AsyncIterator[Frame]:
        """Everything the log holds after ``last_seq``, in order, up to the terminal event."""
        while not self.finished:
            frames = await read_after(self.run_id, self.last_seq)
            for frame in frames:
                yield self._advance(frame)
                if self.finished:
                    return
            if len(frames) < REPLAY_BATCH:
                return

    async def live(self, message: dict[str, Any]) -> AsyncIterator[Frame]:
        """The frames a live ``run.event`` message stands for (none, itself, or a gap's worth)."""
        seq = message["seq"]
        if self.finished or seq <= self.last_seq:
            return
        if seq == self.last_seq + 1 and not message.get("in_log"):
            yield self._advance(
                {
                    "seq": seq,
                    "type": message["event_type"],
                    "run_id": message["run_id"],
                    "created_at": message["created_at"].replace("+00:00", "Z"),
                    "data": message["data"],
                }
            )
            return
        async for frame in self.backlog():
            yield frame


async def until_unreachable(frames: AsyncIterator[Frame]) -> AsyncIterator[Frame]:
    """``frames`` until reading the log fails because the database is unreachable; then stop
    quietly (the cursor stays on the last frame yielded) instead of ending the stream."""
    try:
        async for frame in frames:
            yield frame
    except Exception as exc:
        if not is_connection_error(exc):
            raise
        logger.info("run log unreadable for now (%s); the follower will read it again", exc)


def _run_is_terminal(run_id: str) -> bool:
    from agentdeck.agents.models import AgentRun
    from agentdeck.agents.models.run import TERMINAL_STATUSES

    status = AgentRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    return status is None or status in TERMINAL_STATUSES


async def wait_for_run_end(run_id: str, timeout: float) -> bool:
    """Wait until the run is terminal (True) or ``timeout`` passes (False), holding no thread:
    the run's group on the channel layer says when its terminal event is written. Subscribed
    before the first look at the row, so an end between the two is not missed; the row is read
    again only at ``RUN_STREAM_RECHECK_SECONDS`` without news (a dropped message) and after a
    reconnection of the layer, not polled. ``POST .../runs/`` with ``mode=wait`` uses it."""
    from channels.layers import get_channel_layer
    from django.conf import settings

    from agentdeck.core.realtime import run_group

    layer = get_channel_layer()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    channel = await layer.new_channel("wait.")
    group = run_group(run_id)
    subscribed = False
    receiving: asyncio.Future | None = None
    try:
        try:
            await layer.group_add(group, channel)
            subscribed = True
        except Exception as exc:
            if not is_connection_error(exc):
                raise
        check = True
        while True:
            if check and await database_sync_to_async(_run_is_terminal)(run_id):
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if not subscribed:  # the layer is away: look at the row now and then meanwhile
                await asyncio.sleep(min(remaining, settings.RUN_STREAM_RECHECK_SECONDS))
                continue
            if receiving is None:
                receiving = asyncio.ensure_future(layer.receive(channel))
            done, _ = await asyncio.wait(
                {receiving}, timeout=min(remaining, settings.RUN_STREAM_RECHECK_SECONDS)
            )
            check = not done
            if done:
                message, receiving = receiving.result(), None
                if message.get("event_type") in TERMINAL_EVENT_TYPES:
                    return True
                check = message.get("type") != "run.event"  # e.g. the layer reconnected
    finally:
        if receiving is not None:
            receiving.cancel()
        if subscribed:
            with contextlib.suppress(Exception):
                await layer.group_discard(group, channel)
