"""WebSocket fan-out: clients following runs through daphne + the Redis channel layer, against raw
``channels_redis`` ``group_send`` to the same number of receivers, in one invocation.

The issue: 500 concurrent WebSocket clients following 50 concurrent runs; delivery latency
p50/p99 (event persisted -> client received), events/s and events lost. Targets: zero events
lost, p99 under 100 ms, at least 50% of the baseline's events/s.

* **agentdeck**: ``manage.py serve --no-worker`` (daphne; embedded PostgreSQL in a fresh temporary
  ``AGENTDECK_VAR_DIR``; ``REDIS_URL`` turns on the Redis channel layer, exactly as in
  production) on a free loopback port. R runs are created over the REST API (mock provider,
  ``mock-echo`` agent). C clients per run (``websockets``, in ``--client-procs`` processes)
  connect to ``/ws/runs/{id}/?after=0`` with the ``["agentdeck.v1", "bearer.<jwt>"]``
  subprotocols; once every run's group in Redis holds its C channels, ``--producers`` producer
  processes append the events with the service the worker uses: ``agent_run_claim`` (queued ->
  running) before the start, then per run ``run_event_append`` for ``run.started`` and
  ``message.delta`` events, and ``agent_run_finish`` for the terminal ``run.succeeded`` (seq N),
  each through ``sync_to_async`` under ``async_to_sync`` as the worker's executor calls it, so
  every event is persisted (UPDATE agent_runs ... RETURNING seq, INSERT run_events, COMMIT) and
  then published by ``publish_on_commit`` on the producer's event loop.
  Latency = client receive time - the frame's ``created_at`` (set when the row is built, just
  before its INSERT); everything runs on this machine, so both clocks are the same clock.
* **baseline**: a raw channels_redis layer of the kind the server runs, with only ``hosts``:
  ``RedisPubSubChannelLayer`` (``--baseline-layer queue``: ``RedisChannelLayer``, the server's
  layer before 2026-11-30, default capacity 100 and expiry 60, in another Redis database):
  one receiver process holding R x C channels in R groups of C, each consuming with
  ``layer.receive``; the same number of sender processes ``group_send`` a message of the same
  shape and size on the same schedule. Latency = receive time - the ``created_at`` stamped just
  before ``group_send``.

Why the events are appended by a producer rather than by executing runs on the qcluster with a
slowed-down mock model: the rate and count of events per run are then exact and identical for
both sides (the executor coalesces deltas on a 50 ms timer, so a mock model gives a
timing-dependent number of events), every run is live at the same time (a 2-worker qcluster
runs 2 at once), and the baseline can replay the same schedule. The persist + publish path is
the real one; what is left out is the Agents SDK itself (measured by ``run_overhead.py``).

Schedule: with ``--rate E`` (default 5) each run emits one event every 1/E s, the runs staggered
evenly inside that interval so the aggregate is smooth: 50 runs x 5/s = 250 events persisted
and 2,500 WebSocket frames per second. 20/s is a run streaming flat out (one coalesced delta per
50 ms); ``--rate 0`` emits as fast as each producer can. events/s = deliveries received /
(first event sent -> last delivery). Each client checks that it saw seq 1..N once each, in
order; lost = R x C x N - distinct (run, client, seq) received. A client closed with anything
but 1000 reconnects with ``after=<last seq>`` (a browser would) and that is counted.

Producers: ``--producers`` processes (default 5, i.e. 10 runs each), each with all its ORM calls
on one thread (``--threads 1``), which is the worker's own arrangement; more threads per process
mostly wait for each other's GIL. A real deployment appends from worker processes on other
machines; here they share the 2 cores with daphne, so their CPU time is reported.

Also reported, to explain a miss: how far the producers fell behind their schedule; one append
(persist + publish) and the publish step alone; the largest backlog seen in a receiving
process's layer queue (``asgispecific.<process>!``: one sorted set per process, shared by all of
its sockets, holding at most ``capacity`` = 100 messages; ``group_send`` drops what does not
fit, which channels_redis logs and the senders count as "layer drops"); latency p50 per tenth of
the runs (flat when delivery keeps up, rising when a backlog builds); CPU seconds per process.

Known interaction, reported rather than worked around by default: redis-py 8 reads with a 5 s
socket timeout, and channels_redis blocks in ``BZPOPMIN`` for 5 s, so a receive loop idle for
5 s raises ``redis.exceptions.TimeoutError``; in daphne that kills one consumer (close 1011)
per idle period. The clients reconnect (counted); the baseline receiver retries (counted).
``--redis-socket-timeout 30`` puts ``?socket_timeout=30`` on both Redis URLs (a deployment can
do the same in ``REDIS_URL``).

Diagnostics: ``--publisher layer`` sends agentdeck's run.event messages with raw ``group_send``
into the run groups (nothing persisted) to measure daphne's fan-out alone; ``--py-spy DIR``
samples daphne, one producer/sender and one client/receiver process while events flow.

The machine may be shared: before each phase the benchmark waits (up to ``--quiet-wait``) for
the whole machine to be under ``--quiet-below`` % busy, and records the load it started under.
Each measurement is repeated ``--repeat`` times, alternating which side goes first, and the
medians are reported. Everything is started here and stopped at the end, on error and on
Ctrl-C; all traffic stays on 127.0.0.1. Exit status: 0 when every target is met, 2 when one is
missed, 1 when the benchmark itself failed.

    .venv/bin/python benchmarks/ws_fanout.py                      # 500 clients, 50 runs
    .venv/bin/python benchmarks/ws_fanout.py --runs 5 --clients-per-run 4 --events 20 --repeat 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from _support import (  # noqa: E402 (the scripts' own directory)
    HOST,
    Api,
    BenchError,
    CpuMeter,
    Server,
    kill_group,
    log,
    machine,
    parse_ts,
    percentile,
    postmaster_pid,
    proc_children,
    proc_cmdline,
    redis_flushed,
    run_bench,
    stop_embedded_postgres,
    temporary_var_dir,
    verdict,
    wait_for_quiet,
)

# Targets from the issue.
LOST_TARGET = 0
P99_TARGET_MS = 100.0
RATIO_TARGET = 0.50
DELTA_TEXT = "The quick brown fox jumps over the lazy dog. "


def due_time(t0: float, run_index: int, runs: int, seq: int, rate: float) -> float:
    """When event ``seq`` (1-based) of run ``run_index`` is due; runs are staggered evenly."""
    if rate <= 0:
        return t0
    return t0 + run_index / (runs * rate) + (seq - 1) / rate


def event_payload(seq: int, n: int, chars: int) -> tuple[str, dict[str, Any]]:
    """The (type, data) of event ``seq`` of ``n``: run.started, deltas, run.succeeded."""
    if seq == 1:
        return "run.started", {"agent": "bench", "model": "mock-echo", "version": 1, "attempt": 1}
    if seq == n:
        return "run.succeeded", {"output": "done", "last_agent": "bench", "usage": {}}
    text = (DELTA_TEXT * (chars // len(DELTA_TEXT) + 1))[:chars]
    return "message.delta", {"agent": "bench", "delta": text}


# --- child processes: the roles ----------------------------------------------------------------
#
# A role is this file run with ``--role NAME --spec FILE``. It prints ``ready`` on stdout when set
# up, waits for ``go <t0>`` (producers, senders) on stdin, writes its figures to FILE.result and
# prints ``done``. ``stop`` on stdin makes a receiving role report what it has and exit.


class _DropCounter(logging.Handler):
    """Counts channels_redis's "N of M channels over capacity in group G" log records: each is
    a group_send whose message was not queued for N channels (the layer dropped it)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.drops = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "over capacity" in record.getMessage():
            self.drops += 1


