"""agentdeck started as production runs it, as ``manage.py`` processes (nothing here imports
Django): :class:`Server`, the web server (daphne, and the embedded PostgreSQL of its var dir
unless ``DATABASE_URL`` points elsewhere); :class:`Deployment`, a server with its workers on a
fresh var dir; :func:`run_bench`, which stops everything started however the benchmark ends."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .basics import HOST, BenchError, BenchTimeout, free_port, interrupt_on_signal, log
from .procs import interrupt_group

BASE_DIR = Path(__file__).resolve().parent.parent.parent
T = TypeVar("T")

# Variables of the caller's shell that would point the server somewhere else.
DROPPED_ENV = {
    "DATABASE_URL",
    "REDIS_URL",
    "CHANNEL_LAYER",
    "ENVIRONMENT",
    "DJANGO_SETTINGS_MODULE",
    "TEST_DATABASE_NAME",
    "Q_WORKERS",
    "Q_CLUSTER_NAME",
    "PORT",
    "AGENTDECK_VAR_DIR",
    "VECTOR_SEARCH_EXACT_MAX_CHUNKS",
    "VECTOR_SEARCH_EF_SEARCH",
}

# Started and not yet stopped (servers, deployments, Redis servers: anything with a stop());
# each script's main() stops them whatever happens.
_LIVE: list[Any] = []


def clean_env(var_dir: Path, port: int, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without what would point a server elsewhere, on ``var_dir``
    and ``port``, in development mode, one account allowed any request rate; then ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update(
        {
            "AGENTDECK_VAR_DIR": str(var_dir),
            "PORT": str(port),
            "ENVIRONMENT": "development",
            # One account sends the whole load; the default 1200/min would throttle it.
            "THROTTLE_USER_RATE": "1000000/min",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides or {})
    return env


def spawn_manage(log_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    """``manage.py args`` in the background, output to ``log_path``, in a session of its own
    (the terminal's Ctrl-C reaches only us, and we stop it in order)."""
    with log_path.open("w") as log_file:
        return subprocess.Popen(  # noqa: S603 (our own argv)
            [sys.executable, str(BASE_DIR / "manage.py"), *args],
            cwd=BASE_DIR,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def manage(env: dict[str, str], *args: str) -> str:
    """A one-off ``manage.py`` command; its standard output."""
    done = subprocess.run(  # noqa: S603 (our own argv)
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def log_tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text().splitlines()[-lines:])


def wait_healthy(url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    """Until ``url``/healthz answers 200; a BenchError if the server exits or takes too long."""
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False, timeout=2) as client:
        while True:
            if process.poll() is not None:
                raise BenchError(f"serve exited early:\n{log_tail(log_path)}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{url}/healthz").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise BenchError(f"serve not up in {timeout}s:\n{log_tail(log_path)}")
            time.sleep(0.3)


def postmaster_pid(var_dir: Path) -> int | None:
    """The embedded PostgreSQL's postmaster in ``var_dir``, from its pid file."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((var_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    return None


def stop_embedded_postgres(var_dir: Path) -> None:
    """Normally gone with its last client; if not (a client was killed), fast-shutdown the
    postmaster of *our* temporary pgdata, found by its pid file."""
    pid_file = var_dir / "pgdata" / "postmaster.pid"
    deadline = time.monotonic() + 10
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGINT)
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 15
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)


def temporary_var_dir(prefix: str) -> Path:
    """``<new temporary directory>/var``: remove its parent when done."""
    return Path(tempfile.mkdtemp(prefix=prefix)) / "var"


@dataclass(eq=False)
class Server:
    """``manage.py serve --no-worker`` (daphne; it starts the embedded PostgreSQL of ``var_dir``
    unless ``env`` has ``DATABASE_URL``) on a free port, with :func:`clean_env` and ``env``."""

    var_dir: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def env(self) -> dict[str, str]:
        return clean_env(self.var_dir, self.port, self.env_overrides)

    def manage(self, *args: str) -> str:
        return manage(self.env(), *args)

    def start(self, name: str = "serve", timeout: float = 180) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.var_dir / f"{name}.log"
        self.process = spawn_manage(self.log_path, self.env(), "serve", "--no-worker")
        _LIVE.append(self)
        wait_healthy(self.url, self.process, self.log_path, timeout)

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, grace: float = 40) -> None:
        """SIGINT (what Ctrl-C sends), its group killed after ``grace`` seconds. Safe to repeat."""
        if self.process is not None:
            interrupt_group(self.process, signal.SIGINT, grace, "serve")
        if self in _LIVE:
            _LIVE.remove(self)


async def _bounded(work: Awaitable[T], timeout: float) -> T:
    # SIGTERM cancels the work as Ctrl-C does (asyncio.run handles SIGINT): the cancellation
    # unwinds through every `finally`, which stops what was started.
    task = asyncio.current_task()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        async with asyncio.timeout(timeout):
            return await work
    except TimeoutError:
        raise BenchTimeout(f"the benchmark exceeded --timeout {timeout:.0f}s") from None


def stop_live() -> None:
    """Stop everything started and not yet stopped, last started first."""
    for service in reversed(list(_LIVE)):
        service.stop()


def run_sync(work: Callable[[], T]) -> tuple[int, T | None]:
    """Run a benchmark's ``work()``, then stop everything it started (``_LIVE``, last started
    first) however it ended: (0, its result), or (130, None) when interrupted (Ctrl-C, or
    SIGTERM, which unwinds like Ctrl-C so that ``finally`` blocks and atexit stop the embedded
    PostgreSQL and remove its directory), (1, None) when it failed (``BenchError``, said why)."""
    signal.signal(signal.SIGTERM, interrupt_on_signal)
    try:
        return 0, work()
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted; stopping everything that was started")
        return 130, None
    except BenchError as e:
        log(f"benchmark failed: {e}")
        return 1, None
    finally:
        stop_live()


def run_bench(work: Callable[[], Awaitable[T]], timeout: float) -> tuple[int, T | None]:
    """:func:`run_sync` for an async ``work``, within ``timeout`` seconds."""
    return run_sync(lambda: asyncio.run(_bounded(work(), timeout)))


def runs_worker_available() -> bool:
    """Whether this checkout has the asyncio run worker (``manage.py runs_worker``, issue #15)."""
    return any((BASE_DIR / "agentdeck").glob("*/management/commands/runs_worker.py"))
