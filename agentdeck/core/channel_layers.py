"""The channel layers agentdeck runs on, made to survive their server restarting.

Both libraries lose their connections when PostgreSQL or Redis restarts, and neither recovers
all of it by itself:

* ``channels_postgres`` reads every message through one LISTEN connection, started as a
  fire-and-forget task. When PostgreSQL resets it the task dies ("Task exception was never
  retrieved") while its "listening" flag stays set, so no receive() in the process ever gets a
  message again and ``/readyz``'s round trip through the layer times out until the process is
  restarted. Its pool also hands out the dead connections once, failing a WebSocket's connect.
* ``channels_redis``'s Pub/Sub layer reconnects through redis-py, which re-subscribes what it
  had subscribed, but silently: nobody learns that messages were published meanwhile (Pub/Sub
  keeps nothing). A SUBSCRIBE that failed while Redis was down is never retried, and the
  receive loop logs a traceback every second of an outage.

The subclasses here keep the libraries' wire formats and tables, and add:

1. a supervised connection: on loss, reconnect with capped, jittered exponential backoff
   (agentdeck.core.reconnect), logged once per outage;
2. after reconnecting, everything the process's consumers still hold is restored: PostgreSQL
   re-LISTENs, re-inserts group memberships missing from its table and deletes those whose
   consumers left during the outage; Redis re-subscribes every group and channel held locally;
3. what was sent while the receive side was away is recovered where the server kept it
   (PostgreSQL keeps messages in ``channels_postgres_message`` until they expire: they are
   replayed, by id, without duplicates), and every local channel then gets a
   ``channel_layer.reconnected`` message, so consumers catch up from what they can trust (the
   run-event log; see agentdeck.agents.consumers for what each stream does with it).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool
from channels_postgres.core import PostgresChannelLayer as _UpstreamPostgresLayer
from channels_postgres.db import GROUP_CHANNEL_TABLE, MESSAGE_TABLE, DatabaseLayer
from channels_redis.pubsub import RedisPubSubChannelLayer as _UpstreamRedisLayer
from channels_redis.pubsub import RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import create_pool
from psycopg import sql
from redis import asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from agentdeck.core.reconnect import Backoff, Outage, is_connection_error

logger = logging.getLogger(__name__)

# The message every local channel gets once its layer is connected again after an outage.
# ``since`` is the time.time() at which the connection was found lost.
RECONNECTED = "channel_layer.reconnected"

# Expired channel-layer messages are deleted at most this often per process (upstream started a
# task sleeping 10-20 minutes on every group_discard: one per WebSocket that ever closed).
_CLEANUP_INTERVAL_SECONDS = (60.0, 120.0)


def reconnected_message(since: float | None) -> dict[str, Any]:
    return {"type": RECONNECTED, "since": since}


# --- PostgreSQL (LISTEN/NOTIFY) ------------------------------------------------------------------


class _Database(DatabaseLayer):
    """channels_postgres's queries on a pool of this layer instance's own, one per event loop,
    instead of its module-global pool (bound to whichever loop came first, so the process's
    publishing loop and daphne's loop could not share it), surviving the dead connections a
    restart leaves in it (:meth:`execute`), and with reconnection not left to psycopg_pool's
    uncapped backoff (it waits 1, 2, 4 ... 256 s between attempts during a long outage).
    Every query the layer makes goes through :meth:`execute`, except the advisory lock of a
    named channel (agentdeck uses none) and upstream's periodic clean-ups."""

    DEFAULT_POOL_OPTIONS = {
        "min_size": 1,
        "max_size": 4,
        # A caller waits this long for a connection before its operation fails (the publisher
        # then keeps the message and retries; a consumer's connect is refused with 1013).
        "timeout": 5.0,
        # psycopg_pool gives up a reconnection attempt after this long; the next request for a
        # connection starts a fresh one at once.
        "reconnect_timeout": 5.0,
    }

    def __init__(self, psycopg_options: dict[str, Any], db_params: dict[str, Any], name: str):
        super().__init__(psycopg_options, db_params, logger=logger)
        self.name = name
        self._pools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, psycopg_pool.AsyncConnectionPool
        ] = weakref.WeakKeyDictionary()
        self._opening: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    async def get_db_pool(self, db_params: dict[str, Any]) -> psycopg_pool.AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is not None:
            return pool
        async with self._opening.setdefault(loop, asyncio.Lock()):
            pool = self._pools.get(loop)
            if pool is None:

                async def configure(conn: psycopg.AsyncConnection) -> None:
                    # As channels_postgres.db.DatabaseLayer configures its pool's connections.
                    await conn.set_autocommit(True)
                    conn.prepare_threshold = 0
                    conn.prepared_max = None

                pool = psycopg_pool.AsyncConnectionPool(
                    conninfo=psycopg.conninfo.make_conninfo(conninfo="", **db_params),
                    open=False,
                    configure=configure,
                    name=self.name,
                    **{**self.DEFAULT_POOL_OPTIONS, **self.psycopg_options},
                )
                # Not wait=True: with the server down that raises after `timeout`; the pool
                # keeps trying in the background and callers wait for a connection instead.
                await pool.open(wait=False)
                self._pools[loop] = pool
        return pool

    async def close_pools(self) -> None:
        """Close this loop's pool (the publishing loop ends; a test is done)."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()

    async def execute(self, query: sql.Composable, params: Any = None) -> list[tuple]:
        """Run one statement on a pooled connection. A connection that died while idle in the
        pool (PostgreSQL restarted, or reset every connection) fails at once, the pool drops
        it, and the statement is tried on the next one: after a restart the first operations
        use up the dead connections instead of failing with them. Checking each connection
        before use (psycopg_pool's ``check``) would cost a round trip per operation: a third of
        a publish (benchmarked here: 0.95 against 0.6 ms per group_send)."""
        pool = await self.get_db_pool(self.db_params)
        failures = 0
        while True:
            try:
                async with pool.connection() as conn:
                    cursor = await conn.execute(query, params)
                    return await cursor.fetchall() if cursor.description else []
            except psycopg.OperationalError as exc:
                failures += 1
                if (
                    isinstance(exc, psycopg_pool.PoolTimeout)  # no connection to be had at all
                    or failures > pool.max_size
                    or not is_connection_error(exc)
                ):
                    raise

    async def send_to_channel(
        self, group_key: str, message: bytes, expire: int, channel: str | None = None
    ) -> None:
        # Only send() uses this (group_send uses send_to_group).
        if channel is None:
            await self.send_to_group(group_key, message, expire)
            return
        query = sql.SQL("INSERT INTO {message} (channel, message, expire) VALUES (%s, %s, %s)")
        await self.execute(
            query.format(message=sql.Identifier(MESSAGE_TABLE)),
            (channel, message, _expiry(expire)),
        )

    async def add_channel_to_group(self, group_key: str, channel: str, expire: int) -> None:
        query = sql.SQL("INSERT INTO {groups} (group_key, channel, expire) VALUES (%s, %s, %s)")
        await self.execute(
            query.format(groups=sql.Identifier(GROUP_CHANNEL_TABLE)),
            (group_key, channel, _expiry(expire)),
        )

    async def delete_message_returning_message(self, message_id: int) -> tuple[bytes] | None:
        query = sql.SQL("DELETE FROM {message} WHERE id = %s RETURNING message")
        rows = await self.execute(
            query.format(message=sql.Identifier(MESSAGE_TABLE)), (message_id,)
        )
        return rows[0] if rows else None

    async def send_to_group(self, group_key: str, message: bytes, expire: int) -> None:
        """One message row per member channel of the group, in one statement. Upstream read the
        members twice (group_send, then send_to_channel) before inserting, and warned on every
        message to a group without members: every event of a run nobody follows."""
        query = sql.SQL(
            "INSERT INTO {message} (channel, message, expire) "
            "SELECT DISTINCT channel, %s, %s FROM {groups} WHERE group_key = %s"
        ).format(message=sql.Identifier(MESSAGE_TABLE), groups=sql.Identifier(GROUP_CHANNEL_TABLE))
        await self.execute(query, (message, _expiry(expire), group_key))

    async def delete_channel_group(self, group_key: str, channel: str) -> None:
        # Upstream deletes through the Django ORM, i.e. a hop to the process's one sync thread
        # and a Django connection of its own that nothing health-checks between requests.
        query = sql.SQL("DELETE FROM {groups} WHERE group_key = %s AND channel = %s").format(
            groups=sql.Identifier(GROUP_CHANNEL_TABLE)
        )
        await self.execute(query, (group_key, channel))


def _expiry(seconds: int) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


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


class PostgresChannelLayer(_UpstreamPostgresLayer):
    """channels_postgres's layer with a supervised LISTEN connection (see the module docstring).

    Channels made by :meth:`new_channel` in this process need no advisory lock: their names
    carry this instance's random prefix, so nothing else receives on them (upstream took one
    per channel on a pooled connection and never released it: a lock-table entry per WebSocket
    until the pool recycled that connection).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        upstream = self.django_db
        self.django_db = _Database(
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
        channel = await super().new_channel(prefix)
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
                return self.deserialize(base64.b64decode(parts[2]))
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
                return self.deserialize(row[0])

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


class _PubSub(PubSub):
    """redis-py's PubSub, counting its connections: it re-subscribes by itself when it
    reconnects (``on_connect``), and the shard needs to know that it did."""

    connections = 0

    async def on_connect(self, connection: Any) -> None:
        await super().on_connect(connection)
        self.connections += 1


class _Shard(RedisSingleShardConnection):
    """One Redis server's Pub/Sub connection: subscriptions asked for while Redis is away are
    remembered and made when it is back; every reconnection is announced to local channels."""

    def __init__(self, host: dict[str, Any], channel_layer: RedisPubSubLoopLayer) -> None:
        super().__init__(host, channel_layer)
        self.outage = Outage("channel layer Pub/Sub connection (Redis)", logger)
        self._seen_connections = 0
        # Names whose SUBSCRIBE failed (Redis was away): the receive loop subscribes those still
        # held once it is back. redis-py re-subscribes only what it did subscribe.
        self._unsubscribed: set[str] = set()

    def _ensure_redis(self) -> None:
        if self._redis is None:
            host = dict(self.host)
            # One immediate retry (a pooled connection the server closed), then fail and let
            # this class's backoff decide when to try again: redis-py's default retries a
            # command 10 times with up to 1 s between tries, holding the publisher's queue or a
            # consumer's connect that long.
            host.setdefault("retry", Retry(NoBackoff(), 1))
            host.setdefault("socket_connect_timeout", 2)
            pool = create_pool(host)
            self._redis = aioredis.Redis(connection_pool=pool)
            self._pubsub = _PubSub(pool)

    async def subscribe(self, channel: str) -> None:
        async with self._lock:
            if channel in self._subscribed_to:
                return
            self._ensure_redis()
            self._ensure_receiver()
            try:
                await self._pubsub.subscribe(channel)
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                # Redis is away: the receive loop subscribes once it is back.
                self._unsubscribed.add(channel)
                self.outage.failed(exc)
                return
            self._subscribed_to.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        async with self._lock:
            if channel not in self._subscribed_to:
                return
            self._subscribed_to.discard(channel)
            try:
                await self._pubsub.unsubscribe(channel)
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                # Redis is away (and with it the subscription); do not restore it on reconnect.
                self._pubsub.channels.pop(channel.encode(), None)
                self._pubsub.channels.pop(channel, None)

    async def _do_receiving(self) -> None:
        backoff = Backoff()
        while True:
            try:
                await self._reconnect()
                await self._restore()
                if self._pubsub is not None and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=0.1
                    )
                    self._receive_message(message)
                elif self.outage.down and self._redis is not None:
                    # Nothing subscribed (the channels that failed to subscribe are gone):
                    # ask Redis itself whether it is back.
                    await self._redis.ping()
                else:
                    await asyncio.sleep(0.1)
                    continue
                self._notice_reconnection()
                backoff.reset()
            except Exception as exc:  # not CancelledError: that ends the loop
                if not is_connection_error(exc):
                    logger.exception("channel layer Pub/Sub receive loop failed")
                self.outage.failed(exc)
                await asyncio.sleep(backoff.next())

    async def _reconnect(self) -> None:
        """Reconnect under the shard's lock. redis-py would otherwise reconnect inside
        get_message while a consumer's subscribe() reconnects the same connection too: two
        sockets, the first one abandoned mid-conversation (Redis then closes it)."""
        pubsub = self._pubsub
        connection = pubsub.connection if pubsub is not None else None
        if connection is None or connection.is_connected:
            return
        async with self._lock:
            if not connection.is_connected:
                await pubsub.connect()

    async def _restore(self) -> None:
        """Subscribe what failed to subscribe while Redis was away and is still held. Called
        for every message received: costs nothing unless something failed."""
        if not self._unsubscribed:
            return
        async with self._lock:
            layer = self.channel_layer
            missing = {
                name
                for name in self._unsubscribed
                if (name in layer.channels or name in layer.groups)
                and name not in self._subscribed_to
            }
            if missing:
                self._ensure_redis()
                await self._pubsub.subscribe(*sorted(missing))
                self._subscribed_to |= missing
            self._unsubscribed.clear()

    def _notice_reconnection(self) -> None:
        """Called after a successful read: announce a reconnection redis-py made, or the end
        of an outage this loop saw."""
        pubsub = self._pubsub
        connections = pubsub.connections if pubsub is not None else 0
        reconnected = self._seen_connections and connections > self._seen_connections
        since = self.outage.since_wall
        if self.outage.recovered() or reconnected:
            self._announce(since)
        self._seen_connections = connections

    def _announce(self, since: float | None) -> None:
        data = self.channel_layer.channel_layer.serialize(reconnected_message(since))
        for queue in self.channel_layer.channels.values():
            queue.put_nowait(data)


class _LoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shards = [_Shard(shard.host, self) for shard in self._shards]


class RedisPubSubChannelLayer(_UpstreamRedisLayer):
    """channels_redis's Pub/Sub layer with the shards above (see the module docstring)."""

    def _get_layer(self) -> RedisPubSubLoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            from channels_redis.utils import _wrap_close

            layer = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer

    def receive_outage_description(self) -> str | None:
        for layer in list(self._layers.values()):
            for shard in layer._shards:
                if shard.outage.down:
                    return shard.outage.describe()
        return None

    async def forget_channel(self, channel: str) -> None:
        """Stop receiving on ``channel`` (its user is done with it): drop its queue and its
        subscription. Upstream does this only when a receive() is cancelled."""
        layer = self._get_layer()
        if layer.channels.pop(channel, None) is not None:
            await layer._get_shard(channel).unsubscribe(channel)
