"""Runs and conversations in the admin: read-only apart from cancelling through the run
service; tool calls inline, a filter for runs waiting on an approval."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from agentdeck.agents import selectors
from agentdeck.agents.models import (
    AgentRun,
    Conversation,
    ToolCall,
)
from agentdeck.agents.models.run import TERMINAL_STATUSES
from agentdeck.agents.services.runs import agent_run_cancel


@admin.register(AgentRun)
class AgentRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "agent",
        "owner",
        "status",
        "error_code",
        "created_at",
        "started_at",
        "finished_at",
    )
    list_filter: ClassVar[tuple[Any, ...]] = (
        "status",
        "agent__provider__kind",
        "error_code",
        "created_at",
    )
    search_fields = ("id", "agent__name", "owner__email")
    list_select_related = ("agent", "owner")
    # Runs are big (input, output, usage); the change list needs none of it, nor an exact count.
    show_full_result_count = False
    date_hierarchy = "created_at"
    actions = ("cancel_runs",)
    fields = (
        "id",
        "agent",
        "agent_version",
        "owner",
        "conversation",
        "status",
        "mode",
        "input",
        "output",
        "last_agent",
        "error_code",
        "error_message",
        "usage",
        "max_turns",
        "metadata",
        "idempotency_key",
        "created_at",
        "started_at",
        "first_token_at",
        "finished_at",
        "heartbeat_at",
        "cancel_requested_at",
        "attempts",
        "worker",
        "transcript",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[AgentRun]:
        qs = super().get_queryset(request)
        match = request.resolver_match
        if match and cast(str, match.url_name).endswith("changelist"):  # the admin names each
            qs = qs.defer("input", "output", "usage", "metadata")
        return qs

    @admin.display(description="events")
    def transcript(self, obj: AgentRun) -> str:
        events = selectors.run_events_after(run=obj, limit=500)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td><pre style='white-space:pre-wrap;margin:0'>{}"
            "</pre></td></tr>",
            ((e.seq, e.type, e.created_at.strftime("%H:%M:%S.%f")[:-3], e.data) for e in events),
        )
        return format_html(
            "<table><tr><th>seq</th><th>type</th><th>at</th><th>data</th></tr>{}</table>", rows
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description="Cancel selected runs")
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[AgentRun]) -> None:
        n = 0
        for run in queryset.exclude(status__in=TERMINAL_STATUSES):
            agent_run_cancel(run=run)
            n += 1
        self.message_user(request, f"Cancellation requested for {n} run(s).", messages.SUCCESS)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "agent", "owner", "created_at")
    list_select_related = ("agent", "owner")
    search_fields = ("id", "title", "owner__email")
    readonly_fields = ("id", "owner", "agent", "title", "next_position", "created_at", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class ToolCallInline(admin.TabularInline):
    model = ToolCall
    fields = ("call_id", "tool_name", "status", "duration_ms", "output_size", "error", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


AgentRunAdmin.inlines = (ToolCallInline,)


class PendingApprovalFilter(admin.SimpleListFilter):
    title = "approvals"
    parameter_name = "approvals"

    def lookups(self, request, model_admin):
        return (("pending", "Waiting for approval"),)

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.filter(status=AgentRun.Status.REQUIRES_ACTION)
        return queryset


AgentRunAdmin.list_filter = (PendingApprovalFilter, *AgentRunAdmin.list_filter)
