from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, *, headers: dict | None = None, timeout: float = 10):
    """(status, parsed body) with only the standard library, like curl would see it."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@dataclass
class Server:
    """``manage.py serve`` running as its own process, as ``make run`` starts it."""

    var_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, extra_env: dict[str, str] | None = None, timeout: float = 90) -> Server:
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in {
                "DATABASE_URL",
                "CHANNEL_LAYER",
                "ENVIRONMENT",
                "REDIS_URL",
                "DJANGO_SETTINGS_MODULE",
                "ADMIN_PASSWORD",
            }
        }
        env.update({"AGENTDECK_VAR_DIR": str(self.var_dir), "PORT": str(self.port)})
        env.update(extra_env or {})
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.var_dir / f"serve-{time.time_ns()}.log"
        self.process = subprocess.Popen(
            [sys.executable, str(BASE_DIR / "manage.py"), "serve"],
            cwd=BASE_DIR,
            env=env,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.log()}")
            try:
                if http("GET", f"{self.url}/healthz", timeout=1)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise AssertionError(f"serve did not come up in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path else ""

    def stop(self, sig: int = signal.SIGINT, timeout: float = 40) -> int:
        """Send what Ctrl-C sends and wait for a clean exit."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise AssertionError(f"serve ignored {sig!r}:\n{self.log()}") from None
        return self.process.returncode


@pytest.fixture
def server_factory(tmp_path_factory):
    servers: list[Server] = []

    def make(var_dir: Path | None = None) -> Server:
        server = Server(var_dir=var_dir or tmp_path_factory.mktemp("agentdeck") / "var")
        servers.append(server)
        return server

    yield make
    for server in servers:
        if server.process and server.process.poll() is None:
            server.stop(sig=signal.SIGTERM)