def count_layer_drops() -> _DropCounter:
    counter = _DropCounter()
    layer_logger = logging.getLogger("channels_redis.core")
    layer_logger.addHandler(counter)
    if layer_logger.getEffectiveLevel() > logging.INFO:
        layer_logger.setLevel(logging.INFO)
    return counter


def _emit(word: str) -> None:
    sys.stdout.write(word + "\n")
    sys.stdout.flush()


async def _read_line() -> str:
    loop = asyncio.get_running_loop()
    return (await loop.run_in_executor(None, sys.stdin.readline)).strip()


async def _wait_go() -> float:
    line = await _read_line()
    if not line.startswith("go "):
        raise SystemExit(f"expected 'go <t0>', got {line!r}")
    return float(line.split()[1])


def _write_result(spec: dict[str, Any], result: dict[str, Any]) -> None:
    Path(spec["result_path"]).write_text(json.dumps(result))
    _emit("done")


def role_producer(spec: dict[str, Any]) -> None:
    """Append the events of some runs through the worker's own service functions."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from asgiref.sync import async_to_sync

    # As the worker's executor does: an event loop of our own under async_to_sync, the ORM
    # through sync_to_async, publish_on_commit's async_to_sync landing back on this loop.
    _write_result(spec, async_to_sync(_producer)(spec))


async def _producer(spec: dict[str, Any]) -> dict[str, Any]:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer
    from django.db import connection

    from agentdeck.agents.services.runs import (
        RunOutcome,
        agent_run_claim,
        agent_run_finish,
        run_event_append,
    )

    # threads == 1 is the worker's own arrangement: every ORM call on the one thread that called
    # async_to_sync. More threads (each with its own connection) let one process append for
    # several runs at once, but under the GIL they mostly wait for each other.
    threads = spec["threads"]
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="append")

    def in_pool(fn):
        if threads == 1:
            return sync_to_async(fn)
        return sync_to_async(fn, thread_sensitive=False, executor=pool)

    runs: list[tuple[int, str]] = [tuple(r) for r in spec["runs"]]
    for _, run_id in runs:
        if not await in_pool(agent_run_claim)(run_id=run_id):
            raise SystemExit(f"run {run_id} could not be claimed")
    barrier = threading.Barrier(threads, timeout=30)

    def warm() -> None:
        connection.ensure_connection()
        if threads > 1:
            barrier.wait()

    await asyncio.gather(*(in_pool(warm)() for _ in range(threads)))
    await get_channel_layer().group_send("bench.warmup", {"type": "bench.noop"})

    # Instrumentation only: time the publish step (group_send after commit) apart from the
    # append as a whole, by wrapping the module function publish_on_commit's callback calls.
    from agentdeck.core import realtime

    publish_ms: list[float] = []
    original_publish = realtime.publish

    def timed_publish(group: str, message: dict[str, Any], **options: Any) -> None:
        started = time.perf_counter()
        original_publish(group, message, **options)
        if group.startswith("run."):
            publish_ms.append((time.perf_counter() - started) * 1000)

    realtime.publish = timed_publish
    drops = count_layer_drops()

    n, rate, total_runs, chars = spec["events"], spec["rate"], spec["total_runs"], spec["chars"]
    lateness: list[float] = []
    append_ms: list[float] = []
    starts: list[float] = []
    ends: list[float] = []
    _emit("ready")
    t0 = await _wait_go()
    usage_before = os.times()

    async def one(index: int, run_id: str) -> None:
        for seq in range(1, n + 1):
            due = due_time(t0, index, total_runs, seq, rate)
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            started = time.time()
            event_type, data = event_payload(seq, n, chars)
            if seq == n:
                outcome = RunOutcome(status="succeeded", output="done", last_agent="bench")
                if not await in_pool(agent_run_finish)(run_id=run_id, outcome=outcome):
                    raise SystemExit(f"run {run_id} could not be finished")
            else:
                result = await in_pool(run_event_append)(run_id=run_id, type=event_type, data=data)
                if result.seq != seq:
                    raise SystemExit(f"run {run_id}: appended seq {result.seq}, expected {seq}")
            ended = time.time()
            lateness.append(max(started - due, 0.0))
            append_ms.append((ended - started) * 1000)
            starts.append(started)
            ends.append(ended)

    await asyncio.gather(*(one(index, run_id) for index, run_id in runs))
    pool.shutdown(wait=False)
    usage = os.times()
    return {
        "layer_drops": drops.drops,
        "publish_ms": publish_ms,
        "cpu_s": usage.user + usage.system - usage_before.user - usage_before.system,
        "events": len(append_ms),
        "first_start": min(starts),
        "last_end": max(ends),
        "lateness_ms": [x * 1000 for x in lateness],
        "append_ms": append_ms,
    }


@dataclass
class Follower:
    """What one receiver (a WebSocket client, or a baseline channel) saw."""

    target: int  # the run's index
    last_seq: int = 0
    distinct: set[int] = field(default_factory=set)
    frames: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    reconnects: int = 0
    close_codes: list[int] = field(default_factory=list)
    last_receive: float = 0.0

    def saw(self, seq: int, now: float) -> None:
        self.frames += 1
        self.last_receive = now
        if seq in self.distinct:
            self.duplicates += 1
            return
        if seq != self.last_seq + 1:
            self.out_of_order += 1
        self.distinct.add(seq)
        self.last_seq = max(self.last_seq, seq)


def _followers_result(
    followers: list[Follower], latencies: list[float], n: int, extra: dict[str, Any]
) -> dict[str, Any]:
    codes: dict[str, int] = {}
    for f in followers:
        for code in f.close_codes:
            codes[str(code)] = codes.get(str(code), 0) + 1
    return {
        "followers": len(followers),
        "received": sum(len(f.distinct & set(range(1, n + 1))) for f in followers),
        "frames": sum(f.frames for f in followers),
        "duplicates": sum(f.duplicates for f in followers),
        "out_of_order": sum(f.out_of_order for f in followers),
        "incomplete": sum(1 for f in followers if len(f.distinct) < n),
        "reconnects": sum(f.reconnects for f in followers),
        "close_codes": codes,
        "last_receive": max((f.last_receive for f in followers), default=0.0),
        "latency_ms": latencies,
        **extra,
    }


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
    _emit("ready")

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

    usage_before = os.times()
    tasks = [asyncio.create_task(follow(i, ws)) for i, ws in enumerate(sockets)]
    stopper = asyncio.create_task(_read_line())
    everything = asyncio.gather(*tasks)
    await asyncio.wait({everything, stopper}, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await everything
    usage = os.times()
    cpu = usage.user + usage.system - usage_before.user - usage_before.system
    extra = {"cpu_s": cpu, "latency_seq": latency_seqs}
    _write_result(spec, _followers_result(followers, latencies, n, extra))
    os._exit(0)  # the stdin reader thread may still be blocked; nothing is left to clean up


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
    _emit("ready")

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
    stopper = asyncio.create_task(_read_line())
    everything = asyncio.gather(*tasks)
    await asyncio.wait({everything, stopper}, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await everything
    usage = os.times()
    cpu = usage.user + usage.system - usage_before.user - usage_before.system
    extra = {"cpu_s": cpu, "receive_timeouts": timeouts, "latency_seq": latency_seqs}
    _write_result(spec, _followers_result(followers, latencies, n, extra))
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
    _emit("ready")
    t0 = await _wait_go()
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
    _write_result(
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


ROLES = {
    "producer": role_producer,
    "clients": role_clients,
    "baseline-receiver": role_baseline_receiver,
    "baseline-sender": role_baseline_sender,
}


# --- the orchestrator's view of a child ----------------------------------------------------------


_CHILD_PIDS: set[int] = set()  # started and not yet reaped: stopped whatever happens


class Child:
    """One role process: a line protocol on stdin/stdout, stderr to a log file."""

    def __init__(self, name: str, role: str, spec: dict[str, Any], work_dir: Path, env=None):
        self.name, self.role = name, role
        self.spec_path = work_dir / f"{name}.spec.json"
        self.log_path = work_dir / f"{name}.log"
        self.spec = {**spec, "result_path": str(self.spec_path) + ".result"}
        self.env = env
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Child:
        self.spec_path.write_text(json.dumps(self.spec))
        with self.log_path.open("w") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(Path(__file__).resolve()),
                "--role",
                self.role,
                "--spec",
                str(self.spec_path),
                cwd=BASE_DIR,
                env=self.env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                start_new_session=True,
            )
        _CHILD_PIDS.add(self.process.pid)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text() if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def expect(self, word: str, timeout: float) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                line = (await self.process.stdout.readline()).decode().strip()
        except TimeoutError:
            raise BenchError(
                f"{self.name}: no '{word}' within {timeout:.0f}s\n{self.log_tail()}"
            ) from None
        if line != word:
            raise BenchError(f"{self.name}: expected '{word}', got {line!r}\n{self.log_tail()}")

    def send(self, line: str) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        if self.process.returncode is None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.process.stdin.write((line + "\n").encode())

    async def result(self, timeout: float) -> dict[str, Any]:
        await self.expect("done", timeout)
        return json.loads(Path(self.spec["result_path"]).read_text())

    async def finish(self, grace: float = 10) -> None:
        """Wait up to ``grace`` s for a clean exit, then stop the process group."""
        if self.process is None:
            return
        if self.process.stdin is not None and self.process.returncode is None:
            self.process.stdin.close()  # end of input: a role still waiting for a line exits
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self.process.wait()
        if self.process.returncode is None:
            await asyncio.to_thread(kill_group, self.pid)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self.process.wait()
        _CHILD_PIDS.discard(self.pid)


# --- the deployment ------------------------------------------------------------------------------


@dataclass(eq=False)
class FanoutServer(Server):
    """``manage.py serve --no-worker`` (daphne + the embedded PostgreSQL) with the Redis layer, on
    a temporary var dir removed when it stops (unless ``keep``)."""

    keep: bool = False

    @property
    def work_dir(self) -> Path:
        return self.var_dir.parent

    def daphne_pid(self) -> int | None:
        if self.process is None:
            return None
        for pid in proc_children(self.process.pid):
            if "daphne" in proc_cmdline(pid):
                return pid
        return None

    def postgres_pids(self) -> list[int]:
        postmaster = postmaster_pid(self.var_dir)
        return [] if postmaster is None else [postmaster, *proc_children(postmaster)]

    def stop(self, grace: float = 40) -> None:
        super().stop(grace)
        stop_embedded_postgres(self.var_dir)
        if self.keep:
            log(f"kept {self.work_dir}")
        else:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def redis_url(args: argparse.Namespace, db: int) -> str:
    url = f"redis://{HOST}:{args.redis_port}/{db}"
    if args.redis_socket_timeout is not None:
        # redis-py reads connection options from the URL's query: the channel layer, the queue
        # broker and the cache all take it from REDIS_URL, with no settings change.
        url += f"?socket_timeout={args.redis_socket_timeout:g}"
    return url


def redis_client(port: int, db: int):
    import redis

    return redis.Redis(host=HOST, port=port, db=db, socket_timeout=5)


def redis_pid(port: int) -> int | None:
    try:
        client = redis_client(port, 0)
        pid = int(client.info("server")["process_id"])
        client.close()
    except Exception:
        return None
    # Only when it runs here and we can read it; otherwise it is left out of the CPU table.
    return pid if Path(f"/proc/{pid}/stat").exists() else None


# --- one measurement -----------------------------------------------------------------------------


@dataclass
class Phase:
    """One side's figures for one repetition."""

    side: str
    events_sent: int
    expected: int
    received: int
    lost: int
    duplicates: int
    out_of_order: int
    incomplete: int
    reconnects: int
    close_codes: dict[str, int]
    receive_timeouts: int  # baseline: redis TimeoutError from an idle layer.receive, retried
    events_per_s: float  # deliveries per second
    p50_ms: float
    p99_ms: float
    max_ms: float
    send_lateness_p99_ms: float  # how far behind its schedule the producer/sender fell
    append_p50_ms: float  # one run_event_append (or group_send) call, as the producer saw it
    append_p99_ms: float
    publish_p50_ms: float  # agentdeck: the publish step alone (group_send after commit)
    publish_p99_ms: float
    backlog_max: int  # the most messages seen waiting in a receiving process's layer queue
    layer_drops: int  # group_send calls the layer reported over capacity (message dropped)
    p50_by_decile_ms: list[float]  # latency p50 of seqs in each tenth of the run, first to last
    load_before: float  # 1-minute load average when the phase started (the machine is shared)
    duration_s: float
    cpu: dict[str, float]


