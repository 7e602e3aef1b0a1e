"""Every periodic job, declared in one place (convention 7). ``sync_schedules`` makes the
django-q2 ``Schedule`` table match this list; it runs after migrations, so a deploy that
changes a schedule applies it without a manual step."""

from __future__ import annotations

from typing import Any, TypedDict


class ScheduleSpec(TypedDict):
    func: str
    schedule_type: str  # django_q.models.Schedule.MINUTES, HOURLY, DAILY, ...
    minutes: int | None


SCHEDULES: dict[str, ScheduleSpec] = {
    # Fail runs whose worker died (heartbeat stale) and release what they held.
    "agents.reap_stale_runs": {
        "func": "agentdeck.agents.tasks.reap_stale_runs",
        "schedule_type": "I",
        "minutes": 1,
    },
    # Files stuck in processing (dead worker, lost task) are retried or failed; expired
    # vector indices lose their chunks.
    "files.watchdog": {
        "func": "agentdeck.files.tasks.watchdog",
        "schedule_type": "I",
        "minutes": 1,
    },
    # Every balance against its ledger and open holds; discrepancies are logged as errors.
    "credits.reconcile": {
        "func": "agentdeck.credits.tasks.reconcile",
        "schedule_type": "D",
        "minutes": None,
    },
}


def sync_schedules(**kwargs: Any) -> None:
    from django_q.models import Schedule

    for name, spec in SCHEDULES.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": spec["func"],
                "schedule_type": spec["schedule_type"],
                "minutes": spec["minutes"],
                "repeats": -1,
            },
        )
    Schedule.objects.filter(name__contains=".", func__startswith="agentdeck.").exclude(
        name__in=list(SCHEDULES)
    ).delete()
