"""channels_postgres's layer with a supervised LISTEN connection: on loss it reconnects with
backoff, re-LISTENs, restores the process's group memberships, replays by id the messages still
in ``channels_postgres_message``, and announces ``channel_layer.reconnected``."""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
import weakref
from typing import Any

import psycopg
from channels_postgres.core import PostgresChannelLayer as _UpstreamPostgresLayer
from channels_postgres.db import GROUP_CHANNEL_TABLE, MESSAGE_TABLE
from psycopg import sql

from agentdeck.core.channel_layers.postgres_db import Database
from agentdeck.core.channel_layers.reconnected import reconnected_message
from agentdeck.core.reconnect import Backoff, Outage, is_connection_error

logger = logging.getLogger(__name__)

# Expired channel-layer messages are deleted at most this often per process (upstream started a
# task sleeping 10-20 minutes on every group_discard: one per WebSocket that ever closed).
_CLEANUP_INTERVAL_SECONDS = (60.0, 120.0)


class _Listener:
    """The LISTEN connection of one event loop, and the queues of the channels received on it.

    Runs until cancelled: connect, LISTEN, restore the layer's group memberships, replay the
    messages still in the table for this loop's channels, announce the reconnection (not on the
    first connect), then deliver notifications; on any failure start over after a backoff.
    Messages are delivered once each by id, whether they came by NOTIFY or by a replay.
    """

    def __init__(self, layer: PostgresChannelLayer, loop: asyncio.AbstractEventLoop) -> None:
        self.layer = layer
        self.loop = loop
        self.queues: dict[str, asyncio.Queue[str]] = {}
        # Set once the first LISTEN is in place (receive() waits for it); never cleared.
        self.connected = asyncio.Event()
        self.outage = Outage("channel layer LISTEN connection (PostgreSQL)", logger)
        # Ids of the messages delivered, with their expiry (epoch seconds), for de-duplication:
        # a replay covers what its NOTIFY may have brought already. Expired ids are forgotten
        # (a replay reads only unexpired rows).
        self.delivered: dict[int, float] = {}
        self._purged_at = time.monotonic()
        self.task = loop.create_task(self._run(), name="agentdeck-channel-layer-listen")

    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.layer.listen_conninfo, autocommit=True
                ) as conn:
                    await conn.execute("LISTEN channels_postgres_messages")
                    await self.layer._restore_groups(conn)
                    await self._replay(conn)
                    if self.connected.is_set():
                        self._announce(self.outage.since_wall)
                    self.connected.set()
                    self.outage.recovered()
                    backoff.reset()
                    async for notify in conn.notifies():
                        self.deliver(notify.payload)
                raise ConnectionError("the LISTEN connection ended")
            except Exception as exc:  # not CancelledError: that ends the loop
                if not is_connection_error(exc):
                    logger.exception("channel layer listener failed; starting over")
                self.outage.failed(exc)
                await asyncio.sleep(backoff.next())

    def deliver(self, payload: str) -> None:
        """A NOTIFY payload (``id:channel:base64:expiry`` or, for big messages, ``id:channel``)
        into its channel's queue, unless the channel is not received here or it came before."""
        parts = payload.split(":")
        if len(parts) not in (2, 4):
            return
        queue = self.queues.get(parts[1])
        if queue is None:
            return
        try:
            message_id = int(parts[0])
            expires = float(parts[3]) if len(parts) == 4 else time.time() + self.layer.expiry
        except ValueError:
            return
        if message_id in self.delivered:
            return
        self.delivered[message_id] = expires
        self._purge()
        queue.put_nowait(payload)

    def _purge(self) -> None:
        if len(self.delivered) < 1000 or time.monotonic() - self._purged_at < 10:
            return
        self._purged_at = time.monotonic()
        now = time.time()
        # With a margin for the database's clock, which decides what a replay still reads.
        self.delivered = {i: e for i, e in self.delivered.items() if e >= now - 30}

    async def _replay(self, conn: psycopg.AsyncConnection) -> None:
        """The unexpired messages for this loop's channels, oldest first. On the first connect
        they are what was sent between a channel's group_add and this LISTEN; after an outage,
        what was sent while the connection was down."""
        channels = list(self.queues)
        if not channels:
            return
        query = sql.SQL(
            "SELECT id, channel, message, extract(epoch from expire)::text FROM {message} "
            "WHERE channel = ANY(%s) AND expire > now() ORDER BY id"
        ).format(message=sql.Identifier(MESSAGE_TABLE))
        cursor = await conn.execute(query, (channels,))
        for message_id, channel, message, expires in await cursor.fetchall():
            encoded = base64.b64encode(message).decode()
            self.deliver(f"{message_id}:{channel}:{encoded}:{expires}")

    def _announce(self, since: float | None) -> None:
        encoded = base64.b64encode(self.layer.serialize(reconnected_message(since))).decode()
        # Id 0 is never a message's (a bigserial starts at 1), and is not de-duplicated.
        expires = time.time() + 86400
        for channel, queue in self.queues.items():
            queue.put_nowait(f"0:{channel}:{encoded}:{expires}")


