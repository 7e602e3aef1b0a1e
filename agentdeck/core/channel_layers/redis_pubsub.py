"""channels_redis's Pub/Sub layer with supervised shards: a SUBSCRIBE that failed during an
outage is retried, every group and channel held locally is re-subscribed after a reconnection,
the outage is logged once, and ``channel_layer.reconnected`` is announced (Pub/Sub keeps nothing
that was published meanwhile)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer as _UpstreamRedisLayer
from channels_redis.pubsub import RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import create_pool
from redis import asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from agentdeck.core.channel_layers.reconnected import reconnected_message
from agentdeck.core.reconnect import Backoff, Outage, is_connection_error

logger = logging.getLogger(__name__)


class _PubSub(PubSub):
    """redis-py's PubSub, counting its connections: it re-subscribes by itself when it
    reconnects (``on_connect``), and the shard needs to know that it did."""

    connections = 0

    async def on_connect(self, connection: Any) -> None:
        await super().on_connect(connection)
        self.connections += 1


class _Shard(RedisSingleShardConnection):  # type: ignore[misc]  # channels_redis is untyped
    """One Redis server's Pub/Sub connection: subscriptions asked for while Redis is away are
    remembered and made when it is back; every reconnection is announced to local channels."""

    # Upstream's, made by _ensure_redis below; None until then and after a lost connection
    # (_pubsub is Any: its callers run after _ensure_redis, as upstream's do).
    _redis: aioredis.Redis | None
    _pubsub: Any

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


class _LoopLayer(RedisPubSubLoopLayer):  # type: ignore[misc]  # channels_redis is untyped
    _shards: list[_Shard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shards = [_Shard(shard.host, self) for shard in self._shards]


class RedisPubSubChannelLayer(_UpstreamRedisLayer):  # type: ignore[misc]  # channels_redis is untyped
    """channels_redis's Pub/Sub layer with the shards above (see the package docstring)."""

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
        layers: list[_LoopLayer] = list(self._layers.values())
        for layer in layers:
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
