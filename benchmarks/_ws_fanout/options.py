"""The command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from .children import ROLES


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
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
