"""The clients role: WebSocket clients following runs through daphne, as a browser would."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from _support import parse_ts

from .protocol import (
    Follower,
    emit,
    follow_until_stopped,
    followers_result,
    write_result,
)


def role_clients(spec: dict[str, Any]) -> None:
    asyncio.run(_clients(spec))


async def _clients(spec: dict[str, Any]) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    n = spec["events"]
    protocols = ["agentdeck.v1", f"bearer.{spec['token']}"]
    followers = [Follower(target=index) for index, _ in spec["targets"]]
    run_ids = [run_id for _, run_id in spec["targets"]]
    latencies: list[float] = []
    latency_seqs: list[int] = []
    connect_limit = asyncio.Semaphore(spec["connect_concurrency"])

    async def open_ws(i: int):
        url = f"{spec['ws_url']}/ws/runs/{run_ids[i]}/?after={followers[i].last_seq}"
        async with connect_limit:
            return await connect(
                url,
                subprotocols=protocols,
                proxy=None,  # 127.0.0.1 only, never through a proxy from the environment
                open_timeout=60,
                ping_interval=None,
                close_timeout=5,
            )

    sockets = await asyncio.gather(*(open_ws(i) for i in range(len(followers))))
    if any(ws.subprotocol != "agentdeck.v1" for ws in sockets):
        raise SystemExit("the server did not answer the agentdeck.v1 subprotocol")
    emit("ready")

    async def follow(i: int, ws) -> None:
        f = followers[i]
        while True:
            try:
                async for raw in ws:
                    now = time.time()
                    frame = json.loads(raw)
                    seq = frame.get("seq")
                    if seq is None:
                        continue  # a control frame ({"type": "error", ...})
                    latencies.append((now - parse_ts(frame["created_at"])) * 1000)
                    latency_seqs.append(seq)
                    f.saw(seq, now)
            except ConnectionClosed:
                pass
            f.close_codes.append(ws.close_code if ws.close_code is not None else -1)
            if f.last_seq >= n or f.reconnects >= spec["max_reconnects"]:
                return
            f.reconnects += 1  # closed early (e.g. 4429 too slow): resume after the last seq
            while True:
                try:
                    ws = await open_ws(i)
                    break
                except (OSError, InvalidHandshake, TimeoutError):
                    f.reconnects += 1
                    if f.reconnects >= spec["max_reconnects"]:
                        return
                    await asyncio.sleep(0.5)

    cpu = await follow_until_stopped(follow(i, ws) for i, ws in enumerate(sockets))
    extra = {"cpu_s": cpu, "latency_seq": latency_seqs}
    write_result(spec, followers_result(followers, latencies, n, extra))
    os._exit(0)  # the stdin reader thread may still be blocked; nothing is left to clean up
