"""WebSocket consumers for runs. No business logic here (convention 8): authenticate in
``connect()``, check the caller may see the run before joining its group, read the log through
selectors, cancel through the service.

``/ws/runs/{id}/?after=SEQ`` replays the persisted events after ``SEQ``, then streams live ones,
with no gap and no duplicate across the switch (``agentdeck.agents.streams`` explains how).

Frames: ``{"seq", "type", "run_id", "created_at", "data"}`` for events; control frames have no
``seq``: ``{"type": "error", "code", "detail"}`` and ``{"type": "cancel.accepted", "run_id"}``.

When the channel layer reconnects after an outage (``channel_layer.reconnected``), a run's
follower reads the log for what it missed; ``/ws/notifications/``, which has no log, sends
``{"type": "resync", "data": {"since"}}`` so the client refetches the state it shows. A socket
that connects while the layer or the database is away is closed with 1013 (try again later).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from agentdeck.accounts.ws_auth import SUBPROTOCOL
from agentdeck.agents.models.run import TERMINAL_STATUSES
from agentdeck.agents.streams import RunEventCursor, parse_after, until_unreachable
from agentdeck.core.channel_layers import RECONNECTED
from agentdeck.core.exceptions import ApplicationError
from agentdeck.core.realtime import run_group, user_group
from agentdeck.core.reconnect import is_connection_error
from agentdeck.core.ws import (
    CLOSE_BAD_REQUEST,
    CLOSE_NORMAL,
    CLOSE_NOT_FOUND,
    CLOSE_TRY_AGAIN,
    CLOSE_UNAUTHENTICATED,
)

logger = logging.getLogger(__name__)


class AuthenticatedConsumer(AsyncWebsocketConsumer):
    """Accepts (answering the ``agentdeck.v1`` subprotocol when offered) and closes with 4401
    unless the scope carries a user; also closes 4401 once the credential expires."""

    # Messages whose handlers reach the database only through database_sync_to_async (which
    # closes stale connections around each call itself). Channels 4 also runs
    # close_old_connections on the process's one sync thread before *every* handler: with
    # hundreds of sockets following live runs, each event became hundreds of queued hops
    # through that thread, the largest delay benchmarks/ws_fanout.py found. The disconnect
    # needs no database either, and when a run ends all its followers disconnect together.
    DIRECT_MESSAGE_TYPES = frozenset(
        {"run.event", "user.notify", "websocket.disconnect", RECONNECTED}
    )

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") in self.DIRECT_MESSAGE_TYPES:
            handler = getattr(self, get_handler_name(message), None)
            if handler is not None:
                await handler(message)
                return
        await super().dispatch(message)

    async def accept_authenticated(self) -> bool:
        offered = self.scope.get("subprotocols") or []
        await self.accept(SUBPROTOCOL if SUBPROTOCOL in offered else None)
        if not self.scope["user"].is_authenticated:
            await self.send_error(
                self.scope.get("auth_error") or "not_authenticated", "Authentication failed."
            )
            await self.close(CLOSE_UNAUTHENTICATED)
            return False
        return True

    async def credential_expired(self) -> bool:
        expires_at = self.scope.get("auth_expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            await self.send_error(
                "token_expired", "The credential expired; reconnect with a fresh one."
            )
            await self.close(CLOSE_UNAUTHENTICATED)
            return True
        return False

    async def send_error(self, code: str, detail: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "code": code, "detail": detail}))

    async def join(self, group: str) -> bool:
        """Join ``group``; if the layer's server is unreachable, tell the client to try again
        later (1013) and return False."""
        try:
            await self.channel_layer.group_add(group, self.channel_name)
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            await self.try_again_later()
            return False
        return True

    async def try_again_later(self) -> None:
        await self.send_error(
            "service_unavailable", "The server is reconnecting to its database; try again."
        )
        await self.close(CLOSE_TRY_AGAIN)

    async def channel_layer_reconnected(self, message: dict[str, Any]) -> None:
        """The layer was disconnected for a while; messages may have been lost meanwhile."""


class RunEventsConsumer(AuthenticatedConsumer):
    async def connect(self) -> None:
        self.group: str | None = None
        self.cursor: RunEventCursor | None = None
        self.closed = False
        self.lock = asyncio.Lock()
        self.watcher: asyncio.Task | None = None
        if not await self.accept_authenticated():
            return
        query = parse_qs(
            self.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
        )
        after = parse_after((query.get("after") or [None])[0])
        if after is None:
            await self.send_error("invalid_after", "after must be a non-negative integer.")
            await self.close(CLOSE_BAD_REQUEST)
            return
        self.run_id = str(self.scope["url_route"]["kwargs"]["run_id"])
        # Join first, read second: anything published meanwhile waits in our channel (handlers
        # run one at a time, after connect() returns) and is de-duplicated by the cursor; a
        # caller who may not see the run leaves the group before anything is sent.
        self.group = run_group(self.run_id)
        if not await self.join(self.group):
            self.group = None
            return
        try:
            position = await database_sync_to_async(self._run_position)()
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            await self.try_again_later()
            return
        if position is None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None
            await self.send_error("not_found", "No such run.")
            await self.close(CLOSE_NOT_FOUND)
            return
        last_seq, status = position
        self.cursor = RunEventCursor(self.run_id, after)
        if last_seq > after:
            await self._deliver(self.cursor.backlog())
        elif status in TERMINAL_STATUSES:
            # The client has seen the whole log of a finished run: nothing will follow.
            self.closed = True
            await self.close(CLOSE_NORMAL)
        # else: nothing to replay (a fresh run, or a reconnect that saw everything so far):
        # one database call per connect instead of two, which matters when hundreds of
        # clients connect at once on daphne's one database thread (benchmarks/ws_fanout.py).
        if not self.closed:
            self.watcher = asyncio.create_task(self._recheck_log())

    def _run_position(self) -> tuple[int, str] | None:
        """(last seq written, status) of the run if the caller may see it, else None."""
        from agentdeck.agents.selectors import run_list

        return (
            run_list(user=self.scope["user"])
            .filter(pk=self.run_id)
            .values_list("next_seq", "status")
            .first()
        )

    async def _deliver(self, frames) -> None:
        """Send frames from the cursor (under the lock: the watcher reads the log too). A log
        the database cannot serve right now is read again at the next wake-up or recheck."""
        cursor = cast(RunEventCursor, self.cursor)  # made by connect() before any delivery
        async with self.lock:
            async for frame in until_unreachable(frames):
                if self.closed or await self.credential_expired():
                    self.closed = True
                    return
                await self.send(text_data=json.dumps(frame))
                if cursor.finished:
                    self.closed = True
                    await self.close(CLOSE_NORMAL)
                    return

    async def _recheck_log(self) -> None:
        """Read the log when nothing has come for a while: a dropped *last* message would
        otherwise never be noticed (see agentdeck.agents.streams)."""
        cursor = cast(RunEventCursor, self.cursor)  # started by connect(), after the cursor
        while not self.closed:
            seen = cursor.last_seq
            await asyncio.sleep(settings.RUN_STREAM_RECHECK_SECONDS)
            if not self.closed and cursor.last_seq == seen:
                await self._deliver(cursor.backlog())

    async def run_event(self, message: dict[str, Any]) -> None:
        """A live event from the worker (group message type ``run.event``)."""
        if not self.closed and self.cursor is not None:
            await self._deliver(self.cursor.live(message))

    async def channel_layer_reconnected(self, message: dict[str, Any]) -> None:
        """Live messages may have been lost while the layer was away: read the log now."""
        if not self.closed and self.cursor is not None:
            await self._deliver(self.cursor.backlog())

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = json.loads(text_data or "")
        except (ValueError, TypeError):
            await self.send_error("bad_frame", "Frames must be JSON objects.")
            return
        if not isinstance(frame, dict) or frame.get("type") != "cancel":
            await self.send_error("bad_frame", 'The only client frame is {"type": "cancel"}.')
            return
        try:
            await database_sync_to_async(self._cancel)()
        except ApplicationError as e:
            await self.send_error(e.code, e.detail)
        else:
            await self.send(
                text_data=json.dumps({"type": "cancel.accepted", "run_id": self.run_id})
            )

    def _cancel(self) -> None:
        from agentdeck.agents.selectors import run_list
        from agentdeck.agents.services.runs import agent_run_cancel

        run = run_list(user=self.scope["user"]).filter(pk=self.run_id).first()
        if run is None:
            raise ApplicationError("No such run.", code="not_found", status=404)
        agent_run_cancel(run=run)

    async def disconnect(self, code: int) -> None:
        self.closed = True
        if self.watcher is not None:
            self.watcher.cancel()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)


class NotificationsConsumer(AuthenticatedConsumer):
    """``/ws/notifications/``: the caller's own stream (``run.status``, file processing and
    credit balance changes). Frames: ``{"type", "data"}``.

    Notifications have no log to replay, so after a channel-layer outage the client is told
    (``{"type": "resync", "data": {"since": ISO time or null}}``) that some may be missing and
    refetches what it shows (its runs, files and balance) over REST. The server cannot tell
    whether anything was in fact lost (a Pub/Sub subscriber misses what was published while it
    was away; the publisher's bounded queue may have dropped), so it says so every time.
    """

    async def connect(self) -> None:
        self.group = None
        if not await self.accept_authenticated():
            return
        group = user_group(self.scope["user"].pk)
        if await self.join(group):
            self.group = group

    async def user_notify(self, message: dict[str, Any]) -> None:
        if await self.credential_expired():
            return
        await self.send(text_data=json.dumps(message["notification"]))

    async def channel_layer_reconnected(self, message: dict[str, Any]) -> None:
        if self.group is None or await self.credential_expired():
            return
        since = message.get("since")
        if since is not None:  # time.time() when the connection was found lost
            since = datetime.fromtimestamp(since, UTC).isoformat().replace("+00:00", "Z")
        await self.send(text_data=json.dumps({"type": "resync", "data": {"since": since}}))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send_error("bad_frame", "This stream takes no client frames.")

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
