"""Taking a live system's PostgreSQL or Redis down and bringing it back, or resetting every
connection to PostgreSQL (:func:`terminate_backends`), for the tests of how the long-lived
connections recover (tests/e2e/test_realtime_outages.py, tests/core/test_channel_layers.py, ...).

Only what the servers themselves offer is used: ``postmaster.pid`` and ``postmaster.opts`` of
a data directory and its own ``pg_ctl`` (so this works on the embedded PostgreSQL whatever
``agentdeck.core.embedded_postgres`` does around it), and ``redis-server`` / ``redis-cli``.
A restarted postmaster is a new process that nothing else knows about: callers must
:func:`stop_postgres` at the end (``PostgresOutage`` does it through a pytest finalizer).
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import psutil


def _postmaster(pgdata: Path) -> tuple[int, list[str]] | None:
    """(pid, the postmaster's own command-line options) of the server running on ``pgdata``."""
    pid_file = pgdata / "postmaster.pid"
    opts_file = pgdata / "postmaster.opts"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().split()[0])
    if not psutil.pid_exists(pid):
        return None
    # postmaster.opts: `/path/bin/postgres "-D" "/pgdata" "-h" "" "-k" "/socket/dir"`
    argv = shlex.split(opts_file.read_text())
    return pid, argv


def _pg_ctl(pgdata: Path, binary: str, *args: str) -> None:
    """Run pg_ctl as the owner of the data directory (PostgreSQL refuses to run as root)."""
    owner = pgdata.stat().st_uid
    kwargs = {}
    if os.geteuid() == 0 and owner != 0:
        kwargs["user"] = pwd.getpwuid(owner).pw_name
    subprocess.run(
        [str(Path(binary).with_name("pg_ctl")), "-D", str(pgdata), *args],
        check=True,
        capture_output=True,
        timeout=60,
        **kwargs,
    )


class PostgresOutage:
    """Stop and start the PostgreSQL running on ``pgdata`` (``var/pgdata`` for the embedded one)
    with the options it was started with: the same socket directory and port."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = Path(pgdata)
        running = _postmaster(self.pgdata)
        if running is None:
            raise RuntimeError(f"no PostgreSQL running on {self.pgdata}")
        _, argv = running
        self.binary = argv[0]
        # Everything but the data directory, which pg_ctl passes itself.
        options = argv[1:]
        if "-D" in options:
            i = options.index("-D")
            del options[i : i + 2]
        self.options = options

    def stop(self, mode: str = "fast") -> None:
        """``fast``: every backend is terminated (what a restart or crash looks like to clients);
        ``immediate``: no shutdown checkpoint either, as after a crash."""
        _pg_ctl(self.pgdata, self.binary, "stop", "-w", "-m", mode)

    def start(self) -> None:
        log = self.pgdata / "log"
        _pg_ctl(
            self.pgdata,
            self.binary,
            "start",
            "-w",
            "-l",
            str(log),
            "-o",
            shlex.join(self.options),
        )

    @contextmanager
    def down(self, mode: str = "fast"):
        self.stop(mode)
        try:
            yield
        finally:
            self.start()

    def crash_one_backend(self) -> int:
        """SIGKILL one client backend: PostgreSQL then resets every connection and recovers
        (what a backend killed by the kernel's OOM killer does). Returns the pid killed."""
        running = _postmaster(self.pgdata)
        if running is None:
            raise RuntimeError(f"no PostgreSQL running on {self.pgdata}")
        for child in psutil.Process(running[0]).children():
            cmdline = " ".join(child.cmdline())
            if "[local]" in cmdline or "127.0.0.1" in cmdline:  # a client's backend
                child.send_signal(signal.SIGKILL)
                return child.pid
        raise RuntimeError("no client backend to kill")


def stop_postgres(pgdata: Path) -> None:
    """Stop whatever postmaster runs on ``pgdata`` (a restarted one outlives its starter)."""
    running = _postmaster(Path(pgdata))
    if running is None:
        return
    pid, argv = running
    try:
        _pg_ctl(Path(pgdata), argv[0], "stop", "-w", "-m", "fast")
    except subprocess.SubprocessError:
        os.kill(pid, signal.SIGQUIT)


@contextmanager
def database_connection():
    """A psycopg connection of its own (autocommit) to the database Django's default
    connection uses: outside the test's transaction and spared by nothing."""
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as conn:
        yield conn


def terminate_backends(spare_pid: int) -> int:
    """pg_terminate_backend() on every client backend of the test database but ``spare_pid``
    (Django's own connection, which the test goes on using) and the one doing it: what
    PostgreSQL does to every connection when one backend crashes. Returns how many."""
    with database_connection() as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND backend_type = 'client backend' "
            "AND pid NOT IN (pg_backend_pid(), %s)",
            [spare_pid],
        ).fetchall()
    return len(rows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private ``redis-server`` on a port of its own, stopped and started again on that port."""

    def __init__(self, port: int | None = None) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed")
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10) -> RedisServer:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not come up on port {self.port}")

    def stop(self) -> None:
        """Kill it (SIGKILL: clients see their connections reset, nothing is saved)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    @contextmanager
    def down(self):
        self.stop()
        try:
            yield
        finally:
            self.start()