def _phase(
    side: str,
    senders: list[dict],
    followers: list[dict],
    expected: int,
    cpu: dict,
    backlog_max: int,
) -> Phase:
    latencies = [x for f in followers for x in f["latency_ms"]]
    received = sum(f["received"] for f in followers)
    first = min(s["first_start"] for s in senders)
    last = max(f["last_receive"] for f in followers)
    codes: dict[str, int] = {}
    for f in followers:
        for code, count in f["close_codes"].items():
            codes[code] = codes.get(code, 0) + count
    return Phase(
        side=side,
        events_sent=sum(s["events"] for s in senders),
        expected=expected,
        received=received,
        lost=expected - received,
        duplicates=sum(f["duplicates"] for f in followers),
        out_of_order=sum(f["out_of_order"] for f in followers),
        incomplete=sum(f["incomplete"] for f in followers),
        reconnects=sum(f["reconnects"] for f in followers),
        close_codes=codes,
        receive_timeouts=sum(f.get("receive_timeouts", 0) for f in followers),
        events_per_s=received / (last - first) if last > first else 0.0,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=float("nan")),
        send_lateness_p99_ms=percentile([x for s in senders for x in s["lateness_ms"]], 99),
        append_p50_ms=percentile([x for s in senders for x in s["append_ms"]], 50),
        append_p99_ms=percentile([x for s in senders for x in s["append_ms"]], 99),
        publish_p50_ms=percentile([x for s in senders for x in s.get("publish_ms", [])], 50),
        publish_p99_ms=percentile([x for s in senders for x in s.get("publish_ms", [])], 99),
        backlog_max=backlog_max,
        layer_drops=sum(s.get("layer_drops", 0) for s in senders),
        p50_by_decile_ms=by_decile(followers),
        load_before=cpu.pop("load_before", float("nan")),
        duration_s=last - first,
        cpu=cpu,
    )


