from __future__ import annotations

import contextlib
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
UP_LINE = "agentdeck is up:"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(
    method: str, url: str, *, headers: dict | None = None, json_body=None, timeout: float = 10
):
    """(status, parsed body) with only the standard library, like curl would see it."""
    headers = dict(headers or {})
    data = None
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, method=method, headers=headers, data=data)
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
    extra_env: dict[str, str] = field(default_factory=dict)
    helpers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        # What a fresh shell would have: none of the test session's own settings.
        dropped = {
            "DATABASE_URL",
            "CHANNEL_LAYER",
            "ENVIRONMENT",
            "REDIS_URL",
            "DJANGO_SETTINGS_MODULE",
            "ADMIN_PASSWORD",
            "TEST_DATABASE_NAME",
            "DATABASE_POOL",
        }
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env.update(
            {
                "AGENTDECK_VAR_DIR": str(self.var_dir),
                "PORT": str(self.port),
                "PYTHONUNBUFFERED": "1",
                # Loading torch in every process of every test would cost minutes of CPU: only
                # servers that name the local embedder preload it, as make run does by default.
                "EMBEDDING_PRELOAD": str(self.extra_env.get("EMBEDDER_DEFAULT") == "local"),
            }
        )
        env.update(self.extra_env)
        return env

    def launch(self, *args: str) -> subprocess.Popen:
        """Start ``manage.py serve`` with ``args`` (e.g. ``--no-worker``); do not wait."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.var_dir / f"serve-{time.time_ns()}.log"
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(BASE_DIR / "manage.py"), "serve", *args],
                cwd=BASE_DIR,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.process

    def start(self, *args: str, timeout: float = 180) -> Server:
        """Start ``manage.py serve`` with ``args`` and wait until it says it is up (daphne
        answers and the queue workers have started)."""
        self.launch(*args)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if UP_LINE in self.log():
                return self
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.log()}")
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"serve did not come up in {timeout}s:\n{self.log()}")

    def manage(self, *args: str, background: bool = False):
        """Run another ``manage.py`` command against this server's database (as an operator, or
        as one more worker process would)."""
        argv = [sys.executable, str(BASE_DIR / "manage.py"), *args]
        if background:
            with (self.var_dir / f"{args[0]}-{time.time_ns()}.log").open("w") as log:
                process = subprocess.Popen(
                    argv,
                    cwd=BASE_DIR,
                    env=self.env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.helpers.append(process)
            return process
        return subprocess.run(
            argv,
            cwd=BASE_DIR,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )

    def wait_for_run_workers(self, count: int, timeout: float = 60) -> None:
        """Wait until ``count`` run workers started with ``manage("runs_worker",
        background=True)`` say they are ready (a test that needs each of them to take runs must
        not start them before the slowest one listens)."""
        deadline = time.monotonic() + timeout
        while (
            sum("ready, up to" in p.read_text() for p in self.var_dir.glob("runs_worker-*.log"))
            < count
        ):
            assert time.monotonic() < deadline, f"{count} run worker(s) did not start"
            time.sleep(0.2)

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

    def make(var_dir: Path | None = None, **extra_env: str) -> Server:
        server = Server(
            var_dir=var_dir or tmp_path_factory.mktemp("agentdeck") / "var", extra_env=extra_env
        )
        servers.append(server)
        return server

    yield make
    for server in servers:
        # Killed, not stopped: each helper joined the embedded PostgreSQL as a holder, and a
        # holder that dies without its exit hook must not keep the server up (the session's
        # leftover check would fail if it did).
        for helper in server.helpers:
            if helper.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(helper.pid, signal.SIGKILL)
                helper.wait()
        if server.process and server.process.poll() is None:
            server.stop(sig=signal.SIGTERM)
