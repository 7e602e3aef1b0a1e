"""What every role shares: the schedule and the events, the line protocol with the orchestrator,
what a receiver saw, and the count of messages the channel layer dropped.

A role is ``ws_fanout.py --role NAME --spec FILE``. It prints ``ready`` on stdout when set up,
waits for ``go <t0>`` (producers, senders) on stdin, writes its figures to FILE.result and
prints ``done``. ``stop`` on stdin makes a receiving role report what it has and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


class Pacer:
    """Sends every event of some runs on the schedule (:func:`due_time`) and records, per event,
    how far behind its due time it went out and how long the send took (a sender's figures)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.n, self.rate = spec["events"], spec["rate"]
        self.total_runs, self.chars = spec["total_runs"], spec["chars"]
        self.lateness: list[float] = []
        self.send_ms: list[float] = []
        self.starts: list[float] = []
        self.ends: list[float] = []

    async def run(
        self,
        t0: float,
        runs: Iterable[tuple[int, str]],
        send: Callable[[int, str, int, str, dict[str, Any]], Awaitable[None]],
    ) -> None:
        """``send(index, run_id, seq, event_type, data)`` each event when it is due."""

        async def one(index: int, run_id: str) -> None:
            for seq in range(1, self.n + 1):
                due = due_time(t0, index, self.total_runs, seq, self.rate)
                delay = due - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                started = time.time()
                event_type, data = event_payload(seq, self.n, self.chars)
                await send(index, run_id, seq, event_type, data)
                ended = time.time()
                self.lateness.append(max(started - due, 0.0))
                self.send_ms.append((ended - started) * 1000)
                self.starts.append(started)
                self.ends.append(ended)

        await asyncio.gather(*(one(index, run_id) for index, run_id in runs))

    def figures(self) -> dict[str, Any]:
        return {
            "events": len(self.send_ms),
            "first_start": min(self.starts),
            "last_end": max(self.ends),
            "lateness_ms": [x * 1000 for x in self.lateness],
            "append_ms": self.send_ms,
        }


def cpu_seconds_since(before: os.times_result) -> float:
    """CPU time (user + system) this process spent since ``before`` (``os.times()``)."""
    usage = os.times()
    return usage.user + usage.system - before.user - before.system


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


def emit(word: str) -> None:
    sys.stdout.write(word + "\n")
    sys.stdout.flush()


async def read_line() -> str:
    loop = asyncio.get_running_loop()
    return (await loop.run_in_executor(None, sys.stdin.readline)).strip()


async def wait_go() -> float:
    line = await read_line()
    if not line.startswith("go "):
        raise SystemExit(f"expected 'go <t0>', got {line!r}")
    return float(line.split()[1])


def write_result(spec: dict[str, Any], result: dict[str, Any]) -> None:
    Path(spec["result_path"]).write_text(json.dumps(result))
    emit("done")


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


def followers_result(
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


async def follow_until_stopped(followers: Iterable[Coroutine[Any, Any, None]]) -> float:
    """Run the followers until all have finished or ``stop`` arrives on stdin; returns the CPU
    seconds this process spent meanwhile."""
    usage_before = os.times()
    tasks = [asyncio.create_task(follower) for follower in followers]
    stopper = asyncio.create_task(read_line())
    everything = asyncio.gather(*tasks)
    await asyncio.wait({everything, stopper}, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await everything
    return cpu_seconds_since(usage_before)