def by_decile(followers: list[dict]) -> list[float]:
    """Latency p50 for the events in each tenth of the runs' sequence (seq 1..N): flat when
    delivery keeps up, rising when a backlog builds."""
    n = max((seq for f in followers for seq in f["latency_seq"]), default=0)
    buckets: list[list[float]] = [[] for _ in range(10)]
    for f in followers:
        for seq, ms in zip(f["latency_seq"], f["latency_ms"], strict=True):
            buckets[min((seq - 1) * 10 // max(n, 1), 9)].append(ms)
    return [round(percentile(b, 50), 1) for b in buckets]


def split(items: list, parts: int) -> list[list]:
    return [items[i::parts] for i in range(parts) if items[i::parts]]


def schedule_seconds(args: argparse.Namespace) -> float:
    return args.events / args.rate if args.rate > 0 else 0.0


async def sample_backlog(port: int, db: int, stop: asyncio.Event) -> int:
    """The largest number of messages seen waiting in a process-wide receive queue of the layer
    (``asgispecific.<process>!``: one sorted set per receiving process, capacity 100 by
    default; group_send drops what does not fit), sampled every 50 ms."""
    import redis.asyncio

    client = redis.asyncio.Redis(host=HOST, port=port, db=db, socket_timeout=5)
    largest = 0
    try:
        while not stop.is_set():
            async for key in client.scan_iter(match="asgispecific.*!", count=1000):
                largest = max(largest, await client.zcard(key))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await stop.wait()
    finally:
        await client.aclose()
    return largest


def start_py_spy(out_dir: Path, name: str, pid: int, seconds: float) -> subprocess.Popen | None:
    """Sample ``pid`` with py-spy for ``seconds`` (collapsed stacks in out_dir/name.txt)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        log("py-spy not found: pip install py-spy into the venv")
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(  # noqa: S603 (our own argv)
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(int(seconds), 1)),
            "--rate",
            "100",
            "--format",
            "raw",
            "--nonblocking",
            "--idle",  # wall-clock view: waiting shows up too
            "--threads",
            "--output",
            str(out_dir / f"{name}.txt"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def run_senders_and_followers(
    args: argparse.Namespace,
    senders: list[Child],
    followers: list[Child],
    ready_check,
    cpu_groups,
    backlog_db: int,
    profile: dict[str, int] | None = None,
) -> tuple[list[dict], list[dict], dict, int]:
    """Start the senders, then the followers (so that the followers sit idle for as short a time
    as possible), wait until all are ready, go, collect. Stops the children whatever happens."""
    spies: list[subprocess.Popen] = []
    stop_sampling = asyncio.Event()
    sampler: asyncio.Task | None = None
    completed = False
    try:
        # The machine is shared: other jobs' load would be measured as ours.
        quiet = await asyncio.to_thread(wait_for_quiet, args.quiet_wait, args.quiet_below / 100, 2)
        quiet_busy = 100 * quiet
        for child in senders:
            await child.start()
        await asyncio.gather(*(child.expect("ready", args.setup_timeout) for child in senders))
        for child in followers:
            await child.start()
        await asyncio.gather(*(child.expect("ready", args.setup_timeout) for child in followers))
        await ready_check()
        # A consumer joins its group before it replays the log (after=0: one query each, all on
        # daphne's one database thread), so give those replays time to finish.
        await asyncio.sleep(args.settle)
        meter = CpuMeter(cpu_groups())  # after ready: the senders' database backends exist now
        load_before = os.getloadavg()[0]
        meter.start()
        sampler = asyncio.create_task(sample_backlog(args.redis_port, backlog_db, stop_sampling))
        if args.py_spy and profile is not None:
            targets = {
                **profile,
                senders[0].name: senders[0].pid,
                followers[0].name: followers[0].pid,
            }
            for name, pid in targets.items():
                spy = start_py_spy(args.py_spy, name, pid, schedule_seconds(args) or 10)
                if spy is not None:
                    spies.append(spy)
        t0 = time.time() + 0.2
        for sender in senders:
            sender.send(f"go {t0}")
        send_timeout = schedule_seconds(args) + args.send_timeout
        sent = await asyncio.gather(*(s.result(send_timeout) for s in senders))
        # Followers finish on their own when they have seq N; stragglers get --drain-timeout.
        deadline = time.monotonic() + args.drain_timeout
        received = []
        for follower in followers:
            try:
                received.append(await follower.result(max(deadline - time.monotonic(), 0.1)))
            except BenchError:
                follower.send("stop")
                received.append(await follower.result(30))
        cpu = meter.stop()
        cpu["load_before"] = load_before
        cpu["busy_before_pct"] = round(quiet_busy, 1)
        stop_sampling.set()
        backlog = await sampler
        # The children measured their own CPU time from the start signal to their end.
        cpu["senders"] = round(sum(r["cpu_s"] for r in sent), 2)
        cpu["followers"] = round(sum(r["cpu_s"] for r in received), 2)
        completed = True
        return sent, received, cpu, backlog
    finally:
        stop_sampling.set()
        if sampler is not None and not sampler.done():
            sampler.cancel()
        for spy in spies:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(spy.wait, 30)
            if spy.poll() is None:
                spy.kill()
                spy.wait()
        # After an error or an interrupt, stop them at once rather than let them finish.
        grace = 10 if completed else 0.5
        await asyncio.gather(*(child.finish(grace) for child in [*followers, *senders]))


async def measure_agentdeck(
    args: argparse.Namespace, deployment: FanoutServer, api, agent_id: str, token: str, rep: int
) -> Phase:
    run_ids = []
    for _ in range(args.runs):
        run = await api("POST", f"/api/v1/agents/{agent_id}/runs/", {"input": "bench"}, (202,))
        run_ids.append(run["id"])
    indexed = list(enumerate(run_ids))
    common = {"events": args.events, "rate": args.rate, "total_runs": args.runs}
    if args.publisher == "service":
        senders = [
            Child(
                f"r{rep}-producer{i}",
                "producer",
                {**common, "runs": part, "threads": args.threads, "chars": args.chars},
                deployment.work_dir,
                env=deployment.env(),
            )
            for i, part in enumerate(split(indexed, args.producers))
        ]
    else:  # diagnostic: the run.event messages straight into the run groups, nothing persisted
        senders = [
            Child(
                f"r{rep}-lsender{i}",
                "baseline-sender",
                {
                    **common,
                    "runs": part,
                    "chars": args.chars,
                    "redis_url": deployment.redis_url,
                    "group_format": "run.{run_id}",
                },
                deployment.work_dir,
            )
            for i, part in enumerate(split(indexed, args.producers))
        ]
    targets = [pair for pair in indexed for _ in range(args.clients_per_run)]
    followers = [
        Child(
            f"r{rep}-clients{i}",
            "clients",
            {
                **common,
                "targets": part,
                "ws_url": deployment.ws_url,
                "token": token,
                "connect_concurrency": args.connect_concurrency,
                "max_reconnects": args.max_reconnects,
            },
            deployment.work_dir,
        )
        for i, part in enumerate(split(targets, args.client_procs))
    ]
    layer = redis_client(args.redis_port, args.redis_db)

    async def every_group_full() -> None:
        """Every run's group has its members (``group_add`` runs right after the handshake).
        With Redis Pub/Sub (the server's layer) membership is kept inside the daphne process,
        which subscribes once per group: wait for every group's subscription; the settle time
        covers the group_add of the sockets that connected last. (With the queue layer each
        member is an entry of the group's sorted set, counted exactly.)"""
        deadline = time.monotonic() + args.setup_timeout
        while True:
            queue_sizes = [layer.zcard(f"asgi:group:run.{run_id}") for run_id in run_ids]
            if all(size == args.clients_per_run for size in queue_sizes):
                return
            subscribed = layer.pubsub_numsub(*[f"asgi__group__run.{run_id}" for run_id in run_ids])
            if all(count >= 1 for _, count in subscribed):
                return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"run groups never filled up: members {queue_sizes}, "
                    f"subscriptions {[count for _, count in subscribed]}"
                )
            await asyncio.sleep(0.1)

    def groups() -> dict[str, list[int]]:
        return {
            "daphne": [pid for pid in [deployment.daphne_pid()] if pid],
            "postgres": deployment.postgres_pids(),
            "redis": [pid for pid in [redis_pid(args.redis_port)] if pid],
        }

    try:
        daphne = deployment.daphne_pid()
        sent, received, cpu, backlog = await run_senders_and_followers(
            args,
            senders,
            followers,
            every_group_full,
            groups,
            args.redis_db,
            profile={f"r{rep}-daphne": daphne} if daphne else None,
        )
    finally:
        layer.close()
    expected = args.runs * args.clients_per_run * args.events
    return _phase("agentdeck", sent, received, expected, cpu, backlog)


async def measure_baseline(args: argparse.Namespace, work_dir: Path, rep: int) -> Phase:
    url = redis_url(args, args.baseline_redis_db)
    redis_client(args.redis_port, args.baseline_redis_db).flushdb()
    indexed = [(i, f"baseline-run-{i}") for i in range(args.runs)]
    common = {
        "events": args.events,
        "rate": args.rate,
        "total_runs": args.runs,
        "redis_url": url,
        "layer": args.baseline_layer,
    }
    senders = [
        Child(
            f"r{rep}-bsender{i}",
            "baseline-sender",
            {**common, "runs": part, "chars": args.chars},
            work_dir,
        )
        for i, part in enumerate(split(indexed, args.producers))
    ]
    targets = [pair for pair in indexed for _ in range(args.clients_per_run)]
    followers = [
        Child(f"r{rep}-breceiver", "baseline-receiver", {**common, "targets": targets}, work_dir)
    ]

    async def nothing_more() -> None:
        return None  # the receiver says ready after its group_add calls returned

    def groups() -> dict[str, list[int]]:
        return {"redis": [pid for pid in [redis_pid(args.redis_port)] if pid]}

    sent, received, cpu, backlog = await run_senders_and_followers(
        args, senders, followers, nothing_more, groups, args.baseline_redis_db, profile={}
    )
    expected = args.runs * args.clients_per_run * args.events
    return _phase("baseline", sent, received, expected, cpu, backlog)


# --- the API -------------------------------------------------------------------------------------


async def create_agent(api: Api) -> str:
    await api("GET", "/api/v1/me")  # creates the user from the token's claims
    provider = await api(
        "POST", "/api/v1/providers/", {"name": "bench-mock", "kind": "mock"}, expect=(201,)
    )
    agent = await api(
        "POST",
        "/api/v1/agents/",
        {"name": "bench-fanout", "provider": provider["id"], "model": "mock-echo"},
        expect=(201,),
    )
    return agent["id"]


# --- reporting -----------------------------------------------------------------------------------


@dataclass
class Repetition:
    agentdeck: Phase
    baseline: Phase

    @property
    def ratio(self) -> float:
        base = self.baseline.events_per_s
        return self.agentdeck.events_per_s / base if base else float("nan")


def median_of(reps: list[Repetition], side: str, key: str) -> float:
    return statistics.median(getattr(getattr(r, side), key) for r in reps)


def cpu_median(reps: list[Repetition], side: str, key: str) -> float:
    values = [getattr(r, side).cpu.get(key) for r in reps]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def report(args: argparse.Namespace, reps: list[Repetition]) -> tuple[str, bool]:
    def m(side: str, key: str) -> float:
        return median_of(reps, side, key)

    ratio = statistics.median(r.ratio for r in reps)
    lost_worst = max(r.agentdeck.lost for r in reps)
    p99 = m("agentdeck", "p99_ms")
    ok_lost, ok_p99, ok_ratio = (
        lost_worst <= LOST_TARGET,
        p99 < P99_TARGET_MS,
        ratio >= RATIO_TARGET,
    )
    rate = f"{args.rate:g} events/s per run" if args.rate > 0 else "unpaced (as fast as possible)"
    lines = [
        f"{args.runs} runs x {args.clients_per_run} clients = "
        f"{args.runs * args.clients_per_run} receivers, {args.events} events per run, {rate}; "
        f"medians of {len(reps)} repetitions",
        "",
        "| | agentdeck (daphne + Redis layer) | baseline (raw group_send) |",
        "|---|---|---|",
        f"| events sent | {m('agentdeck', 'events_sent'):.0f} | {m('baseline', 'events_sent'):.0f} |",
        f"| deliveries expected | {m('agentdeck', 'expected'):.0f} | {m('baseline', 'expected'):.0f} |",
        f"| deliveries received | {m('agentdeck', 'received'):.0f} | {m('baseline', 'received'):.0f} |",
        f"| lost (worst repetition) | {lost_worst} | {max(r.baseline.lost for r in reps)} |",
        f"| duplicates / out of order / reconnects (worst) "
        f"| {max(r.agentdeck.duplicates for r in reps)} / "
        f"{max(r.agentdeck.out_of_order for r in reps)} / "
        f"{max(r.agentdeck.reconnects for r in reps)} "
        f"| {max(r.baseline.duplicates for r in reps)} / "
        f"{max(r.baseline.out_of_order for r in reps)} / - |",
        f"| events/s (deliveries/s) | {m('agentdeck', 'events_per_s'):.0f} "
        f"| {m('baseline', 'events_per_s'):.0f} |",
        f"| latency p50 ms | {m('agentdeck', 'p50_ms'):.1f} | {m('baseline', 'p50_ms'):.1f} |",
        f"| latency p99 ms | {p99:.1f} | {m('baseline', 'p99_ms'):.1f} |",
        f"| latency max ms | {m('agentdeck', 'max_ms'):.1f} | {m('baseline', 'max_ms'):.1f} |",
        f"| sender behind schedule p99 ms | {m('agentdeck', 'send_lateness_p99_ms'):.1f} "
        f"| {m('baseline', 'send_lateness_p99_ms'):.1f} |",
        f"| one append (persist+publish) / group_send p50 / p99 ms "
        f"| {m('agentdeck', 'append_p50_ms'):.1f} / {m('agentdeck', 'append_p99_ms'):.1f} "
        f"| {m('baseline', 'append_p50_ms'):.1f} / {m('baseline', 'append_p99_ms'):.1f} |",
        f"| publish step alone p50 / p99 ms | {m('agentdeck', 'publish_p50_ms'):.1f} / "
        f"{m('agentdeck', 'publish_p99_ms'):.1f} | (= group_send) |",
        f"| layer drops (group_send over capacity) | {m('agentdeck', 'layer_drops'):.0f} "
        f"| {m('baseline', 'layer_drops'):.0f} |",
        f"| largest layer backlog in the receiving process | {m('agentdeck', 'backlog_max'):.0f} "
        f"| {m('baseline', 'backlog_max'):.0f} |",
        f"| first send -> last delivery s | {m('agentdeck', 'duration_s'):.2f} "
        f"| {m('baseline', 'duration_s'):.2f} |",
        f"| CPU s: receiving side (daphne / receiver) "
        f"| {cpu_median(reps, 'agentdeck', 'daphne'):.1f} "
        f"| {cpu_median(reps, 'baseline', 'followers'):.1f} |",
        f"| CPU s: senders (producers / group_send) | {cpu_median(reps, 'agentdeck', 'senders'):.1f} "
        f"| {cpu_median(reps, 'baseline', 'senders'):.1f} |",
        f"| CPU s: WebSocket clients | {cpu_median(reps, 'agentdeck', 'followers'):.1f} | - |",
        f"| machine busy during the phase % | {cpu_median(reps, 'agentdeck', 'machine_busy_pct'):.0f} "
        f"| {cpu_median(reps, 'baseline', 'machine_busy_pct'):.0f} |",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| events lost = {LOST_TARGET} (every repetition) | {lost_worst} | {verdict(ok_lost)} |",
        f"| p99 < {P99_TARGET_MS:.0f} ms | {p99:.1f} ms | {verdict(ok_p99)} |",
        f"| events/s >= {RATIO_TARGET:.0%} of baseline | {ratio:.2f} | {verdict(ok_ratio)} |",
        "",
        "Per repetition (agentdeck | baseline): events/s, p50/p99 ms, lost, layer drops, "
        "latency p50 per tenth of the runs",
    ]
    for i, r in enumerate(reps, 1):
        a, b = r.agentdeck, r.baseline
        lines.append(
            f"- {i}: {a.events_per_s:.0f} ev/s, {a.p50_ms:.1f}/{a.p99_ms:.1f} ms, lost {a.lost}, "
            f"drops {a.layer_drops}, {a.p50_by_decile_ms} | {b.events_per_s:.0f} ev/s, "
            f"{b.p50_ms:.1f}/{b.p99_ms:.1f} ms, lost {b.lost}, drops {b.layer_drops}, "
            f"{b.p50_by_decile_ms} | ratio {r.ratio:.2f}"
        )
    return "\n".join(lines), ok_lost and ok_p99 and ok_ratio


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="concurrent runs (default 50)")
    parser.add_argument(
        "--clients-per-run", type=int, default=10, help="WebSocket clients per run (default 10)"
    )
    parser.add_argument(
        "--events", type=int, default=100, help="events per run, terminal included (default 100)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=5.0,
        help="events/s per run (default 5; 20 is a run streaming flat out, one delta per 50 ms "
        "flush); 0 = as fast as possible",
    )
    parser.add_argument("--chars", type=int, default=40, help="characters per message.delta")
    parser.add_argument(
        "--baseline-layer",
        choices=["pubsub", "queue"],
        default="pubsub",
        help="channels_redis layer of the baseline: pubsub (RedisPubSubChannelLayer, what the "
        "server runs) or queue (RedisChannelLayer, what it ran before 2026-11-30)",
    )
    parser.add_argument(
        "--publisher",
        choices=["service", "layer"],
        default="service",
        help="agentdeck's events: persisted and published by the run services (default), or, "
        "to isolate daphne's fan-out, raw group_send of the same messages into the run groups "
        "(nothing persisted, so a consumer that finds a gap cannot fill it)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians reported")
    parser.add_argument("--producers", type=int, default=5, help="producer/sender processes")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="ORM threads per producer (1: the worker's arrangement, all on one thread)",
    )
    parser.add_argument("--client-procs", type=int, default=1, help="WebSocket client processes")
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--max-reconnects", type=int, default=5, help="per client")
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--redis-db", type=int, default=10, help="agentdeck's; flushed")
    parser.add_argument("--baseline-redis-db", type=int, default=11, help="baseline's; flushed")
    parser.add_argument(
        "--redis-socket-timeout",
        type=float,
        help="add ?socket_timeout=S to both Redis URLs (redis-py 8 defaults to 5 s, which an idle "
        "channels_redis receive hits; see the docstring). Default: the URL as deployed",
    )
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=35.0,
        help="before each phase, wait until the machine is less than this %% busy (shared box)",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=300.0, help="longest wait for --quiet-below, s"
    )
    parser.add_argument(
        "--settle", type=float, default=3.0, help="s between everyone ready and the first event"
    )
    parser.add_argument("--setup-timeout", type=float, default=120)
    parser.add_argument(
        "--send-timeout", type=float, default=120, help="s beyond the schedule for the senders"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=30, help="s after the last send for deliveries"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="global limit, s")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="profile daphne, a producer/sender and a client/receiver process with py-spy while "
        "events flow (collapsed stacks in DIR)",
    )
    parser.add_argument("--keep-var", action="store_true", help="keep the temporary var dir")
    parser.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        return args
    if min(args.runs, args.clients_per_run, args.repeat, args.producers, args.threads) < 1:
        parser.error("--runs, --clients-per-run, --repeat, --producers, --threads must be >= 1")
    if args.events < 2:
        parser.error("--events must be >= 2 (run.started ... run.succeeded)")
    if args.client_procs < 1 or args.rate < 0:
        parser.error("--client-procs must be >= 1 and --rate >= 0")
    return args


