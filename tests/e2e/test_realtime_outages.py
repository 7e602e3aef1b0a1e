"""PostgreSQL and Redis restarting under a live system (`manage.py serve`: daphne and a qcluster
worker): runs in flight keep going, their WebSocket and SSE followers stay connected and get
every event exactly once and in order, /readyz says 503 naming what is down and 200 again within
seconds, new runs run and notifications arrive again. Nothing is restarted by hand."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import http
from tests.e2e.test_realtime import (
    LONG_INPUT,
    logged_seqs,
    setup_agent,
    start_run,
    subprotocols,
    ws_url,
)
from tests.e2e.test_run_engine import Api
from tests.support.outages import PostgresOutage, stop_postgres

pytestmark = pytest.mark.e2e

SUB = "rt-user"
# Each run streams 60 words, one every 0.1 s: still going when the server goes away.
ENV = {"MOCK_MODEL_DELAY_PER_TOKEN": "0.1", "RUN_HEARTBEAT_SECONDS": "0.5"}
OUTAGE_SECONDS = 2.0
# Within this long of its server coming back /readyz must answer 200 (reconnection attempts are
# at most RECONNECT_MAX_DELAY_SECONDS = 2 s apart; the rest is slack for a loaded machine).
RECOVERY_SECONDS = 15.0


@dataclass
class Follower:
    kind: str
    run_id: str
    frames: list[dict] = field(default_factory=list)
    end: str = ""

    @property
    def seqs(self) -> list[int]:
        return [f["seq"] for f in self.frames]


async def follow_ws(server, follower: Follower) -> None:
    async with connect(ws_url(server, follower.run_id), subprotocols=subprotocols()) as ws:
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if "seq" in frame:
                    follower.frames.append(frame)
        except ConnectionClosed as closed:
            follower.end = f"ws {closed.rcvd.code if closed.rcvd else None}"


async def follow_sse(server, api: Api, follower: Follower) -> None:
    url = f"{server.url}/api/v1/runs/{follower.run_id}/events/"
    headers = {**api.headers, "Accept": "text/event-stream"}
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(60, connect=10)) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                follower.frames.append(json.loads(line[len("data: ") :]))
    follower.end = "sse end"


async def collect_notifications(server, into: list[dict]) -> None:
    url = f"ws://127.0.0.1:{server.port}/ws/notifications/"
    async with connect(url, subprotocols=subprotocols()) as ws:
        while True:
            into.append(json.loads(await ws.recv()))


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


_agents: dict[str, str] = {}  # the agent each server's scenarios run, made once


def get_readyz(server) -> tuple[int, dict]:
    return http("GET", f"{server.url}/readyz", timeout=20)


async def outage_under_load(
    server, stop: Callable[[], None], start: Callable[[], None], failing: set[str]
) -> None:
    """Two runs in flight with a WebSocket and an SSE follower each and a notifications socket;
    ``stop`` the server under them, check /readyz, ``start`` it again; then check that every
    follower got its run's whole log once, in order, that /readyz recovered, that a new run
    runs and that notifications flow again. With ``failing`` empty the outage may be too short
    for /readyz to see (a crash PostgreSQL recovers from by itself)."""
    # A load balancer asks before the outage too (the layer's connections then exist).
    status, body = await asyncio.to_thread(get_readyz, server)
    assert status == 200, body
    api = Api(server.url, SUB)
    agent_id = _agents.get(server.url) or _agents.setdefault(server.url, setup_agent(api))
    notes: list[dict] = []
    notifying = asyncio.create_task(collect_notifications(server, notes))
    run_ids = [start_run(api, agent_id, LONG_INPUT) for _ in range(2)]
    followers = [Follower(kind, run_id) for run_id in run_ids for kind in ("ws", "sse")]
    following = [
        asyncio.create_task(follow_ws(server, f) if f.kind == "ws" else follow_sse(server, api, f))
        for f in followers
    ]
    # Mid-stream: every follower has some of its run's events, none has the end.
    await wait_until(lambda: all(len(f.frames) >= 3 for f in followers), 60, "followers started")
    before = {id(f): len(f.frames) for f in followers}

    await asyncio.to_thread(stop)
    stopped_at = time.monotonic()
    # 503 while it is down, quickly, naming the part(s) that depend on it.
    while failing:
        asked = time.monotonic()
        status, body = await asyncio.to_thread(get_readyz, server)
        took = time.monotonic() - asked
        if status == 503 and failing <= set(body["failing"]):
            assert took < 5, (took, body)
            for name in failing:
                assert body["checks"][name]["error"], body
            break
        assert time.monotonic() - stopped_at < 10, body
        await asyncio.sleep(0.2)
    await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))

    await asyncio.to_thread(start)
    started_at = time.monotonic()
    while True:
        status, body = await asyncio.to_thread(get_readyz, server)
        if status == 200:
            break
        assert time.monotonic() - started_at < RECOVERY_SECONDS, body
        await asyncio.sleep(0.2)
    recovered_in = time.monotonic() - started_at
    print(f"/readyz 200 again {recovered_in:.1f} s after the server came back")

    # A new run after the outage runs and is followed live.
    new_run = start_run(api, agent_id, "after the outage")
    new_follower = Follower("ws", new_run)
    await asyncio.wait_for(follow_ws(server, new_follower), 60)

    await asyncio.wait_for(asyncio.gather(*following), 90)
    for follower in [*followers, new_follower]:
        logged = logged_seqs(api, follower.run_id)
        assert follower.seqs == list(range(1, len(logged) + 1)), (follower.kind, follower.seqs)
        assert follower.seqs == logged, follower.kind
        assert follower.frames[-1]["type"] == "run.succeeded", follower.frames[-1]
        assert follower.end in ("ws 1000", "sse end"), follower.end
    # The runs really were in flight: their followers got events after the outage too.
    assert all(len(f.frames) > before[id(f)] for f in followers)
    for run_id in [*run_ids, new_run]:
        assert api("GET", f"/api/v1/runs/{run_id}/")[1]["status"] == "succeeded"

    # Notifications: told to resync after the outage, then live again. A run's status is sent
    # once its settlement commits, a moment after the run.succeeded its followers end on: wait
    # for every run's, not only the new one's.
    await wait_until(
        lambda: (
            {("run.status", run_id, "succeeded") for run_id in [*run_ids, new_run]}
            <= {(n["type"], n["data"].get("run_id"), n["data"].get("status")) for n in notes}
        ),
        30,
        "every run's succeeded notification",
    )
    notifying.cancel()
    types = [n["type"] for n in notes]
    assert "resync" in types, types
    statuses = {(n["data"].get("run_id"), n["data"].get("status")) for n in notes}
    assert {(new_run, "queued"), (new_run, "running"), (new_run, "succeeded")} <= statuses


def test_postgresql_restarting_under_a_live_system_loses_nothing(server_factory):
    server = server_factory(**ENV).start()
    pgdata = server.var_dir / "pgdata"
    try:
        outage = PostgresOutage(pgdata)
        asyncio.run(
            outage_under_load(
                server, outage.stop, outage.start, {"database", "channel_layer", "queue"}
            )
        )
        # The issue's own trigger: one backend killed makes PostgreSQL reset every connection.
        asyncio.run(outage_under_load(server, outage.crash_one_backend, lambda: None, set()))
        assert server.process.poll() is None, "serve died"
    finally:
        server.stop(sig=signal.SIGTERM)
        # The restarted postmaster is not the one serve's handle knows.
        stop_postgres(pgdata)
    log = server.log()
    assert "Task exception was never retrieved" not in log
    # Each outage is logged once per connection (daphne has two: its consumers' and its
    # publisher's), not once per attempt.
    assert log.count("channel layer LISTEN connection (PostgreSQL) lost") <= 2 * 2, log


def test_redis_restarting_under_a_live_system_loses_nothing(server_factory, redis_server):
    server = server_factory(REDIS_URL=f"{redis_server.url}/0", **ENV).start()
    try:
        status, ready = get_readyz(server)
        assert status == 200, ready
        assert ready["checks"]["channel_layer"]["info"] == "RedisPubSubChannelLayer"
        assert ready["checks"]["queue"]["info"].startswith("Redis")
        asyncio.run(
            outage_under_load(
                server, redis_server.stop, redis_server.start, {"channel_layer", "queue"}
            )
        )
        assert server.process.poll() is None, "serve died"
    finally:
        server.stop(sig=signal.SIGTERM)
        stop_postgres(server.var_dir / "pgdata")
    log = server.log()
    assert "Unexpected exception in receive task" not in log  # channels_redis, every second
    assert "reincarnated pusher" not in log  # django-q2's pusher died on the outage
    assert log.count("channel layer Pub/Sub connection (Redis) lost") <= 4, log
