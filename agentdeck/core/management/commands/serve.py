"""``manage.py serve``: the whole system in one command (what ``make run`` calls).

1. Settings have already connected to the database (starting the embedded PostgreSQL when
   ``DATABASE_URL`` is unset; this process then holds it, see ``agentdeck.core.embedded_postgres``).
2. Apply migrations, make sure a staff user exists, and seed the offline demo agent.
3. Start daphne (HTTP + WebSocket), a run worker (``runs_worker``: the runs) and a django-q2
   cluster (the rest: file ingestion, schedules) as child processes, handing them
   the resolved ``DATABASE_URL`` so they join this database instead of starting their own. On
   Linux the kernel sends them SIGTERM if this process dies, even by SIGKILL.
4. Say "up" only once it is: daphne answers ``/healthz`` and every queue worker has loaded what
   it preloads (it writes a line to a pipe it inherits, ``AGENTDECK_READY_FD``). A child that
   exits before that is named, and the command exits non-zero.
5. Watch them: Ctrl-C or SIGTERM stops both gracefully (then forcibly after a grace period);
   if either exits on its own, the other is stopped too and the exit code is non-zero.
6. Release the embedded PostgreSQL: it stops unless another live process still holds it, and
   "stopped" is printed only when nothing that was started is left running.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

from agentdeck.accounts.services import admin_user_ensure
from agentdeck.core import embedded_postgres

GRACE_SECONDS = 15
# Generous: on a busy 2-core machine loading torch in two processes at once took ~20 s.
STARTUP_TIMEOUT_SECONDS = 300
LABELS = {
    "web": "web (daphne)",
    "runs": "run worker (runs_worker)",
    "worker": "task worker (qcluster)",
}
# prctl(2) option: the signal the kernel sends a process when its parent dies.
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` tying a child to this process (Linux): without it a SIGKILLed serve
    left daphne and qcluster serving forever, orphaned in sessions of their own."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child only calls it
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _probe_host(host: str) -> str:
    """Where to reach a server bound to ``host`` from this machine."""
    if host in ("0.0.0.0", ""):  # noqa: S104 (it is what we are given, not what we bind)
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _ended(returncode: int, when: str = "") -> str:
    """How a child ended, in words (Popen's returncode is -N for a child killed by signal N)."""
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}{when}"
    return f"exited{when} with status {returncode}"


def _exit_status(returncode: int) -> int:
    """serve's own exit status for a child that ended: never 0, and 128 + N for a child killed
    by signal N, as a shell reports it (sys.exit(-9) would exit with 247)."""
    return 128 - returncode if returncode < 0 else returncode or 1


# Straight to the port: an http_proxy in the environment must not stand in for daphne.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _healthy(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=1) as response:
            status: int = response.status
            return status == 200
    except (OSError, urllib.error.URLError):
        return False


# Connections the kernel queues for daphne before it accepts them. daphne's -b/-p use Twisted's
# default of 50: a burst of a few hundred clients connecting at once (a fan-out of runs, a load
# balancer's warm-up) had connections reset before any answer.
LISTEN_BACKLOG = 1024


def daphne_endpoint(host: str, port: int) -> str:
    """daphne's ``-e`` endpoint for ``host``:``port`` with :data:`LISTEN_BACKLOG` (colons of an
    IPv6 address escaped, as Twisted's endpoint syntax asks)."""
    interface = host.replace(":", "\\:")
    return f"tcp:port={port}:interface={interface}:backlog={LISTEN_BACKLOG}"


