"""Helpers the benchmark scripts share. Imported as ``_support`` (the scripts run from this
directory, which Python puts first on ``sys.path``); nothing here imports Django: the deployment
is started as ``manage.py`` processes.

* small things: :func:`percentile`, :func:`free_port`, :func:`parse_ts`, :func:`log`, ...;
* what a process costs: :func:`cpu_by_group` (CPU seconds of process trees, reaped children
  included), :func:`memory_by_group` (resident memory), :func:`wait_for_quiet` (a shared machine);
* :class:`Deployment`: agentdeck started as in production (daphne, workers, PostgreSQL) on a
  free port and a fresh var dir, stopped on any exit path; :class:`Api`, an async client of it;
* :class:`PrivateRedis`: a ``redis-server`` of the benchmark's own, never the machine's shared one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

BASE_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
T = TypeVar("T")


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
}


# Started and not yet stopped (deployments, Redis servers: anything with a stop()); each
# script's main() stops them whatever happens.
_LIVE: list[Any] = []


class BenchError(RuntimeError):
    """The benchmark could not measure what it promised (a run failed, a timeout...)."""


class BenchTimeout(BenchError):
    pass


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_busy(interval: float = 1.0) -> float:
    """Fraction of all CPUs busy over ``interval`` (from /proc/stat; 0 where unavailable)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def wait_for_quiet(limit: float, threshold: float = 0.25) -> float:
    """On a shared machine, wait up to ``limit`` seconds for other work to calm down (CPU busy
    under ``threshold`` for a second); returns the last busy fraction seen."""
    deadline = time.monotonic() + limit
    busy = cpu_busy()
    while busy >= threshold and time.monotonic() < deadline:
        busy = cpu_busy()
    if busy >= threshold:
        log(f"the machine is still {busy:.0%} busy with other work; measuring anyway")
    return busy


def _process_table() -> dict[int, tuple[int, float]]:
    """{pid: (parent pid, CPU seconds of itself and its reaped children)} from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    stats: dict[int, tuple[int, float]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        # after the command: state ppid ... utime(12) stime(13) cutime(14) cstime(15), 1-based
        cpu = sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks
        stats[int(entry)] = (int(fields[1]), cpu)
    return stats


Roots = dict[str, int | list[int]]


def _trees(roots: Roots, stats: dict[int, tuple[int, float]]) -> dict[str, list[int]]:
    """Each group's pids: its root process(es) and all their descendants."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    trees = {}
    for name, root in roots.items():
        pids, stack = [], list(root) if isinstance(root, list) else [root]
        while stack:
            pid = stack.pop()
            if pid in stats:
                pids.append(pid)
            stack.extend(children.get(pid, []))
        trees[name] = pids
    return trees


def cpu_by_group(roots: Roots) -> dict[str, float]:
    """CPU seconds used so far by each group of root processes (a pid or a list of pids) and
    all their descendants, including children that already exited and were reaped
    (``cutime``/``cstime``), so the difference of two calls is what the group used in between,
    even with short-lived PostgreSQL backends. Linux /proc; empty where unavailable."""
    stats = _process_table()
    if not stats:
        return {}
    return {name: sum(stats[pid][1] for pid in pids) for name, pids in _trees(roots, stats).items()}


def _memory_fields(path: str, names: tuple[str, ...]) -> dict[str, int]:
    """``Name:   123 kB`` lines of a /proc file, in bytes (those present)."""
    found = {}
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name in names:
                found[name] = int(value.split()[0]) * 1024
    return found


def memory_by_group(roots: Roots) -> dict[str, int]:
    """The resident memory of each group now, in bytes (Linux /proc; empty where unavailable):
    a group of one process, its RSS; of several (a forking server such as qcluster, whose
    children share most of their pages), the sum of their PSS, which counts a shared page once
    (each process's RSS counts it again)."""
    result = {}
    for name, pids in _trees(roots, _process_table()).items():
        if len(pids) == 1:
            result[name] = _memory_fields(f"/proc/{pids[0]}/status", ("VmRSS",)).get("VmRSS", 0)
        else:
            result[name] = sum(
                _memory_fields(f"/proc/{pid}/smaps_rollup", ("Pss",)).get("Pss", 0) for pid in pids
            )
    return result


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# --- the deployment ------------------------------------------------------------------------------


