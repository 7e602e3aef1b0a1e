from __future__ import annotations

import fnmatch

from django.conf import settings
from django.db import models


class UserCredits(models.Model):
    """A user's balance (table ``user_credits``, shared with Next.js, which displays it).

    ``balance`` is what the user owns; ``reserved`` is the part held by runs in flight;
    ``balance - reserved`` is what a new run may hold. Every change goes through
    ``agentdeck.credits.services`` together with a ``CreditTransaction`` row, so the ledger
    explains the balance line by line (``manage.py credits_reconcile`` checks it).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="credits"
    )
    balance = models.BigIntegerField(default=0)
    reserved = models.BigIntegerField(default=0)
    lifetime_granted = models.BigIntegerField(default=0)
    lifetime_spent = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "user_credits"
        verbose_name_plural = "user credits"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(balance__gte=0), name="user_credits_balance_nonnegative"
            ),
            models.CheckConstraint(
                condition=models.Q(reserved__gte=0), name="user_credits_reserved_nonnegative"
            ),
            models.CheckConstraint(
                condition=models.Q(reserved__lte=models.F("balance")),
                name="user_credits_reserved_within_balance",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.balance} ({self.reserved} reserved)"

    @property
    def available(self) -> int:
        return self.balance - self.reserved


class CreditTransaction(models.Model):
    """One line of the append-only ledger. ``amount`` is the signed change to the balance and
    ``reserved_delta`` the signed change to the reserved part, so
    ``balance = sum(amount)`` and ``reserved = sum(reserved_delta)`` for every user.

    hold: amount 0, reserved +h; capture: amount -c, reserved -c; release: amount 0, reserved -r;
    grant/purchase/refund: amount +x; expiry: amount -x; adjustment: +/-x.
    """

    class Kind(models.TextChoices):
        GRANT = "grant", "Grant"
        PURCHASE = "purchase", "Purchase"
        HOLD = "hold", "Hold"
        CAPTURE = "capture", "Capture"
        RELEASE = "release", "Release"
        REFUND = "refund", "Refund"
        ADJUSTMENT = "adjustment", "Adjustment"
        EXPIRY = "expiry", "Expiry"

    class Actor(models.TextChoices):
        USER = "user", "User"
        STAFF = "staff", "Staff member"
        SERVICE = "service", "Service (Next.js)"
        SYSTEM = "system", "System"

    id = models.BigAutoField(primary_key=True)
    # No index of its own: every query by user (the ledger API and admin, the grant's idempotency
    # lookup, deleting a user) is served by credit_tx_user_created or the unique index below,
    # which lead with user_id; the default pair (btree, and varchar_pattern_ops for LIKE, which
    # nothing runs) only cost every ledger insert two more index entries (migration 0002).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="credit_transactions",
        db_index=False,
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = models.BigIntegerField()
    reserved_delta = models.BigIntegerField(default=0)
    balance_after = models.BigIntegerField()
    reserved_after = models.BigIntegerField()
    run = models.ForeignKey(
        "agents.AgentRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="credit_transactions",
    )
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001 (NULL = none)
    actor = models.CharField(max_length=16, choices=Actor.choices, default=Actor.SYSTEM)
    actor_id = models.CharField(max_length=64, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "credit_transactions"
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="credit_transactions_user_key_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    kind__in=[
                        "grant",
                        "purchase",
                        "hold",
                        "capture",
                        "release",
                        "refund",
                        "adjustment",
                        "expiry",
                    ]
                ),
                name="credit_transactions_kind_valid",
            ),
        ]
        indexes = [
            # GET /api/v1/credits/transactions/: one user's ledger, newest first.
            models.Index(fields=["user", "-created_at"], name="credit_tx_user_created"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount:+d} for {self.user_id}"


class CreditHold(models.Model):
    """The credits a run reserved at its start. ``open`` until the run settles: then ``captured``
    is what it cost and the rest was released. The price in force at the run's start is kept
    here, so a price change mid-run changes nothing."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        SETTLED = "settled", "Settled"

    run = models.OneToOneField(
        "agents.AgentRun", primary_key=True, on_delete=models.CASCADE, related_name="hold"
    )
    # Indexed by credit_holds_user below, without the varchar_pattern_ops twin a ForeignKey gets
    # by default: no query matches holds by a LIKE on user_id (migration 0002).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="credit_holds",
        db_index=False,
    )
    amount = models.BigIntegerField()
    captured = models.BigIntegerField(default=0)
    refunded = models.BigIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    # {model: {"input": p, "cached_input": p, "output": p}} in micro-credits per million tokens.
    prices = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "credit_holds"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount__gte=0), name="credit_holds_amount_nonnegative"
            ),
            models.CheckConstraint(
                condition=models.Q(captured__gte=0, captured__lte=models.F("amount")),
                name="credit_holds_captured_within_amount",
            ),
        ]
        indexes = [
            # Deleting a user (CASCADE) finds their holds.
            models.Index(fields=["user"], name="credit_holds_user"),
            # Reconciliation: a user's open holds must add up to their reserved credits.
            models.Index(
                fields=["user"], name="credit_holds_open_user", condition=models.Q(status="open")
            ),
        ]

    def __str__(self) -> str:
        return f"hold {self.amount} on {self.run_id} ({self.status})"


class ModelPrice(models.Model):
    """What a model costs, per million tokens, in micro-credits. ``model`` is an exact name or a
    shell-style pattern (``gpt-4o*``); an exact name wins over a pattern, then the latest
    ``effective_from`` not in the future. Prices are never edited in place: a change is a new
    row with a later ``effective_from``, so history explains past runs."""

    id = models.BigAutoField(primary_key=True)
    provider_kind = models.CharField(max_length=32)
    model = models.CharField(max_length=200)
    input_per_million = models.BigIntegerField()
    cached_input_per_million = models.BigIntegerField()
    output_per_million = models.BigIntegerField()
    effective_from = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "model_prices"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    input_per_million__gte=0,
                    cached_input_per_million__gte=0,
                    output_per_million__gte=0,
                ),
                name="model_prices_nonnegative",
            ),
            models.UniqueConstraint(
                fields=["provider_kind", "model", "effective_from"], name="model_prices_unique"
            ),
        ]
        indexes = [
            # Price lookup at run start: a provider kind's prices, latest first.
            models.Index(
                fields=["provider_kind", "-effective_from"], name="model_prices_kind_from"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider_kind}/{self.model} from {self.effective_from:%Y-%m-%d}"

    @property
    def is_pattern(self) -> bool:
        return any(c in self.model for c in "*?[")

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.model) if self.is_pattern else model == self.model
