"""The one way agentdeck publishes realtime events (convention 8).

Producers persist first, then call :func:`publish_on_commit`; the message goes to the channel
layer group only after the surrounding transaction commits, so no client ever hears of a row
that was rolled back. Consumers (``/ws/...``) treat a message as a wake-up: the persisted log
is the truth, and a client that missed a message catches up from it.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


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


def publish(group: str, message: dict[str, Any]) -> None:
    """Send now. Delivery is best effort by design: a failure is logged, never raised, because
    the event is already persisted and clients recover it from the log."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        logger.warning("realtime publish to %s failed", group, exc_info=True)


def publish_on_commit(group: str, message: dict[str, Any]) -> None:
    transaction.on_commit(lambda: publish(group, message))


def notify_user_on_commit(user_id: Any, notification_type: str, data: dict[str, Any]) -> None:
    """Tell one user's open ``/ws/notifications/`` sockets about something, after commit."""
    if notification_type not in NOTIFICATION_TYPES:
        raise ValueError(f"unknown notification type {notification_type!r}")
    message: UserNotifyMessage = {
        "type": "user.notify",
        "notification": {"type": notification_type, "data": data},
    }
    publish_on_commit(user_group(user_id), dict(message))
