"""``manage.py runs_reap``: fail runs whose worker stopped heartbeating, now.

The queue runs the same job every minute (``agentdeck.core.schedules``); this is for operators
who just lost a worker host and for tests."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand

from agentdeck.agents.services.runs import agent_run_reap_stale


class Command(BaseCommand):
    help = "Fail running runs whose heartbeat is stale (code worker_lost)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--stale-after",
            type=int,
            default=None,
            help="seconds without a heartbeat (default RUN_STALE_AFTER_SECONDS)",
        )

    def handle(self, *args, stale_after: int | None, **options) -> None:
        reaped = agent_run_reap_stale(
            stale_after=timedelta(seconds=stale_after) if stale_after else None
        )
        for run_id in reaped:
            self.stdout.write(f"reaped {run_id}")
        self.stdout.write(f"{len(reaped)} run(s) reaped")