class PostgresChannelLayer(_UpstreamPostgresLayer):  # type: ignore[misc]  # channels_postgres is untyped
    """channels_postgres's layer with a supervised LISTEN connection (see the package docstring).

    Channels made by :meth:`new_channel` in this process need no advisory lock: their names
    carry this instance's random prefix, so nothing else receives on them (upstream took one
    per channel on a pooled connection and never released it: a lock-table entry per WebSocket
    until the pool recycled that connection).
    """

    django_db: Database  # upstream's, replaced in __init__

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        upstream = self.django_db
        self.django_db = Database(
            upstream.psycopg_options, upstream.db_params, name=f"channel-layer-{id(self):x}"
        )
        # Keepalives make a silently dropped TCP connection (no reset: a network partition)
        # fail in about a minute instead of never; libpq ignores them on a unix socket.
        self.listen_conninfo = psycopg.conninfo.make_conninfo(
            conninfo="",
            **{
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
                **self.db_params,
            },
        )
        self._listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Listener] = (
            weakref.WeakKeyDictionary()
        )
        # (group key, channel) pairs this process added and has not discarded: restored after
        # an outage should the table have lost them.
        self._memberships: set[tuple[str, str]] = set()
        # Discards that failed while the database was away: done once it is back, or the group
        # would keep sending to a channel nobody reads.
        self._discard_later: set[tuple[str, str]] = set()
        self._cleanup: asyncio.Task[None] | None = None

    # --- connection state ---------------------------------------------------------------------

    def receive_outage_description(self) -> str | None:
        """Why the receive side is down (for /readyz), or None when it is up or unused."""
        for listener in list(self._listeners.values()):
            if listener.outage.down:
                return listener.outage.describe()
        return None

    def _listener(self) -> _Listener:
        loop = asyncio.get_running_loop()
        listener = self._listeners.get(loop)
        if listener is None or listener.task.done():
            listener = self._listeners[loop] = _Listener(self, loop)
        return listener

    async def close_pools(self) -> None:
        listener = self._listeners.pop(asyncio.get_running_loop(), None)
        if listener is not None:
            listener.task.cancel()
            await asyncio.gather(listener.task, return_exceptions=True)
        if self._cleanup is not None:
            self._cleanup.cancel()
        await self.django_db.close_pools()

    # --- channel layer API --------------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific") -> str:
        channel: str = await super().new_channel(prefix)
        # Its queue exists from now on: messages sent to it before the first receive() (after
        # a group_add, say) are kept, not dropped for want of a receiver.
        self._listener().queues.setdefault(channel, asyncio.Queue())
        return channel

    async def receive(self, channel: str) -> dict[str, Any]:
        self.require_valid_channel_name(channel)
        listener = self._listener()
        if "!" in channel:
            assert self.non_local_name(channel).endswith(self.client_prefix + "!"), (
                "Wrong client prefix"
            )
        else:
            await self._get_or_create_channel_advisory_lock(channel)
        queue = listener.queues.setdefault(channel, asyncio.Queue())
        # The first LISTEN must be in place before anything is awaited from it (later outages
        # do not hold a waiting receive up: it simply gets nothing until the connection is back).
        await listener.connected.wait()
        try:
            return await self._get_message_from_channel(channel, queue)
        except asyncio.CancelledError:
            # The consumer is gone (channels cancels its receive): so is its channel. Upstream
            # kept the queue and the lock of every channel ever received on.
            self._forget(channel)
            raise

    async def forget_channel(self, channel: str) -> None:
        """Stop receiving on ``channel`` in this process (its user is done with it)."""
        self._forget(channel)

    def _forget(self, channel: str) -> None:
        for listener in list(self._listeners.values()):
            listener.queues.pop(channel, None)
        self._channel_advisory_locks.pop(channel, None)

    async def _get_message_from_channel(
        self, channel: str, queue: asyncio.Queue[str]
    ) -> dict[str, Any]:
        while True:
            parts = (await queue.get()).split(":")
            if len(parts) == 4:
                if float(parts[3]) < time.time():
                    continue  # expired while it waited
                message: dict[str, Any] = self.deserialize(base64.b64decode(parts[2]))
                return message
            # A big message travels by id; upstream asserted it was still there. If the
            # database is away it is skipped: the layer's reconnection makes consumers catch up.
            try:
                row = await self.django_db.delete_message_returning_message(int(parts[0]))
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                logger.info("channel layer: a big message could not be fetched (%s)", exc)
                continue
            if row is not None:
                fetched: dict[str, Any] = self.deserialize(row[0])
                return fetched

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        await self.django_db.send_to_channel(
            "", self.serialize(message), self.expiry, channel=channel
        )

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.require_valid_group_name(group)
        await self.django_db.send_to_group(
            self._group_key(group), self.serialize(message), self.expiry
        )

    async def group_add(self, group: str, channel: str) -> None:
        key = self._group_key(group)
        await super().group_add(group, channel)
        self._memberships.add((key, channel))
        self._discard_later.discard((key, channel))

    async def group_discard(self, group: str, channel: str, expire: int | None = None) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        key = self._group_key(group)
        self._memberships.discard((key, channel))
        try:
            await self.django_db.delete_channel_group(key, channel)
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            # The consumer is leaving while the database is away: delete when it is back.
            self._discard_later.add((key, channel))
        self._schedule_cleanup()

    async def _restore_groups(self, conn: psycopg.AsyncConnection) -> None:
        """After (re)connecting: delete the memberships of consumers that left meanwhile and
        insert those of consumers still here that the table lacks."""
        groups = sql.Identifier(GROUP_CHANNEL_TABLE)
        if self._discard_later:
            pending = list(self._discard_later)
            await conn.execute(
                sql.SQL(
                    "DELETE FROM {groups} g USING unnest(%s::text[], %s::text[]) AS t(k, c) "
                    "WHERE g.group_key = t.k AND g.channel = t.c"
                ).format(groups=groups),
                ([k for k, _ in pending], [c for _, c in pending]),
            )
            self._discard_later.difference_update(pending)
        if self._memberships:
            held = list(self._memberships)
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {groups} (group_key, channel, expire) "
                    "SELECT t.k, t.c, now() + make_interval(secs => %s) "
                    "FROM unnest(%s::text[], %s::text[]) AS t(k, c) "
                    "WHERE NOT EXISTS (SELECT 1 FROM {groups} g "
                    "                  WHERE g.group_key = t.k AND g.channel = t.c)"
                ).format(groups=groups),
                # The expiry group_add gives a membership (upstream: now + group_expiry).
                (self.group_expiry, [k for k, _ in held], [c for _, c in held]),
            )

    def _schedule_cleanup(self) -> None:
        if self._cleanup is not None and not self._cleanup.done():
            return

        async def cleanup() -> None:
            while True:
                await asyncio.sleep(random.uniform(*_CLEANUP_INTERVAL_SECONDS))  # noqa: S311
                try:
                    for key, channel in list(self._discard_later):
                        await self.django_db.delete_channel_group(key, channel)
                        self._discard_later.discard((key, channel))
                    await self.django_db.delete_expired_messages(expire=0)
                    if self.group_expiry > 0:
                        await self.django_db.delete_expired_groups()
                    return
                except Exception as exc:
                    if not is_connection_error(exc):
                        raise

        self._cleanup = asyncio.get_running_loop().create_task(cleanup())


# --- Redis Pub/Sub -------------------------------------------------------------------------------
