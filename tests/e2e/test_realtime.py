"""Realtime delivery across real processes: daphne web processes, run workers, the
PostgreSQL (LISTEN/NOTIFY) and Redis channel layers, and a browser-style client (the
`websockets` library) that drops its connection and resumes without losing or repeating."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time

import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import http
from tests.e2e.test_run_engine import Api, broker_env  # noqa: F401 (fixture)
from tests.e2e.test_serve import dev_token
from tests.support.redis import redis_url

pytestmark = pytest.mark.e2e

SUB = "rt-user"
LONG_INPUT = " ".join(f"word{i}" for i in range(60))
# ~360 KB, echoed back several ways: a run whose events add up to well over a megabyte.
BIG_INPUT = " ".join(f"token{i:06d}" for i in range(30000))


def ws_url(server, run_id: str, after: int = 0) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/runs/{run_id}/?after={after}"


def subprotocols() -> list[str]:
    return ["agentdeck.v1", f"bearer.{dev_token(SUB)}"]


async def follow(
    url: str, *, stop_after: int | None = None, read_after: float = 0, **kwargs
) -> tuple[list[dict], int | None]:
    """Collect event frames until the server closes (or after `stop_after` frames, then hang up);
    `read_after`: connect, then read nothing for that many seconds first."""
    frames: list[dict] = []
    async with connect(url, subprotocols=subprotocols(), open_timeout=10, **kwargs) as ws:
        assert ws.subprotocol == "agentdeck.v1"
        await asyncio.sleep(read_after)
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if "seq" in frame:
                    frames.append(frame)
                if stop_after is not None and len(frames) >= stop_after:
                    return frames, None
        except ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd else None


def unread_socket(server) -> socket.socket:
    """A connection to the server whose kernel buffers hold little, for a client that does not
    read: what the server sends it piles up on the server's side."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server.port))
    return raw


def setup_agent(api: Api) -> str:
    status, provider = api("POST", "/api/v1/providers/", {"name": "offline", "kind": "mock"})
    assert status == 201, provider
    status, agent = api(
        "POST",
        "/api/v1/agents/",
        {"name": "Echo", "provider": provider["id"], "model": "mock-echo"},
    )
    assert status == 201, agent
    return agent["id"]


def start_run(api: Api, agent_id: str, text: str = LONG_INPUT) -> str:
    status, run = api("POST", f"/api/v1/agents/{agent_id}/runs/", {"input": text})
    assert status == 202, run
    return run["id"]


def logged_seqs(api: Api, run_id: str) -> list[int]:
    """Every seq in the run's log, following the pages of the events endpoint."""
    seqs: list[int] = []
    while True:
        status, page = api(
            "GET", f"/api/v1/runs/{run_id}/events/?limit=1000&after={seqs[-1] if seqs else 0}"
        )
        assert status == 200
        seqs += [e["seq"] for e in page["results"]]
        if page["finished"] or not page["results"]:
            return seqs


def test_client_drops_midway_and_resumes_with_every_event_once(server_factory, broker_env):  # noqa: F811
    # The worker streams one word every 20 ms, so the run is still going when the client drops.
    server = server_factory(
        MOCK_MODEL_DELAY_PER_TOKEN="0.02", RUN_HEARTBEAT_SECONDS="0.5", **broker_env
    )
    server.start("--no-worker")
    server.manage("runs_worker", background=True)  # a separate worker process
    api = Api(server.url, SUB)
    status, ready = http("GET", f"{server.url}/readyz")
    assert status == 200, ready
    assert ready["checks"]["channel_layer"]["info"] == (
        "RedisPubSubChannelLayer" if broker_env else "PostgresChannelLayer"
    )
    run_id = start_run(api, setup_agent(api))

    async def main():
        first, _ = await follow(ws_url(server, run_id), stop_after=4)
        rest, code = await follow(ws_url(server, run_id, after=first[-1]["seq"]))
        return first, rest, code

    first, rest, code = asyncio.run(main())
    seqs = [f["seq"] for f in first + rest]
    assert code == 1000
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    assert (first + rest)[-1]["type"] == "run.succeeded"
    assert seqs == logged_seqs(api, run_id)
    # It really was live: the drop happened before the run had finished.
    assert any(f["type"] == "message.delta" for f in rest)


def _redis_env(db: int) -> dict[str, str]:
    import redis

    url = redis_url(db)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).flushdb()
    except redis.ConnectionError:
        pytest.skip(f"no Redis on {url}")
    return {"REDIS_URL": url}


def test_two_web_processes_and_two_workers_on_redis(server_factory):
    # Three runs in flight per worker: six slow runs need both.
    env = {**_redis_env(12), "MOCK_MODEL_DELAY_PER_TOKEN": "0.02", "RUN_CONCURRENCY": "3"}
    web_a = server_factory(**env).start("--no-worker")
    web_b = server_factory(web_a.var_dir, **env).start(
        "--no-worker"
    )  # same database, second process
    workers = [web_a.manage("runs_worker", background=True) for _ in range(2)]
    web_a.wait_for_run_workers(2)  # both listening before the runs, or one may take all six
    api = Api(web_a.url, SUB)
    agent_id = setup_agent(api)
    run_ids = [start_run(api, agent_id) for _ in range(6)]

    async def main():
        tasks = [follow(ws_url(web, run_id)) for run_id in run_ids for web in (web_a, web_b)]
        return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    for (frames, code), run_id in zip(results, [r for r in run_ids for _ in (0, 1)], strict=True):
        assert code == 1000
        assert [f["seq"] for f in frames] == logged_seqs(api, run_id)
        assert frames[-1]["type"] == "run.succeeded"
    executed_by = {api("GET", f"/api/v1/runs/{r}/")[1]["status"] for r in run_ids}
    assert executed_by == {"succeeded"}
    assert all(w.poll() is None for w in workers)
    # Both worker processes took runs.
    pids = set(server_worker_pids(web_a, run_ids))
    assert len(pids) == 2, pids


