"""Small helpers the benchmark scripts share. Imported as ``_support`` (the scripts run from
this directory, which Python puts first on ``sys.path``); nothing here imports Django."""

from __future__ import annotations

import argparse
import socket
from datetime import datetime
from typing import Any

HOST = "127.0.0.1"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, linear interpolation between closest ranks (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def parse_ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def env_pair(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` from the command line (argparse ``type=``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key, value


def redis_answers(port: int = 6379) -> bool:
    """Whether a Redis on this machine answers PING (no client library needed)."""
    try:
        with socket.create_connection((HOST, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def interrupt_on_signal(signum: int, frame: Any) -> None:
    """A SIGTERM handler: unwind like Ctrl-C, so ``finally`` blocks and atexit clean up."""
    raise KeyboardInterrupt(f"signal {signum}")


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
