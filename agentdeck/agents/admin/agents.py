"""Agents and their versions in the admin, read-only: behaviour edits make versions through the
API; suspend and activate are actions calling agent_set_status."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from agentdeck.agents import selectors
from agentdeck.agents.models import (
    Agent,
    AgentMetadata,
    AgentVersion,
)
from agentdeck.agents.services.agents import agent_set_status


class AgentVersionInline(admin.TabularInline):
    model = AgentVersion
    fields = ("number", "note", "created_by", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-number",)
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class AgentMetadataInline(admin.StackedInline):
    model = AgentMetadata
    fields = ("category", "tags", "icon", "featured", "run_count", "last_run_at")
    readonly_fields = ("run_count", "last_run_at")
    can_delete = False


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "owner",
        "provider",
        "model",
        "status",
        "visibility",
        "runs_24h",
        "last_run",
        "created_at",
    )
    list_filter = ("status", "visibility", "provider__kind")
    search_fields = ("name", "slug", "owner__email")
    list_select_related = ("owner", "provider")
    raw_id_fields = ("owner", "provider")
    readonly_fields = ("id", "slug", "current_version", "created_at", "updated_at")
    inlines = (AgentMetadataInline, AgentVersionInline)
    actions = ("suspend", "activate")
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agent]:
        return selectors.agents_with_run_stats(super().get_queryset(request))

    @admin.display(description="runs (24 h)", ordering="_runs_24h")
    def runs_24h(self, obj: Agent) -> int:
        return obj._runs_24h  # type: ignore[attr-defined]  # annotated by the selector

    @admin.display(description="last run", ordering="_last_run")
    def last_run(self, obj: Agent):
        return obj._last_run  # type: ignore[attr-defined]  # annotated by the selector

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # Read-only here: behaviour edits must create versions (the API does); status via actions.
        return False

    @admin.action(description="Suspend selected agents")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        n = 0
        for agent in queryset.exclude(status=Agent.Status.SUSPENDED):
            agent_set_status(agent=agent, status=Agent.Status.SUSPENDED)
            n += 1
        self.message_user(request, f"Suspended {n} agent(s).", messages.SUCCESS)

    @admin.action(description="Activate selected agents")
    def activate(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        n = 0
        for agent in queryset.exclude(status=Agent.Status.ACTIVE):
            agent_set_status(agent=agent, status=Agent.Status.ACTIVE)
            n += 1
        self.message_user(request, f"Activated {n} agent(s).", messages.SUCCESS)


@admin.register(AgentVersion)
class AgentVersionAdmin(admin.ModelAdmin):
    list_display = ("agent", "number", "note", "created_by", "created_at")
    list_select_related = ("agent", "created_by")
    search_fields = ("agent__name",)
    readonly_fields = ("agent", "number", "snapshot", "note", "created_by", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
