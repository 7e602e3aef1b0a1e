"""The deployment under test: daphne + the embedded PostgreSQL with the Redis channel layer, the
Redis it talks to, and the agent the runs belong to.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path

from _support import (
    HOST,
    Api,
    Server,
    log,
    postmaster_pid,
    proc_children,
    proc_cmdline,
    stop_embedded_postgres,
)


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
