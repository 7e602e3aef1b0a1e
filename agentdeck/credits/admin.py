"""Staff oversight of credits: balances, the ledger (read-only), prices. Balances change only
through the services (the grant/adjust action), never by editing a number."""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from agentdeck.accounts.models import User
from agentdeck.core.exceptions import ApplicationError
from agentdeck.credits.models import CreditTransaction, ModelPrice, UserCredits
from agentdeck.credits.selectors import credit_transaction_latest
from agentdeck.credits.services import credits_adjust
from agentdeck.credits.units import to_credits


class AdjustForm(ActionForm):
    amount = forms.IntegerField(required=False, help_text="micro-credits; negative to take away")
    reason = forms.CharField(required=False)


@admin.register(UserCredits)
class UserCreditsAdmin(admin.ModelAdmin[UserCredits]):
    list_display = (
        "user",
        "balance_credits",
        "reserved_credits",
        "available_credits",
        "lifetime_spent",
        "updated_at",
    )
    search_fields = ("user__email", "user__id")
    list_select_related = ("user",)
    readonly_fields = (
        "user",
        "balance",
        "reserved",
        "lifetime_granted",
        "lifetime_spent",
        "updated_at",
    )
    action_form = AdjustForm
    actions = ("grant_or_adjust",)
    fields = (
        "user",
        "balance",
        "reserved",
        "lifetime_granted",
        "lifetime_spent",
        "updated_at",
        "ledger",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: UserCredits | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: UserCredits | None = None) -> bool:
        return False

    @admin.display(description="ledger (latest 100, read-only)")
    def ledger(self, obj: UserCredits) -> str:
        rows = credit_transaction_latest(user_id=obj.user_id, limit=100)
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    t.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    t.kind,
                    t.amount,
                    t.reserved_delta,
                    t.balance_after,
                    t.run_id or "",
                    t.reason,
                )
                for t in rows
            ),
        )
        return format_html(
            "<table><tr><th>at</th><th>kind</th><th>amount</th><th>reserved</th><th>balance after</th>"
            "<th>run</th><th>reason</th></tr>{}</table>",
            body,
        )

    @admin.display(description="balance")
    def balance_credits(self, obj: UserCredits) -> str:
        return str(to_credits(obj.balance))

    @admin.display(description="reserved")
    def reserved_credits(self, obj: UserCredits) -> str:
        return str(to_credits(obj.reserved))

    @admin.display(description="available")
    def available_credits(self, obj: UserCredits) -> str:
        return str(to_credits(obj.available))

    @admin.action(description="Grant or adjust (amount and reason above)")
    def grant_or_adjust(self, request: HttpRequest, queryset: QuerySet[UserCredits]) -> None:
        try:
            amount = int(request.POST.get("amount") or 0)
        except ValueError:
            amount = 0
        reason = (request.POST.get("reason") or "").strip()
        done = 0
        for account in queryset.select_related("user"):
            try:
                credits_adjust(
                    user=account.user, amount=amount, staff=cast(User, request.user), reason=reason
                )
                done += 1
            except ApplicationError as e:
                self.message_user(request, f"{account.user}: {e.detail}", messages.ERROR)
        if done:
            self.message_user(request, f"Adjusted {done} balance(s) by {amount}.", messages.SUCCESS)


@admin.register(CreditTransaction)
class CreditTransactionAdmin(admin.ModelAdmin[CreditTransaction]):
    list_display = (
        "created_at",
        "user",
        "kind",
        "amount",
        "reserved_delta",
        "balance_after",
        "run",
        "actor",
    )
    list_filter = ("kind", "actor", "created_at")
    search_fields = ("user__email", "user__id", "idempotency_key", "run__id")
    list_select_related = ("user",)
    show_full_result_count = False
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: CreditTransaction | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: CreditTransaction | None = None
    ) -> bool:
        return False


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin[ModelPrice]):
    """Add a row with a later ``effective_from`` to change a price; past rows stay as history."""

    list_display = (
        "provider_kind",
        "model",
        "input_per_million",
        "cached_input_per_million",
        "output_per_million",
        "effective_from",
    )
    list_filter = ("provider_kind",)
    search_fields = ("model",)
    ordering = ("provider_kind", "model", "-effective_from")

    def has_change_permission(self, request: HttpRequest, obj: ModelPrice | None = None) -> bool:
        return False  # history: never edit a price in place

    def has_delete_permission(self, request: HttpRequest, obj: ModelPrice | None = None) -> bool:
        return False
