"""``manage.py serve``: the whole system in one command (what ``make run`` calls).

1. Settings have already connected to the database (starting the embedded PostgreSQL when
   ``DATABASE_URL`` is unset; this process then owns it and stops it on exit).
2. Apply migrations, make sure a staff user exists, and seed the offline demo agent.
3. Start daphne (HTTP + WebSocket) and a django-q2 cluster as child processes, handing them
   the resolved ``DATABASE_URL`` so they join this database instead of starting their own.
4. Watch them: Ctrl-C or SIGTERM stops both gracefully (then forcibly after a grace period);
   if either exits on its own, the other is stopped too and the exit code is non-zero.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from agentdeck.accounts.services import admin_user_ensure

GRACE_SECONDS = 15


class Command(BaseCommand):
    help = (
        "Migrate, ensure a staff user, then run daphne (HTTP + WebSocket) and a django-q2 worker."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-worker", action="store_true", help="Serve only; run no qcluster.")

    def handle(self, *args, host: str, port: int, no_worker: bool, **options) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("migrations applied")
        self._ensure_admin()

        env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL, "PYTHONUNBUFFERED": "1"}
        base_dir = Path(settings.BASE_DIR)
        commands = {
            "web": [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                host,
                "-p",
                str(port),
                "--proxy-headers",
                "config.asgi:application",
            ],
        }
        if not no_worker:
            commands["worker"] = [sys.executable, str(base_dir / "manage.py"), "qcluster"]

        stopping = False

        def request_stop(signum, frame) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

        children: dict[str, subprocess.Popen] = {}
        for name, argv in commands.items():
            # A session of their own: the terminal's Ctrl-C reaches only us, and we stop them
            # in order instead of racing their own signal handlers.
            children[name] = subprocess.Popen(  # noqa: S603 (argv is ours, not user input)
                argv, env=env, cwd=base_dir, start_new_session=True
            )

        self.stdout.write(
            self.style.SUCCESS(
                f"agentdeck is up: http://{host}:{port}/  (API /api/v1/, docs /api/docs/, "
                f"admin /admin/, health /healthz /readyz); Ctrl-C stops it"
            )
        )
        exit_code = 0
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    self.stderr.write(f"{name} exited with status {child.returncode}; stopping")
                    exit_code = child.returncode or 1
                    stopping = True
                    break
            time.sleep(0.2)

        self._stop(children)
        self.stdout.write("stopped")
        if exit_code:
            sys.exit(exit_code)

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

    def _stop(self, children: dict[str, subprocess.Popen]) -> None:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for name, child in children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop within {GRACE_SECONDS}s; killing it")
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
