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
import signal
import sys
from dataclasses import asdict
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from _support import (  # noqa: E402 (the scripts' own directory)
    Api,
    BenchError,
    kill_group,
    loadavg_text,
    log,
    machine,
    redis_flushed,
    run_bench,
    temporary_var_dir,
)
from _ws_fanout.children import CHILD_PIDS, ROLES  # noqa: E402
from _ws_fanout.deployment import FanoutServer, create_agent, redis_client, redis_url  # noqa: E402
from _ws_fanout.measure import measure_agentdeck, measure_baseline  # noqa: E402
from _ws_fanout.options import parse_args  # noqa: E402
from _ws_fanout.phase import Phase  # noqa: E402
from _ws_fanout.report import Repetition, phase_summary, report  # noqa: E402


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
                log(phase_summary(side, phases[side]))
            reps.append(Repetition(agentdeck=phases["agentdeck"], baseline=phases["baseline"]))
    finally:
        if api is not None:
            await api.close()
        for pid in list(CHILD_PIDS):
            await asyncio.to_thread(kill_group, pid)
            CHILD_PIDS.discard(pid)
        log("stopping agentdeck")
        await asyncio.to_thread(deployment.stop)
        with contextlib.suppress(Exception):
            for db in (args.redis_db, args.baseline_redis_db):
                redis_client(args.redis_port, db).flushdb()
    return reps


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.split("\n\n")[0], argv)
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
        for pid in list(CHILD_PIDS):
            kill_group(pid)
    if status:
        return status
    text, ok = report(args, reps)
    print()
    print(
        f"ws fan-out, {info['date']}, nproc {info['nproc']}, Python {info['python']}, "
        f"load average at start {loadavg_text(info['loadavg_at_start'])}"
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
