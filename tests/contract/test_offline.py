"""The server under Schemathesis has no network: offline/sitecustomize.py, loaded by every
Python process started with it on PYTHONPATH, resolves and connects to loopback only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

OFFLINE = Path(__file__).resolve().parent / "offline"

PROBE = """
import asyncio, socket

def refused(call):
    try:
        call()
    except OSError as e:
        return type(e).__name__
    return "connected"

listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]
print(refused(lambda: socket.getaddrinfo("example.com", 443)))
print(refused(lambda: socket.create_connection(("93.184.215.14", 443), timeout=1)))
print(refused(lambda: asyncio.run(asyncio.open_connection("1.1.1.1", 53))))
print(refused(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close()))
print(refused(lambda: socket.create_connection(("localhost", port), timeout=1).close()))
"""


def test_names_do_not_resolve_and_only_loopback_accepts_connections():
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, "PYTHONPATH": str(OFFLINE)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.split() == [
        "gaierror",  # a name lookup is already traffic
        "gaierror",  # an address outside loopback does not "resolve" either
        "ConnectionRefusedError",  # asyncio skips the lookup for an address; connect() is checked
        "connected",
        "connected",
    ], result.stderr
