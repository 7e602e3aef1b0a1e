"""The one way agentdeck publishes realtime events (convention 8).

Producers persist first, then call :func:`publish_on_commit`; the message goes to the channel
layer group only after the surrounding transaction commits, so no client ever hears of a row
that was rolled back. Consumers (``/ws/...``) treat a message as a wake-up: the persisted log
is the truth, and a client that missed a message catches up from it.

How a message leaves the process: every process has one publishing event loop, on a daemon
thread, with a channel layer instance of its own (the layers keep their connection pools per
event loop: agentdeck.core.channel_layers). Sync code hands a message over and returns at once;
one sender task sends them in the order they were handed over (``async_to_sync(group_send)``
per message would start a loop and a thread and open connections every time: the largest cost
of the run path, benchmarks/RESULTS.md). The in-memory layer (unit tests) keeps the direct path:
its groups live in the one instance the consumers use.

When the layer's server is away (PostgreSQL or Redis restarting), the publisher keeps what it
was handed, up to ``QUEUE_MAX`` messages, retries the oldest with backoff and sends them all, in
order, once the server is back. Why keep them rather than rely on the log alone: run events are
in the log (followers catch up from it when their layer reconnects), but notifications
(``/ws/notifications/``) have no log, and a balance or status change sent late is still the
current state. What a full queue drops is lost to live delivery only.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from typing import Any, Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import (
    DEFAULT_CHANNEL_LAYER,
    BaseChannelLayer,
    InMemoryChannelLayer,
    channel_layers,
    get_channel_layer,
)
from django.core.signals import setting_changed
from django.db import transaction

from agentdeck.core.reconnect import Backoff, Outage, RepeatedWarnings, is_connection_error

logger = logging.getLogger(__name__)

# Messages handed over but not yet sent, per process. A worker produces ~11 per run, so this is
# minutes of a stalled layer; beyond it messages are dropped (the log has the run events).
QUEUE_MAX = 10_000
# A send that takes longer is abandoned and tried again, so one hung connection cannot hold up
# the queue.
SEND_TIMEOUT_SECONDS = 10.0
# What a django-q2 task waits at its end for its messages to leave (its process may be recycled).
TASK_FLUSH_TIMEOUT_SECONDS = 2.0
# Repeated drops or failures are logged at most this often, with a count.
_WARN_INTERVAL_SECONDS = 5.0
# Notifications that carry a whole state (a balance) rather than a change wait this long before
# they leave; one submitted meanwhile for the same user replaces the waiting one. A run's hold
# and settlement, or a burst of parallel runs, then cost one send instead of one each: the two
# sends per settlement were the largest cost left in a credit settlement (benchmarks/credits.py).
COALESCE_SECONDS = 0.1
# Notification types with latest-value semantics (see COALESCE_SECONDS). Not file.processing:
# a delayed progress frame could arrive after the file.ready sent without delay.
COALESCED_NOTIFICATION_TYPES = frozenset({"credits.updated"})


class RunEventMessage(TypedDict):
    type: Literal["run.event"]
    run_id: str
    seq: int
    event_type: str
    created_at: str
    data: dict[str, Any]


class Notification(TypedDict):
    """What ``/ws/notifications/`` sends to a user. ``type`` is one of ``NOTIFICATION_TYPES``."""

    type: str
    data: dict[str, Any]


class UserNotifyMessage(TypedDict):
    type: Literal["user.notify"]
    notification: Notification


# The per-user stream's vocabulary: run status changes, file processing progress and outcome,
# credit balance changes.
NOTIFICATION_TYPES = frozenset(
    {"run.status", "file.processing", "file.ready", "file.failed", "credits.updated"}
)


def run_group(run_id: Any) -> str:
    return f"run.{run_id}"


def user_group(user_id: Any) -> str:
    # Group names allow only ASCII alphanumerics, hyphens, underscores and periods.
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(user_id))
    return f"user.{safe}"


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


_publisher: Publisher | None = None
_publisher_lock = threading.Lock()


def get_publisher() -> Publisher:
    global _publisher
    publisher = _publisher
    if publisher is not None:
        return publisher
    with _publisher_lock:
        if _publisher is None:
            # A separate instance from get_channel_layer()'s, which daphne's consumers use on
            # the main loop: its connections would be bound to that loop.
            layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
            _publisher = Publisher(layer)
        return _publisher


def on_publisher_loop(make_coroutine: Any, timeout: float) -> Any:
    """Run ``make_coroutine(layer)`` on the publishing loop with its channel layer and wait for
    the result (``/readyz`` checks the layer this way: the loop and connections messages really
    leave by, not a throwaway loop that some layers cannot be reused from)."""
    import concurrent.futures

    publisher = get_publisher()
    future = asyncio.run_coroutine_threadsafe(make_coroutine(publisher.layer), publisher.loop)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"no answer in {timeout:g}s") from None


def _forget_publisher_after_fork() -> None:
    """In a forked child the publisher's thread does not exist; start afresh on first use.
    The old objects are not closed: their sockets are the parent's too."""
    global _publisher, _publisher_lock
    if _publisher is not None:
        _orphans.append(_publisher)
    _publisher = None
    _publisher_lock = threading.Lock()


