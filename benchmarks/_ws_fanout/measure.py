"""The two sides' phases: agentdeck (runs over the API, producers, WebSocket clients) and the
baseline (raw group_send to a receiver of as many channels).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from _support import BenchError

from .children import Child
from .deployment import FanoutServer, redis_client, redis_pid, redis_url
from .orchestrate import run_senders_and_followers
from .phase import Phase, phase_of


def split(items: list, parts: int) -> list[list]:
    return [items[i::parts] for i in range(parts) if items[i::parts]]


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
    return phase_of("agentdeck", sent, received, expected, cpu, backlog)


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
    return phase_of("baseline", sent, received, expected, cpu, backlog)