def server_worker_pids(server, run_ids: list[str]) -> list[str]:
    code = (
        "from agentdeck.agents.models import AgentRun;"
        f"print('\\n'.join(AgentRun.objects.filter(pk__in={run_ids!r}).values_list('worker', flat=True)))"
    )
    out = server.manage("shell", "-v", "0", "-c", code).stdout.split()
    return [w.split(":")[-1] for w in out]


def daphne_pid(server) -> int:
    for child in psutil.Process(server.process.pid).children(recursive=True):
        if "daphne" in " ".join(child.cmdline()):
            return child.pid
    raise AssertionError("no daphne child")


def test_killing_the_web_process_and_resuming_on_another_loses_nothing(server_factory):
    env = {**_redis_env(13), "MOCK_MODEL_DELAY_PER_TOKEN": "0.03"}
    web_a = server_factory(**env).start("--no-worker")
    web_b = server_factory(web_a.var_dir, **env).start("--no-worker")
    web_a.manage("runs_worker", background=True)
    api = Api(web_b.url, SUB)
    run_id = start_run(api, setup_agent(api))

    async def main():
        frames: list[dict] = []
        try:
            async with connect(ws_url(web_a, run_id), subprotocols=subprotocols()) as ws:
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    frames.append(frame)
                    if len(frames) == 5:
                        os.kill(daphne_pid(web_a), signal.SIGKILL)  # the web process dies under us
        except (ConnectionClosed, OSError):
            pass
        rest, code = await follow(ws_url(web_b, run_id, after=frames[-1]["seq"]))
        return frames, rest, code

    before, after, code = asyncio.run(main())
    seqs = [f["seq"] for f in before + after]
    assert code == 1000
    assert seqs == list(range(1, len(seqs) + 1))
    assert seqs == logged_seqs(api, run_id)


def test_a_stalled_client_is_closed_4429_without_slowing_anyone_and_can_resume(server_factory):
    # A 32 KiB backlog limit and a run whose events add up to well over a megabyte.
    server = server_factory(
        WS_MAX_BUFFER_BYTES="32768",
        WS_SLOW_GRACE_SECONDS="1",
        WS_SLOW_ABORT_SECONDS="60",
        WS_SOCKET_SNDBUF_BYTES="16384",
        RUN_INPUT_MAX_BYTES="400000",
    ).start()
    api = Api(server.url, SUB)
    agent_id = setup_agent(api)
    run_id = start_run(api, agent_id, BIG_INPUT)

    async def main():
        # A client that stops reading: tiny kernel receive buffer, one-message queue, no recv().
        stalled = await connect(
            ws_url(server, run_id),
            subprotocols=subprotocols(),
            sock=unread_socket(server),
            max_queue=1,
            max_size=None,
        )
        healthy_started = time.monotonic()
        healthy, healthy_code = await follow(ws_url(server, run_id), max_size=None)
        healthy_took = time.monotonic() - healthy_started
        await asyncio.sleep(1)
        got: list[dict] = []
        code = None
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(stalled.recv(), 30))
                got.append(frame)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
        last = got[-1]["seq"] if got else 0
        # Resume as the protocol says: reconnect with after= until the run's end closes with 1000
        # (on a loaded machine the replay burst may itself be cut with 4429 and need another go).
        rest: list[dict] = []
        rest_code = None
        for _ in range(10):
            more, rest_code = await follow(ws_url(server, run_id, after=last), max_size=None)
            rest += more
            last = rest[-1]["seq"] if rest else last
            if rest_code == 1000:
                break
        return healthy, healthy_code, healthy_took, got, code, rest, rest_code

    healthy, healthy_code, healthy_took, got, code, rest, rest_code = asyncio.run(main())
    all_seqs = logged_seqs(api, run_id)
    assert healthy_code == 1000
    assert [f["seq"] for f in healthy] == all_seqs  # the healthy client was not held back
    assert healthy_took < 30
    assert code == 4429, (len(got), len(all_seqs), got[-1]["seq"] if got else None)
    assert len(got) < len(all_seqs)
    assert [
        f["seq"] for f in got + rest
    ] == all_seqs  # resumed with after=: nothing lost or repeated
    assert rest_code == 1000
    assert "closing slow WebSocket" in server.log()


def test_a_client_behind_a_replay_still_gets_every_frame_and_the_1000(server_factory):
    # A finished run replays in one burst and the server closes with 1000 right after it, so the
    # close frame queues behind everything the client has not read yet. A client that reads
    # slowly (here: not at all for longer than autobahn's 1 s close handshake) must still read
    # up to it: not lose the tail of the replay to an aborted connection and see no code.
    server = server_factory(
        WS_MAX_BUFFER_BYTES=str(64 * 1024 * 1024),  # the 4429 guard stays out of it
        WS_SOCKET_SNDBUF_BYTES="16384",
        RUN_INPUT_MAX_BYTES="400000",
    ).start()
    api = Api(server.url, SUB)
    run_id = start_run(api, setup_agent(api), BIG_INPUT)
    assert api.wait_for(run_id, {"succeeded"})["status"] == "succeeded"
    all_seqs = logged_seqs(api, run_id)

    # Read nothing for longer than autobahn's 1 s close handshake: by then the whole replay and
    # the close are queued.
    frames, code = asyncio.run(
        follow(
            ws_url(server, run_id),
            read_after=2.5,
            sock=unread_socket(server),
            max_queue=1,
            max_size=None,
        )
    )
    assert code == 1000
    assert [f["seq"] for f in frames] == all_seqs
