"""The baseline's roles: raw channels_redis ``group_send`` to channels received with
``layer.receive`` (also agentdeck's diagnostic ``--publisher layer`` sender).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from datetime import UTC, datetime
from typing import Any

from _support import parse_ts

from .protocol import (
    Follower,
    count_layer_drops,
    due_time,
    emit,
    event_payload,
    followers_result,
    read_line,
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

    usage_before = os.times()
    tasks = [asyncio.create_task(follow(i)) for i in range(len(followers))]
    stopper = asyncio.create_task(read_line())
    everything = asyncio.gather(*tasks)
    await asyncio.wait({everything, stopper}, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await everything
    usage = os.times()
    cpu = usage.user + usage.system - usage_before.user - usage_before.system
    extra = {"cpu_s": cpu, "receive_timeouts": timeouts, "latency_seq": latency_seqs}
    write_result(spec, followers_result(followers, latencies, n, extra))
    os._exit(0)


def role_baseline_sender(spec: dict[str, Any]) -> None:
    asyncio.run(_baseline_sender(spec))


async def _baseline_sender(spec: dict[str, Any]) -> None:
    layer = _raw_layer(spec["redis_url"], spec.get("layer", "pubsub"))
    await layer.group_send("bench.warmup", {"type": "bench.noop"})
    drops = count_layer_drops()
    n, rate, total_runs, chars = spec["events"], spec["rate"], spec["total_runs"], spec["chars"]
    lateness: list[float] = []
    send_ms: list[float] = []
    starts: list[float] = []
    ends: list[float] = []
    emit("ready")
    t0 = await wait_go()
    usage_before = os.times()

    async def one(index: int, run_id: str) -> None:
        for seq in range(1, n + 1):
            due = due_time(t0, index, total_runs, seq, rate)
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            started = time.time()
            event_type, data = event_payload(seq, n, chars)
            created_at = datetime.now(UTC).isoformat()
            await layer.group_send(
                spec.get("group_format", "bench.{index}").format(index=index, run_id=run_id),
                {
                    "type": "run.event",
                    "run_id": run_id,
                    "seq": seq,
                    "event_type": event_type,
                    "created_at": created_at,
                    "data": data,
                },
            )
            ended = time.time()
            lateness.append(max(started - due, 0.0))
            send_ms.append((ended - started) * 1000)
            starts.append(started)
            ends.append(ended)

    await asyncio.gather(*(one(index, run_id) for index, run_id in spec["runs"]))
    usage = os.times()
    write_result(
        spec,
        {
            "layer_drops": drops.drops,
            "cpu_s": usage.user + usage.system - usage_before.user - usage_before.system,
            "events": len(send_ms),
            "first_start": min(starts),
            "last_end": max(ends),
            "lateness_ms": [x * 1000 for x in lateness],
            "append_ms": send_ms,
        },
    )
