"""Staff oversight of agents, runs and providers. Writes go through services; run events and
versions are read-only; the provider key is write-only and shown masked."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from agentdeck.agents import selectors
from agentdeck.agents.models import (
    Agent,
    AgentMetadata,
    AgentRun,
    AgentVersion,
    Conversation,
    Provider,
    Tool,
    ToolCall,
)
from agentdeck.agents.models.run import TERMINAL_STATUSES
from agentdeck.agents.services.agents import agent_set_status
from agentdeck.agents.services.providers import provider_create, provider_update
from agentdeck.agents.services.runs import agent_run_cancel
from agentdeck.core.crypto import SecretDecryptionError, decrypt_secret, mask_secret
from agentdeck.core.httpheaders import HeaderError, check_api_key, check_headers


class ProviderForm(forms.ModelForm):
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave empty to keep the current key; tick 'remove key' to delete it.",
    )
    remove_api_key = forms.BooleanField(required=False, label="Remove key")
    base_url = forms.URLField(required=False, assume_scheme="https", max_length=500)

    class Meta:
        model = Provider
        fields = ("name", "owner", "kind", "base_url", "default_model", "extra_headers", "enabled")

    # Both are sent in HTTP headers on every call (agentdeck.core.httpheaders).
    def clean_api_key(self) -> str:
        key = (self.cleaned_data.get("api_key") or "").strip()
        if key:
            try:
                check_api_key(key)
            except HeaderError as exc:
                raise forms.ValidationError(str(exc)) from None
        return key

    def clean_extra_headers(self) -> dict[str, str]:
        headers = self.cleaned_data.get("extra_headers") or {}
        try:
            check_headers(headers)
        except HeaderError as exc:
            raise forms.ValidationError(str(exc)) from None
        return headers


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ("name", "kind", "owner", "base_url", "enabled", "masked_key", "created_at")
    list_filter = ("kind", "enabled", ("owner", admin.EmptyFieldListFilter))
    search_fields = ("name", "base_url", "owner__email")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    readonly_fields = ("masked_key", "models_cache", "models_cached_at", "created_at", "updated_at")

    @admin.display(description="API key")
    def masked_key(self, obj: Provider) -> str:
        if not obj.api_key_encrypted:
            return "—"
        try:
            return mask_secret(decrypt_secret(obj.api_key_encrypted))
        except SecretDecryptionError:
            return "(cannot decrypt: check SECRETS_ENCRYPTION_KEYS)"

    def save_model(
        self, request: HttpRequest, obj: Provider, form: ProviderForm, change: bool
    ) -> None:
        key = form.cleaned_data.get("api_key")
        if form.cleaned_data.get("remove_api_key"):
            key = ""
        if change:
            fields = {
                name: form.cleaned_data[name]
                for name in form.changed_data
                if name in ProviderForm.Meta.fields
            }
            provider_update(
                provider=obj,
                actor=request.user,
                api_key=key
                if key is not None and (key or form.cleaned_data.get("remove_api_key"))
                else None,
                **fields,
            )
        else:
            # No owner: a shared provider, as in the list filter.
            owner = form.cleaned_data.get("owner")
            provider = provider_create(
                actor=request.user,
                shared=owner is None,
                owner=owner,
                api_key=key or "",
                **{
                    name: form.cleaned_data[name]
                    for name in ProviderForm.Meta.fields
                    if name != "owner" and name in form.cleaned_data
                },
            )
            # The admin goes on with ``obj`` (its history entry, the redirect): make it the row.
            for field in Provider._meta.concrete_fields:
                setattr(obj, field.attname, getattr(provider, field.attname))
            obj._state = provider._state


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
        return obj._runs_24h

    @admin.display(description="last run", ordering="_last_run")
    def last_run(self, obj: Agent):
        return obj._last_run

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
    list_filter = ("status", "agent__provider__kind", "error_code", "created_at")
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
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
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
        return obj._calls

    @admin.display(description="errors (24 h)")
    def error_rate_24h(self, obj: Tool) -> str:
        return f"{obj._errors / obj._calls:.0%}" if obj._calls else "—"

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