class Command(BaseCommand):
    help = (
        "Migrate, ensure a staff user, then run daphne (HTTP + WebSocket), a run worker and a "
        "django-q2 worker."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--no-worker", action="store_true", help="Serve only; run no run worker or qcluster."
        )

    def handle(self, *args: Any, host: str, port: int, no_worker: bool, **options: Any) -> None:
        started_at = time.monotonic()
        # Each line out at once: the children write to the same terminal (or log file), and
        # "up" must not sit in a buffer.
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(line_buffering=True)
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("migrations applied")
        self._ensure_admin()

        stopping = False

        def request_stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

        ready_read, ready_write = os.pipe()
        children = self._start_children(host, port, no_worker, ready_write)
        os.close(ready_write)  # the workers hold it now; EOF once every one of them is gone
        workers = 0 if no_worker else int(settings.Q_CLUSTER.get("workers", 1))
        self.stdout.write(
            f"starting {LABELS['web']} on {host}:{port}"
            + (
                f", {LABELS['runs']} for up to {settings.RUN_CONCURRENCY} runs at once and "
                f"{LABELS['worker']} with {workers} processes"
                if workers
                else ""
            )
            + "; waiting until they answer"
        )

        exit_code = self._wait_until_up(
            children,
            healthz=f"http://{_probe_host(host)}:{port}/healthz",
            ready_fd=ready_read,
            workers=workers,
            stop_requested=lambda: stopping,
        )
        os.close(ready_read)
        if exit_code is None and not stopping:
            self.stdout.write(
                self.style.SUCCESS(
                    f"agentdeck is up: http://{host}:{port}/  (API /api/v1/, docs /api/docs/, "
                    f"admin /admin/, health /healthz /readyz); Ctrl-C stops it"
                )
                + f"  [{time.monotonic() - started_at:.1f} s]"
            )
            while not stopping and exit_code is None:
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(f"{LABELS[name]} {_ended(child.returncode)}; stopping")
                        exit_code = _exit_status(child.returncode)
                        break
                time.sleep(0.2)

        self._stop(children)
        self._report_stopped(children)
        if exit_code:
            sys.exit(exit_code)

    def _start_children(
        self, host: str, port: int, no_worker: bool, ready_write: int
    ) -> dict[str, subprocess.Popen[bytes]]:
        env = {
            **os.environ,
            "DATABASE_URL": settings.DATABASE_URL,
            "PYTHONUNBUFFERED": "1",
            "AGENTDECK_READY_FD": str(ready_write),
        }
        base_dir = Path(settings.BASE_DIR)
        commands: dict[str, list[str]] = {
            "web": [
                sys.executable,
                "-m",
                "daphne",
                "-e",
                daphne_endpoint(host, port),
                "--proxy-headers",
                "config.asgi:application",
            ],
        }
        if not no_worker:
            commands["runs"] = [sys.executable, str(base_dir / "manage.py"), "runs_worker"]
            commands["worker"] = [sys.executable, str(base_dir / "manage.py"), "qcluster"]
        children: dict[str, subprocess.Popen[bytes]] = {}
        for name, argv in commands.items():
            # A session of their own: the terminal's Ctrl-C reaches only us, and we stop them
            # ourselves (see _stop) instead of racing their own signal handlers.
            children[name] = subprocess.Popen(  # noqa: S603 (argv is ours, not user input)
                argv,
                env=env,
                cwd=base_dir,
                start_new_session=True,
                preexec_fn=_die_with_parent(),  # serve runs no threads: a preexec_fn is safe here
                pass_fds=(ready_write,),
            )
        return children

    def _wait_until_up(
        self,
        children: dict[str, subprocess.Popen[bytes]],
        *,
        healthz: str,
        ready_fd: int,
        workers: int,
        stop_requested: Callable[[], bool],
    ) -> int | None:
        """Wait until daphne answers ``healthz`` and has reported its preload done, and
        ``workers`` queue workers have reported theirs; None once they have, else the exit code
        to leave with (a child exited, or start-up took longer than STARTUP_TIMEOUT_SECONDS)."""
        started = time.monotonic()
        deadline = started + STARTUP_TIMEOUT_SECONDS
        answered = False
        reported: list[str] = []
        pending = b""
        while not stop_requested():
            for name, child in children.items():
                if child.poll() is not None:
                    self.stderr.write(
                        self.style.ERROR(
                            f"{LABELS[name]} {_ended(child.returncode, ' during start-up')}; "
                            "stopping (its output is above)"
                        )
                    )
                    return _exit_status(child.returncode)
            answered = answered or _healthy(healthz)
            readable, _, _ = select.select([ready_fd], [], [], 0.2)
            chunk = os.read(ready_fd, 4096) if readable else b""
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                reported += [line.split()[0].decode() for line in lines if line.strip()]
            web_ready = answered and "web" in reported
            workers_ready = reported.count("worker") >= workers and (
                not workers or "runs" in reported
            )
            if web_ready and workers_ready:
                return None
            if time.monotonic() > deadline:
                waiting = [] if web_ready else [f"{LABELS['web']} ({healthz})"]
                if not workers_ready:
                    waiting.append(
                        f"{max(workers - reported.count('worker'), 0)} queue workers"
                        + ("" if "runs" in reported else " and the run worker")
                    )
                self.stderr.write(
                    self.style.ERROR(
                        f"still waiting for {' and '.join(waiting)} after "
                        f"{STARTUP_TIMEOUT_SECONDS} s; stopping"
                    )
                )
                return 1
            if not chunk:  # nothing came (or every writer is gone, which the poll above sees)
                time.sleep(0.1)
        return None

    def _ensure_admin(self) -> None:
        from agentdeck.agents.services.demo import demo_seed

        user, generated = admin_user_ensure(
            email=settings.ADMIN_EMAIL, password=settings.ADMIN_PASSWORD or None
        )
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"created staff user {user.email} with password: {generated}\n"
                    "  (shown once; set ADMIN_PASSWORD to choose your own)"
                )
            )
        else:
            self.stdout.write(f"staff user: {user.email}")
        if settings.SEED_DEMO:
            agent = demo_seed(owner=user)
            self.stdout.write(f"demo agent: {agent.name} {agent.id} (public, offline mock model)")

    def _stop(self, children: dict[str, subprocess.Popen[bytes]]) -> None:
        """SIGTERM each child, wait up to ``GRACE_SECONDS``, then SIGKILL its whole process
        group (a qcluster's forked workers included) whatever is left."""
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        started = time.monotonic()
        for name, child in children.items():
            # The run worker lets its runs finish for WORKER_DRAIN_SECONDS first.
            grace = GRACE_SECONDS + (settings.WORKER_DRAIN_SECONDS if name == "runs" else 0)
            try:
                child.wait(timeout=max(0.1, started + grace - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{LABELS[name]} did not stop within {grace:g}s; killing it")
            # Its session's other processes (workers forked by the qcluster) go with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()

    def _report_stopped(self, children: dict[str, subprocess.Popen[bytes]]) -> None:
        """Release the embedded PostgreSQL and say what is still running, if anything."""
        connections.close_all()  # ours, from migrate: closed, not cut off by the shutdown
        others: list[int] = []
        for released in embedded_postgres.release_all():
            others += released.others
        if not others:
            self.stdout.write("stopped")
            return
        pids = ", ".join(str(pid) for pid in others)
        self.stdout.write(
            self.style.WARNING(
                f"stopped {' and '.join(LABELS[name] for name in children)}; "
                f"the embedded PostgreSQL keeps running for "
                f"{len(others)} other process{'es' if len(others) > 1 else ''} using it "
                f"(pid {pids}) and stops when the last of them exits"
            )
        )
