"""The publisher: one daemon thread per process running an event loop with a channel layer
instance of its own (the layers keep their connection pools per event loop:
agentdeck.core.channel_layers), whose one sender task sends what sync code hands over, in order.
Handing a message over returns at once; ``async_to_sync(group_send)`` per message would start a
loop and a thread and open connections every time (benchmarks/RESULTS.md).

When the layer's server is away (PostgreSQL or Redis restarting), the publisher keeps what it
was handed, up to ``QUEUE_MAX`` messages, retries the oldest with backoff and sends them all, in
order, once the server is back: notifications (``/ws/notifications/``) have no log to catch up
from, and a balance or status change sent late is still the current state.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from channels.layers import BaseChannelLayer

from agentdeck.core.reconnect import Backoff, Outage, RepeatedWarnings, is_connection_error

logger = logging.getLogger(__name__)

# Messages handed over but not yet sent, per process. A worker produces ~11 per run, so this is
# minutes of a stalled layer; beyond it messages are dropped (the log has the run events).
QUEUE_MAX = 10_000
# A send that takes longer is abandoned and tried again, so one hung connection cannot hold up
# the queue.
SEND_TIMEOUT_SECONDS = 10.0
# Repeated drops or failures are logged at most this often, with a count.
_WARN_INTERVAL_SECONDS = 5.0
# Notifications that carry a whole state (a balance) rather than a change wait this long before
# they leave; one submitted meanwhile for the same user replaces the waiting one. A run's hold
# and settlement, or a burst of parallel runs, then cost one send instead of one each: the two
# sends per settlement were the largest cost left in a credit settlement (benchmarks/credits.py).
COALESCE_SECONDS = 0.1


class Publisher:
    """A daemon thread running an event loop that sends channel-layer messages in order.

    :meth:`submit` is thread-safe, never blocks and never raises: it is safe from sync code and
    from inside a running event loop. Messages are sent one at a time by a single task reading
    one queue, so they leave in the order they were submitted. A send that fails because the
    layer's server is unreachable is retried with backoff until it goes through (the messages
    behind it wait: order is kept); any other failure is logged and the next message goes on.
    The caller must not mutate a message after submitting it (it is serialized when sent).
    """

    def __init__(self, layer: BaseChannelLayer, *, maxsize: int = QUEUE_MAX) -> None:
        self.layer = layer
        self.maxsize = maxsize
        self.loop = asyncio.new_event_loop()
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        # Coalescing messages waiting to be queued, by (group, key): the latest one of each.
        self._waiting: dict[tuple[str, str], dict[str, Any]] = {}
        # submitted/done count messages accepted and messages sent (or failed); flush() waits
        # for done to reach what was submitted when it was called. Guarded by _cond.
        self._cond = threading.Condition()
        self._submitted = 0
        self._done = 0
        self._closed = False
        self._warnings = RepeatedWarnings(_WARN_INTERVAL_SECONDS)
        self.outage = Outage("realtime publishing (channel layer)", logger)
        self._backoff = Backoff()
        self.thread = threading.Thread(
            target=self._run, name="agentdeck-realtime-publisher", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        sender = self.loop.create_task(self._sender())
        self.loop.run_forever()
        # Only close() stops the loop: end the sender and the layer's connections cleanly.
        sender.cancel()
        self.loop.run_until_complete(asyncio.gather(sender, return_exceptions=True))
        try:
            self.loop.run_until_complete(_close_layer(self.layer))
        except Exception:
            logger.debug("closing the publisher's channel layer failed", exc_info=True)
        self.loop.close()

    async def _sender(self) -> None:
        while True:
            group, message = await self._queue.get()
            await self._send(group, message)
            with self._cond:
                self._done += 1
                self._cond.notify_all()

    async def _send(self, group: str, message: dict[str, Any]) -> None:
        while True:
            try:
                await asyncio.wait_for(
                    self.layer.group_send(group, message), timeout=SEND_TIMEOUT_SECONDS
                )
            except Exception as exc:
                if not is_connection_error(exc) or self._closed:
                    self._warnings.warning(
                        logger, "realtime publish to %s failed", group, exc_info=True
                    )
                    return
                # The server is away: keep the message (and everything behind it) and try again.
                self.outage.failed(exc)
                with self._cond:
                    self._cond.notify_all()  # flush() stops waiting for an outage
                await asyncio.sleep(self._backoff.next())
                continue
            if self.outage.recovered():
                logger.warning("realtime publishing: %d message(s) still to send", self.pending)
            self._backoff.reset()
            return

    def submit(self, group: str, message: dict[str, Any], *, coalesce: str | None = None) -> bool:
        """Queue one message; False if it was dropped (queue full or publisher closed).
        With ``coalesce``, it replaces a message of the same group and key still waiting."""
        with self._cond:
            if self._closed:
                return False
            key = (group, coalesce) if coalesce is not None else None
            if key is not None and key in self._waiting:
                self._waiting[key] = message  # counted once, when the first one came
                return True
            if self._submitted - self._done >= self.maxsize:
                self._warnings.warning(
                    logger,
                    "realtime publish queue full (%d messages): message to %s dropped",
                    self.maxsize,
                    group,
                )
                return False
            if key is not None:
                self._waiting[key] = message
                self.loop.call_soon_threadsafe(
                    self.loop.call_later, COALESCE_SECONDS, self._release, key
                )
            else:
                # Under the lock, so the order in the loop's queue is the order of _submitted.
                self.loop.call_soon_threadsafe(self._queue.put_nowait, (group, message))
            self._submitted += 1
        return True

    def _release(self, key: tuple[str, str]) -> None:
        """On the loop: queue the latest waiting message for ``key`` (if flush has not)."""
        with self._cond:
            message = self._waiting.pop(key, None)
        if message is not None:
            self._queue.put_nowait((key[0], message))

    def _release_all(self) -> None:
        with self._cond:
            keys = list(self._waiting)
        for key in keys:
            self._release(key)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every message submitted before this call was sent (or failed); waiting
        coalesced messages leave at once. Returns False on timeout, and at once while the layer
        is unreachable (the messages stay queued and leave when it is back). Blocks: not for
        code running on an event loop."""
        if threading.current_thread() is self.thread:
            return False  # would wait for ourselves
        with self._cond:
            target = self._submitted
            if self._waiting and not self._closed:
                self.loop.call_soon_threadsafe(self._release_all)
            return self._cond.wait_for(
                lambda: self._done >= target or self.outage.down, timeout=timeout
            ) and (self._done >= target)

    @property
    def pending(self) -> int:
        with self._cond:
            return self._submitted - self._done

    def close(self, timeout: float | None = 2.0) -> bool:
        """Flush, then stop the loop. Later submissions are dropped."""
        flushed = self.flush(timeout)
        with self._cond:
            self._closed = True
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        return flushed


async def _close_layer(layer: BaseChannelLayer) -> None:
    from channels_redis.pubsub import RedisPubSubChannelLayer

    if isinstance(layer, RedisPubSubChannelLayer):
        # Its flush() unsubscribes and closes this loop's connections (the queue layer's
        # flush() would delete every queued message instead).
        await layer.flush()
        return
    # channels_redis's queue layer; agentdeck.core.channel_layers.PostgresChannelLayer.
    close_pools = getattr(layer, "close_pools", None)
    if close_pools is not None:
        await close_pools()
