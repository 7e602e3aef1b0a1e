"""The one way agentdeck publishes realtime events (convention 8).

Producers persist first, then call :func:`publish_on_commit`; the message goes to the channel
layer group only after the surrounding transaction commits, so no client ever hears of a row
that was rolled back. Consumers (``/ws/...``) treat a message as a wake-up: the persisted log
is the truth, and a client that missed a message catches up from it.

Messages leave the process through its one ``Publisher`` (``publisher``: a loop on a thread of
its own, keeping messages while the layer's server is away). The in-memory layer (unit tests)
keeps the direct path: its groups live in the one instance the consumers use.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from typing import Any, Literal, NotRequired, TypedDict, cast

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

from agentdeck.core.realtime.publisher import (
    COALESCE_SECONDS,
    QUEUE_MAX,
    SEND_TIMEOUT_SECONDS,
    Publisher,
)

__all__ = [
    "COALESCED_NOTIFICATION_TYPES",
    "COALESCE_SECONDS",
    "NOTIFICATION_TYPES",
    "QUEUE_MAX",
    "SEND_TIMEOUT_SECONDS",
    "TASK_FLUSH_TIMEOUT_SECONDS",
    "Notification",
    "Publisher",
    "RealtimeMessage",
    "RunEventMessage",
    "UserNotifyMessage",
    "flush",
    "flush_after_task",
    "get_publisher",
    "notify_user_on_commit",
    "on_publisher_loop",
    "publish",
    "publish_on_commit",
    "run_group",
    "user_group",
]

logger = logging.getLogger(__name__)

# What a django-q2 task waits at its end for its messages to leave (its process may be recycled).
TASK_FLUSH_TIMEOUT_SECONDS = 2.0
# Notification types with latest-value semantics (see COALESCE_SECONDS). Not file.processing:
# a delayed progress frame could arrive after the file.ready sent without delay.
COALESCED_NOTIFICATION_TYPES = frozenset({"credits.updated"})


class RunEventMessage(TypedDict):
    """One event of a run's log, to the run's group. An event too big to travel has ``data``
    None and ``in_log`` True: listeners read it from the log."""

    type: Literal["run.event"]
    run_id: str
    seq: int
    event_type: str
    created_at: str
    data: dict[str, Any] | None
    in_log: NotRequired[bool]


class Notification(TypedDict):
    """What ``/ws/notifications/`` sends to a user. ``type`` is one of ``NOTIFICATION_TYPES``."""

    type: str
    data: dict[str, Any]


class UserNotifyMessage(TypedDict):
    type: Literal["user.notify"]
    notification: Notification


# What publish() sends: the consumers' handlers are named after the literal ``type``.
RealtimeMessage = RunEventMessage | UserNotifyMessage


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


def publish(group: str, message: RealtimeMessage, *, coalesce: str | None = None) -> None:
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
            _publish_in_memory(layer, group, cast(dict[str, Any], message))
        else:
            get_publisher().submit(group, cast(dict[str, Any], message), coalesce=coalesce)
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


def publish_on_commit(group: str, message: RealtimeMessage, *, coalesce: str | None = None) -> None:
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
    publish_on_commit(user_group(user_id), message, coalesce=coalesce)
