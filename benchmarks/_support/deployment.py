"""agentdeck as production runs it: the web server and its workers, each a process of its own."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .basics import HOST, free_port, log
from .procs import Roots
from .server import (
    _LIVE,
    clean_env,
    log_tail,
    manage,
    postmaster_pid,
    spawn_manage,
    stop_embedded_postgres,
    temporary_var_dir,
    wait_healthy,
)


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
    var_dir: Path = field(default_factory=lambda: temporary_var_dir("agentdeck-bench-"))
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def env(self) -> dict[str, str]:
        env = clean_env(
            self.var_dir,
            self.port,
            {
                "Q_CLUSTER_NAME": "agentdeck-bench",
                # One account sends the whole load and would be held to RUN_PER_USER_CAP runs
                # at once (what protects other users from it, of whom there are none here).
                "RUN_PER_USER_CAP": "0",
                # No process here embeds locally (the agents search no files): production embeds
                # through a provider and preloads nothing, which keeps torch and MiniLM (~450 MB
                # per process) out of the workers' memory.
                "EMBEDDING_PRELOAD": "false",
                # The scripted model as the baseline uses it: no artificial per-token delay, and
                # no trace export to OpenAI (127.0.0.1 only).
                "MOCK_MODEL_DELAY_PER_TOKEN": "0",
                "OPENAI_TRACING_EXPORT": "false",
            },
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
        process = spawn_manage(self.var_dir / f"{name}.log", env or self.env(), *args)
        self.processes[name] = process
        return process

    def log_tail(self, name: str, lines: int = 40) -> str:
        return log_tail(self.var_dir / f"{name}.log", lines)

    def manage(self, *args: str) -> str:
        """A one-off ``manage.py`` command against this deployment's database."""
        return manage(self.env(), *args)

    def start(self, timeout: float = 180) -> None:
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
        wait_healthy(self.url, serve, self.var_dir / "serve.log", timeout)
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
        stop_embedded_postgres(self.var_dir)
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
        postmaster = postmaster_pid(self.var_dir)
        if postmaster is not None:
            roots["postgres"] = postmaster
        return roots
