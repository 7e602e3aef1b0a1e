"""Tools in the admin, with their use over the last 24 hours."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from agentdeck.agents import selectors
from agentdeck.agents.models import (
    Tool,
)


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    """Tools with their use over the last 24 hours. MCP servers show the tools they offer."""

    list_display = (
        "name",
        "kind",
        "owner",
        "enabled",
        "last_used_at",
        "calls_24h",
        "error_rate_24h",
    )
    list_filter = ("kind", "enabled")
    search_fields = ("name", "owner__email")
    list_select_related = ("owner",)
    fields = (
        "id",
        "owner",
        "name",
        "kind",
        "description",
        "config",
        "parameters_schema",
        "enabled",
        "discovered_tools",
        "discovered_at",
        "last_used_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = (
        "id",
        "owner",
        "kind",
        "config",
        "parameters_schema",
        "discovered_tools",
        "discovered_at",
        "last_used_at",
        "created_at",
        "updated_at",
    )
    actions = ("refresh_mcp",)
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tool]:
        return selectors.tools_with_call_stats(super().get_queryset(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # definitions are validated by the API's services

    @admin.display(description="calls (24 h)", ordering="_calls")
    def calls_24h(self, obj: Tool) -> int:
        return obj._calls  # type: ignore[attr-defined]  # annotated by the selector

    @admin.display(description="errors (24 h)")
    def error_rate_24h(self, obj: Tool) -> str:
        return f"{obj._errors / obj._calls:.0%}" if obj._calls else "—"  # type: ignore[attr-defined]  # annotated by the selector

    @admin.display(description="MCP tools")
    def discovered_tools(self, obj: Tool) -> str:
        if obj.kind != Tool.Kind.MCP:
            return "—"
        return (
            format_html_join(
                ", ", "<code>{}</code>", ((t.get("name", "?"),) for t in obj.discovered or [])
            )
            or "—"
        )

    @admin.action(description="Refresh the tool lists of selected MCP servers")
    def refresh_mcp(self, request: HttpRequest, queryset: QuerySet[Tool]) -> None:
        from agentdeck.agents.services.tools import tool_refresh_mcp
        from agentdeck.core.exceptions import ApplicationError

        done, failed = 0, []
        for tool in queryset.filter(kind=Tool.Kind.MCP):
            try:
                tool_refresh_mcp(tool=tool)
                done += 1
            except ApplicationError as e:
                failed.append(f"{tool.name}: {e.detail}")
        self.message_user(request, f"Refreshed {done} MCP server(s).", messages.SUCCESS)
        for line in failed:
            self.message_user(request, line, messages.ERROR)
