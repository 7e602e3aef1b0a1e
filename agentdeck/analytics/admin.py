from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from agentdeck.analytics.models import RunSpan


@admin.register(RunSpan)
class RunSpanAdmin(admin.ModelAdmin):
    """Spans are written by the trace processor only; staff can look, never edit. Deleting a run
    deletes its spans (CASCADE), so there is no reason to delete them here either."""

    list_display = (
        "kind",
        "name",
        "run",
        "model",
        "started_at",
        "duration_ms",
        "input_tokens",
        "output_tokens",
    )
    list_filter = ("kind",)
    list_select_related = ("run",)
    # Exact matches, so the search uses the (run, ...) indexes instead of scanning the table.
    search_fields = ("=run__id", "=trace_id", "=span_id")
    ordering = ("-id",)
    # The table grows with every run: skip the unfiltered COUNT(*) on each changelist page.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
