"""Clients of what a benchmark starts: :class:`Api` (async, for setup and load),
:class:`KeepAlive` (one connection for timed requests), and Redis: :class:`PrivateRedis` (a
``redis-server`` of the benchmark's own) or the machine's, checked with :func:`redis_answers`."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .basics import HOST, BenchError, free_port
from .procs import stop_process
from .server import _LIVE


def redis_answers(port: int = 6379) -> bool:
    """Whether a Redis on this machine answers PING (no client library needed)."""
    try:
        with socket.create_connection((HOST, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class KeepAlive:
    """One persistent HTTP/1.1 connection (``http.client``) for timed requests: the client's
    own cost stays out of what is measured (httpx spends ~0.35 ms of CPU per request here
    against ~0.15 ms for ``http.client``; a raw SQL baseline pays no such client)."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None) -> None:
        import http.client

        self._connection = http.client.HTTPConnection(host, port, timeout=60)
        self._headers = headers or {}

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, the body decoded as JSON, or as text when it is not JSON)."""
        import json

        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self._connection.request(method, path, body=data, headers=headers)
        response = self._connection.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw.decode(errors="replace")

    def close(self) -> None:
        self._connection.close()


class Api:
    def __init__(self, base_url: str, token: str, connections: int = 10) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            trust_env=False,  # 127.0.0.1 only: never through a proxy from the environment
            # Idle connections are dropped well before daphne's keep-alive timeout (60 s), which
            # would otherwise close one just as a request goes out on it (a ReadError).
            limits=httpx.Limits(
                max_connections=connections,
                max_keepalive_connections=connections,
                keepalive_expiry=20,
            ),
        )

    async def __call__(
        self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200,)
    ) -> Any:
        import httpx

        try:
            response = await self.client.request(method, path, json=body)
        except httpx.HTTPError as e:  # the server is down or wedged: a failed measurement
            raise BenchError(f"{method} {path}: {type(e).__name__}: {e}") from e
        if response.status_code not in expect:
            raise BenchError(f"{method} {path} -> {response.status_code}: {response.text[:500]}")
        return response.json()

    async def close(self) -> None:
        await self.client.aclose()


@dataclass(eq=False)
class PrivateRedis:
    """``redis-server`` on a free port of 127.0.0.1, no persistence, in a temporary directory:
    the benchmark may fill and flush it, which it must never do to the machine's shared Redis."""

    port: int = field(default_factory=free_port)
    directory: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="agentdeck-bench-redis-"))
    )
    process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def start(self, timeout: float = 15) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise BenchError("--redis needs redis-server on the PATH (Debian: redis-server)")
        _LIVE.append(self)
        argv = [executable, "--port", str(self.port), "--bind", HOST, "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.directory)]
        self.process = subprocess.Popen(  # noqa: S603 (our own argv)
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # stopped by us, after the processes that use it
        )
        deadline = time.monotonic() + timeout
        while not redis_answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"redis-server on port {self.port} did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)
        if self in _LIVE:
            _LIVE.remove(self)


def redis_flushed(port: int, dbs: list[int], timeout: float = 5) -> str:
    """'' when the Redis on ``port`` answers (and its benchmark databases ``dbs`` are flushed
    for a clean start), else why not. Never give it the machine's shared Redis's databases."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed"
    try:
        for db in dbs:
            client = redis.Redis(host=HOST, port=port, db=db, socket_timeout=timeout)
            client.ping()
            client.flushdb()
            client.close()
    except redis.RedisError as e:
        return f"Redis at {HOST}:{port} is not reachable ({e})"
    return ""
