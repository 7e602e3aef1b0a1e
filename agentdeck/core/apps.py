from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "agentdeck.core"
    label = "core"
    verbose_name = "agentdeck core"

    def ready(self) -> None:
        # Registers the OpenAPI extensions (security schemes) with drf-spectacular.
        from django.db.models.signals import post_migrate

        from agentdeck.core import schema  # noqa: F401
        from agentdeck.core.schedules import sync_schedules

        post_migrate.connect(sync_schedules, sender=self, dispatch_uid="agentdeck.sync_schedules")

        from django_q.signals import post_execute_in_worker

        from agentdeck.core.realtime import flush_after_task

        post_execute_in_worker.connect(
            flush_after_task, dispatch_uid="agentdeck.realtime.flush_after_task"
        )

        # A restarting PostgreSQL: one warning per pool a minute, not one per attempt.
        import logging

        from agentdeck.core.reconnect import RepeatedWarnings

        pool_logger = logging.getLogger("psycopg.pool")
        if not any(isinstance(f, RepeatedWarnings) for f in pool_logger.filters):
            pool_logger.addFilter(RepeatedWarnings())

        from django.conf import settings

        if settings.RUNNING_QCLUSTER:
            # Before django-q2 forks its workers, so they start with it loaded (the web
            # process does its part from config.asgi).
            from agentdeck.core.preload import qcluster_main

            qcluster_main()