def stop_process(process: subprocess.Popen | None, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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


def run_bench(work: Callable[[], Awaitable[T]], timeout: float) -> tuple[int, T | None]:
    """Run a benchmark's async ``work`` within ``timeout`` seconds, then stop everything it
    started (``_LIVE``, last started first) however it ended: (0, its result), or (130, None)
    when interrupted (Ctrl-C, SIGTERM), (1, None) when it failed (``BenchError``, said why)."""
    try:
        return 0, asyncio.run(_bounded(work(), timeout))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted; stopping everything that was started")
        return 130, None
    except BenchError as e:
        log(f"benchmark failed: {e}")
        return 1, None
    finally:
        for service in reversed(list(_LIVE)):
            service.stop()


def runs_worker_available() -> bool:
    """Whether this checkout has the asyncio run worker (``manage.py runs_worker``, issue #15)."""
    return any((BASE_DIR / "agentdeck").glob("*/management/commands/runs_worker.py"))


@dataclass(eq=False)
class Deployment:
    """agentdeck as production runs it, on a free port and a fresh var dir: ``manage.py serve
    --no-worker`` (daphne; it starts the embedded PostgreSQL unless ``database_url`` is given),
    then the workers, each a process of its own:

    * ``engine="qcluster"``: one ``manage.py qcluster`` with ``Q_WORKERS=workers``, which ran
      the runs and everything else before issue #15 (for a checkout from before it);
    * ``engine="runs_worker"``: ``workers`` x ``manage.py runs_worker`` (the asyncio run worker)
      and one ``manage.py qcluster`` (project default ``Q_WORKERS``) for the other tasks.

    ``broker`` is ``orm`` or ``redis`` (then ``REDIS_URL=redis_url``: queue broker, channel layer
    and cache on Redis, as in production)."""

    broker: str
    workers: int
    redis_url: str = ""
    keep: bool = False
    web_conn_max_age: str = "0"
    extra_env: dict[str, str] = field(default_factory=dict)
    engine: str = "runs_worker"
    database_url: str = ""  # empty: the embedded PostgreSQL in var_dir
    port: int = field(default_factory=free_port)
    var_dir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="agentdeck-bench-")) / "var"
    )
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        env.update(
            {
                "AGENTDECK_VAR_DIR": str(self.var_dir),
                "PORT": str(self.port),
                "ENVIRONMENT": "development",
                "Q_CLUSTER_NAME": "agentdeck-bench",
                # One account sends the whole load; the default 1200/min would throttle it.
                "THROTTLE_USER_RATE": "1000000/min",
                # ... and would be held to RUN_PER_USER_CAP runs at once (what protects other
                # users from it, of whom there are none here).
                "RUN_PER_USER_CAP": "0",
                # No process here embeds locally (the agents search no files): production embeds
                # through a provider and preloads nothing, which keeps torch and MiniLM (~450 MB
                # per process) out of the workers' memory.
                "EMBEDDING_PRELOAD": "false",
                # The scripted model as the baseline uses it: no artificial per-token delay, and
                # no trace export to OpenAI (127.0.0.1 only).
                "MOCK_MODEL_DELAY_PER_TOKEN": "0",
                "OPENAI_TRACING_EXPORT": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.engine == "qcluster":
            env["Q_WORKERS"] = str(self.workers)
        if self.broker == "redis":
            env["REDIS_URL"] = self.redis_url
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log_file = (self.var_dir / f"{name}.log").open("w")
        process = subprocess.Popen(  # noqa: S603 (our own argv)
            [sys.executable, str(BASE_DIR / "manage.py"), *args],
            cwd=BASE_DIR,
            env=env or self.env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # Its own session: the terminal's Ctrl-C reaches only us, and we stop it in order.
            start_new_session=True,
        )
        log_file.close()
        self.processes[name] = process
        return process

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.var_dir / f"{name}.log"
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""

    def manage(self, *args: str) -> str:
        """A one-off ``manage.py`` command against this deployment's database."""
        done = subprocess.run(  # noqa: S603 (our own argv)
            [sys.executable, str(BASE_DIR / "manage.py"), *args],
            cwd=BASE_DIR,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self, timeout: float = 180) -> None:
        import httpx

        self.var_dir.mkdir(parents=True, exist_ok=True)
        _LIVE.append(self)
        log(f"[{self.label}] starting agentdeck on {self.url} (var dir {self.var_dir})")
        # Django's ASGI handler runs each request's sync code in a thread of its own, so a
        # persistent connection (DATABASE_CONN_MAX_AGE > 0; the project default was 60 before
        # commit 1234846) is left open in every such thread until garbage collection: under this
        # load PostgreSQL runs out of connections ("too many clients"). Django's documentation
        # says to disable them under ASGI: the web process always gets --web-conn-max-age (0),
        # whatever the checkout's default; the worker keeps the project default.
        web_env = {**self.env(), "DATABASE_CONN_MAX_AGE": self.web_conn_max_age}
        if "DATABASE_CONN_MAX_AGE" in self.extra_env:
            web_env["DATABASE_CONN_MAX_AGE"] = self.extra_env["DATABASE_CONN_MAX_AGE"]
        serve = self._spawn("serve", "serve", "--no-worker", env=web_env)
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=2) as client:
            while True:
                if serve.poll() is not None:
                    raise BenchError(f"serve exited early:\n{self.log_tail('serve')}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise BenchError(f"serve not up in {timeout}s:\n{self.log_tail('serve')}")
                time.sleep(0.3)
        # Workers of their own, as production runs N x workers next to N x daphne. They join the
        # embedded PostgreSQL that serve started (same AGENTDECK_VAR_DIR).
        for name in self.run_worker_names:
            self._spawn(name, name.partition("-")[0])
        if self.engine == "runs_worker":
            self._spawn("qcluster", "qcluster")

    @property
    def label(self) -> str:
        return self.broker if self.engine == "qcluster" else f"{self.broker}, {self.engine}"

    @property
    def run_worker_names(self) -> list[str]:
        """The processes (by their name in ``processes``) that execute runs."""
        if self.engine == "qcluster":
            return ["qcluster"]
        return [f"runs_worker-{i}" for i in range(1, self.workers + 1)]

    def stop(self) -> None:
        """The workers (all at once), then the web server (which stops the embedded PostgreSQL
        when it is the last process using it). Whatever ignores SIGTERM/SIGINT is killed after a
        grace period. Safe to call again (main() does, for a stop that was itself interrupted)."""
        workers = [name for name in self.processes if name != "serve"]
        stages = [[(name, signal.SIGTERM, 30) for name in workers], [("serve", signal.SIGINT, 40)]]
        for stage in stages:
            signalled = []
            for name, sig, grace in stage:
                process = self.processes.get(name)
                if process is not None and process.poll() is None:
                    process.send_signal(sig)
                    signalled.append((name, process, time.monotonic() + grace))
            for name, process, deadline in signalled:
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log(f"[{self.label}] {name} did not stop in time; killing its group")
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        self._stop_postgres()
        if self.keep:
            log(f"[{self.label}] kept {self.var_dir}")
        else:
            shutil.rmtree(self.var_dir.parent, ignore_errors=True)
        if self in _LIVE:
            _LIVE.remove(self)

    def cpu_roots(self) -> Roots:
        """The process trees whose CPU is agentdeck's: web (serve + daphne), worker (what runs
        the runs: the qcluster and its workers, or the run workers), qcluster (with the run
        workers: the queue cluster for the rest), and the embedded PostgreSQL (postmaster +
        backends; not an external one given by ``database_url``)."""
        roots: Roots = {"web": self.processes["serve"].pid}
        if self.engine == "qcluster":
            roots["worker"] = self.processes["qcluster"].pid
        else:
            roots["worker"] = [self.processes[name].pid for name in self.run_worker_names]
            roots["qcluster"] = self.processes["qcluster"].pid
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid_file = self.var_dir / "pgdata" / "postmaster.pid"
            roots["postgres"] = int(pid_file.read_text().split()[0])
        return roots

    def _stop_postgres(self) -> None:
        """Normally gone with its last client; if not (a client was killed), fast-shutdown the
        postmaster of *our* temporary pgdata, found by its pid file."""
        pid_file = self.var_dir / "pgdata" / "postmaster.pid"
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


# --- the API client ------------------------------------------------------------------------------


class Api:
    def __init__(self, base_url: str, token: str, connections: int) -> None:
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


# --- a Redis of the benchmark's own --------------------------------------------------------------


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
