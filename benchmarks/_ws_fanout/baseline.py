"""The baseline's roles: raw channels_redis ``group_send`` to channels received with
``layer.receive`` (also agentdeck's diagnostic ``--publisher layer`` sender).
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from typing import Any

from _support import parse_ts

from .protocol import (
    Follower,
    Pacer,
    count_layer_drops,
    cpu_seconds_since,
    emit,
    follow_until_stopped,
    followers_result,
    wait_go,
    write_result,
)


def _raw_layer(url: str, kind: str = "pubsub"):
    """A bare channels_redis layer: ``pubsub`` (what the server runs since it moved to Redis
    Pub/Sub) or ``queue`` (channels_redis's RedisChannelLayer, which it ran before), with only
    the host given, every other option at its default."""
    if kind == "queue":
        from channels_redis.core import RedisChannelLayer

        return RedisChannelLayer(hosts=[url])
    from channels_redis.pubsub import RedisPubSubChannelLayer

    return RedisPubSubChannelLayer(hosts=[url])


def role_baseline_receiver(spec: dict[str, Any]) -> None:
    asyncio.run(_baseline_receiver(spec))


async def _baseline_receiver(spec: dict[str, Any]) -> None:
    layer = _raw_layer(spec["redis_url"], spec.get("layer", "pubsub"))
    n = spec["events"]
    followers = [Follower(target=index) for index, _ in spec["targets"]]
    channels = []
    for f in followers:
        channel = await layer.new_channel()
        await layer.group_add(f"bench.{f.target}", channel)
        channels.append(channel)
    latencies: list[float] = []
    latency_seqs: list[int] = []
    emit("ready")

    import redis

    timeouts = 0

    async def follow(i: int) -> None:
        nonlocal timeouts
        f = followers[i]
        while f.last_seq < n:
            try:
                message = await layer.receive(channels[i])
            except redis.TimeoutError:
                # redis-py 8 reads with a 5 s socket timeout, channels_redis blocks in BZPOPMIN
                # for 5 s: an idle receive raises (see the module docstring). Receive again.
                timeouts += 1
                continue
            now = time.time()
            latencies.append((now - parse_ts(message["created_at"])) * 1000)
            latency_seqs.append(message["seq"])
            f.saw(message["seq"], now)

    cpu = await follow_until_stopped(follow(i) for i in range(len(followers)))
    extra = {"cpu_s": cpu, "receive_timeouts": timeouts, "latency_seq": latency_seqs}
    write_result(spec, followers_result(followers, latencies, n, extra))
    os._exit(0)


def role_baseline_sender(spec: dict[str, Any]) -> None:
    asyncio.run(_baseline_sender(spec))


async def _baseline_sender(spec: dict[str, Any]) -> None:
    layer = _raw_layer(spec["redis_url"], spec.get("layer", "pubsub"))
    await layer.group_send("bench.warmup", {"type": "bench.noop"})
    drops = count_layer_drops()
    pacer = Pacer(spec)
    group_format = spec.get("group_format", "bench.{index}")
    emit("ready")
    t0 = await wait_go()
    usage_before = os.times()

    async def send(index: int, run_id: str, seq: int, event_type: str, data: dict) -> None:
        created_at = datetime.now(UTC).isoformat()
        await layer.group_send(
            group_format.format(index=index, run_id=run_id),
            {
                "type": "run.event",
                "run_id": run_id,
                "seq": seq,
                "event_type": event_type,
                "created_at": created_at,
                "data": data,
            },
        )

    await pacer.run(t0, spec["runs"], send)
    cpu = cpu_seconds_since(usage_before)
    write_result(spec, {"layer_drops": drops.drops, "cpu_s": cpu, **pacer.figures()})