_orphans: list[Publisher] = []  # kept referenced so nothing finalizes the parent's connections
os.register_at_fork(after_in_child=_forget_publisher_after_fork)


def _reset_on_layer_change(*, setting: str, **kwargs: Any) -> None:
    global _publisher
    if setting == "CHANNEL_LAYERS" and _publisher is not None:
        _publisher.close()
        _publisher = None


setting_changed.connect(_reset_on_layer_change)


# Tasks started by publish() on a running loop with the in-memory layer, referenced until done.
_memory_sends: set[asyncio.Task[None]] = set()


def _publish_in_memory(layer: BaseChannelLayer, group: str, message: dict[str, Any]) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        # asgiref runs this on the caller's outer loop when there is one (a test's
        # WebsocketCommunicator), else on a new one; either way the same layer instance.
        async_to_sync(layer.group_send)(group, message)
        return
    task = loop.create_task(layer.group_send(group, message))
    _memory_sends.add(task)
    task.add_done_callback(_memory_sends.discard)


def publish(group: str, message: dict[str, Any], *, coalesce: str | None = None) -> None:
    """Hand a message to the channel layer. Returns without waiting for the network; messages
    from one process leave in the order they were published, except ``coalesce``d ones
    (:class:`Publisher`: they wait ``COALESCE_SECONDS``, the latest per group and key wins).

    Delivery is best effort by design: a failure is logged, never raised, and a full queue
    drops the message with a warning, because the event is already persisted and clients
    recover it from the log.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        if isinstance(layer, InMemoryChannelLayer):
            _publish_in_memory(layer, group, message)
        else:
            get_publisher().submit(group, message, coalesce=coalesce)
    except Exception:
        logger.warning("realtime publish to %s failed", group, exc_info=True)


def flush(timeout: float | None = TASK_FLUSH_TIMEOUT_SECONDS) -> bool:
    """Wait until every message this process published so far was sent; False on timeout.

    For the end of a django-q2 task (its process may exit without running atexit) and process
    shutdown. Blocks the calling thread, so do not call it on an event loop.
    """
    publisher = _publisher
    if publisher is None:
        return True
    flushed = publisher.flush(timeout)
    if not flushed and not publisher.outage.down:  # an outage is logged once, by the sender
        logger.warning(
            "realtime publish: %d message(s) still unsent after %.1fs", publisher.pending, timeout
        )
    return flushed


atexit.register(flush)


def flush_after_task(**kwargs: Any) -> None:
    """django-q2's ``post_execute_in_worker`` receiver (connected in ``CoreConfig.ready``):
    whatever a task published leaves before the worker takes the next one, since django-q2
    may end a worker process (``recycle``, a timeout, shutdown) without running ``atexit``."""
    flush()


def publish_on_commit(group: str, message: dict[str, Any], *, coalesce: str | None = None) -> None:
    transaction.on_commit(lambda: publish(group, message, coalesce=coalesce))


def notify_user_on_commit(user_id: Any, notification_type: str, data: dict[str, Any]) -> None:
    """Tell one user's open ``/ws/notifications/`` sockets about something, after commit."""
    if notification_type not in NOTIFICATION_TYPES:
        raise ValueError(f"unknown notification type {notification_type!r}")
    message: UserNotifyMessage = {
        "type": "user.notify",
        "notification": {"type": notification_type, "data": data},
    }
    coalesce = notification_type if notification_type in COALESCED_NOTIFICATION_TYPES else None
    publish_on_commit(user_group(user_id), dict(message), coalesce=coalesce)
