"""One phase's choreography: start the senders and the receivers, wait until all are ready, go,
collect, and sample the layer's backlog (and py-spy, on request) meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _support import HOST, BenchError, CpuMeter, log, wait_for_quiet

from .children import Child


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
