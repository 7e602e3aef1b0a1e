"""``manage.py runs_worker``: a run worker, executing up to ``RUN_CONCURRENCY`` runs at once on one
event loop (``agentdeck.agents.worker``). ``make run`` starts one; production runs N of them,
on any number of machines, against the same PostgreSQL. SIGTERM (or Ctrl-C) drains it."""

from __future__ import annotations

import asyncio
import logging

from django.core.management.base import BaseCommand

from agentdeck.agents.worker import RunWorker, WorkerConfig, install_signal_handlers

logger = logging.getLogger("agentdeck.agents.worker")


class Command(BaseCommand):
    help = "Execute queued runs, many at once (asyncio); SIGTERM drains and exits."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--concurrency", type=int, help="runs in flight (RUN_CONCURRENCY)")
        parser.add_argument(
            "--per-user-cap", type=int, help="running runs per user (RUN_PER_USER_CAP; 0: none)"
        )
        parser.add_argument(
            "--drain-seconds", type=float, help="SIGTERM's grace (WORKER_DRAIN_SECONDS)"
        )

    def handle(
        self,
        *args,
        concurrency: int | None,
        per_user_cap: int | None,
        drain_seconds: float | None,
        **options,
    ) -> None:
        from agentdeck.core.preload import run_worker_process

        config = WorkerConfig.from_settings(
            concurrency=concurrency, per_user_cap=per_user_cap, drain_seconds=drain_seconds
        )
        run_worker_process()
        worker = RunWorker(config)

        async def main() -> None:
            install_signal_handlers(worker)
            await worker.serve(ready=lambda: _ready(worker))

        asyncio.run(main())
        logger.info(
            "run worker %s: stopped (%d run(s) executed, at most %d at once)",
            worker.name,
            worker.executed,
            worker.peak_in_flight,
        )


def _ready(worker: RunWorker) -> None:
    from agentdeck.core.preload import report_ready

    logger.info(
        "run worker %s: ready, up to %d runs at once (at most %d running per user)",
        worker.name,
        worker.config.concurrency,
        worker.config.per_user_cap,
    )
    report_ready("runs")