async def main_async(args: argparse.Namespace) -> list[Repetition]:
    why_not = redis_flushed(args.redis_port, [args.redis_db, args.baseline_redis_db])
    if why_not:
        raise BenchError(f"{why_not}; this benchmark needs a local Redis (redis-server)")
    deployment = FanoutServer(
        var_dir=temporary_var_dir("agentdeck-wsbench-"),
        env_overrides={
            "REDIS_URL": redis_url(args, args.redis_db),  # channel layer, queue broker, cache
            "Q_CLUSTER_NAME": "agentdeck-wsbench",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        },
        keep=args.keep_var,
    )
    api = None
    reps: list[Repetition] = []
    try:
        await asyncio.to_thread(deployment.start)
        token = (
            await asyncio.to_thread(
                deployment.manage, "dev_token", "--sub", "bench-fanout", "--ttl", "86400"
            )
        ).strip()
        api = Api(deployment.url, token)
        agent_id = await create_agent(api)
        for rep in range(args.repeat):
            order = ["agentdeck", "baseline"] if rep % 2 == 0 else ["baseline", "agentdeck"]
            phases: dict[str, Phase] = {}
            for side in order:
                log(f"repetition {rep + 1}/{args.repeat}: {side}")
                if side == "agentdeck":
                    phases[side] = await measure_agentdeck(
                        args, deployment, api, agent_id, token, rep
                    )
                else:
                    phases[side] = await measure_baseline(args, deployment.work_dir, rep)
                p = phases[side]
                log(
                    f"  {side}: {p.received}/{p.expected} delivered (lost {p.lost}), "
                    f"{p.events_per_s:.0f} ev/s, p50 {p.p50_ms:.1f} ms, p99 {p.p99_ms:.1f} ms, "
                    f"max {p.max_ms:.1f} ms, reconnects {p.reconnects}, "
                    f"close codes {p.close_codes}, receive timeouts {p.receive_timeouts}, "
                    f"behind schedule p99 {p.send_lateness_p99_ms:.0f} ms, append p50/p99 "
                    f"{p.append_p50_ms:.1f}/{p.append_p99_ms:.1f} ms, publish p50/p99 "
                    f"{p.publish_p50_ms:.1f}/{p.publish_p99_ms:.1f} ms, "
                    f"layer backlog max {p.backlog_max}, layer drops {p.layer_drops}, "
                    f"p50 by tenth of the run {p.p50_by_decile_ms}, "
                    f"load before {p.load_before:.1f}, cpu {p.cpu}"
                )
            reps.append(Repetition(agentdeck=phases["agentdeck"], baseline=phases["baseline"]))
    finally:
        if api is not None:
            await api.close()
        for pid in list(_CHILD_PIDS):
            await asyncio.to_thread(kill_group, pid)
            _CHILD_PIDS.discard(pid)
        log("stopping agentdeck")
        await asyncio.to_thread(deployment.stop)
        with contextlib.suppress(Exception):
            for db in (args.redis_db, args.baseline_redis_db):
                redis_client(args.redis_port, db).flushdb()
    return reps


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role:
        ROLES[args.role](json.loads(args.spec.read_text()))
        return 0

    # Ctrl-C (SIGINT) and SIGTERM both stop the benchmark and everything it started. A shell
    # starts background jobs with SIGINT ignored; restore the default so asyncio.run's handler
    # (which cancels the main task, so the cleanup runs) is installed all the same.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    info = machine()
    try:
        status, reps = run_bench(lambda: main_async(args), args.timeout)
    finally:
        for pid in list(_CHILD_PIDS):
            kill_group(pid)
    if status:
        return status
    text, ok = report(args, reps)
    print()
    print(
        f"ws fan-out, {info['date']}, nproc {info['nproc']}, Python {info['python']}, "
        f"load average at start {' '.join(f'{x:.2f}' for x in info['loadavg_at_start'])}"
    )
    print(text)
    if args.json:
        payload = {
            "machine": info,
            "argv": sys.argv,
            "repetitions": [
                {"agentdeck": asdict(r.agentdeck), "baseline": asdict(r.baseline), "ratio": r.ratio}
                for r in reps
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
