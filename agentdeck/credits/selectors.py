"""Reads of the credits domain: a user's ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from agentdeck.accounts.models import User
from agentdeck.credits.models import CreditTransaction


def credit_transaction_list(
    *,
    user: User,
    kind: str = "",
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[CreditTransaction]:
    """The user's ledger entries, filtered; an empty ``kind`` is no filter (what DRF makes of
    ``?kind=``)."""
    qs = CreditTransaction.objects.filter(user=user)
    if kind:
        qs = qs.filter(kind=kind)
    if created_after:
        qs = qs.filter(created_at__gte=created_after)
    if created_before:
        qs = qs.filter(created_at__lt=created_before)
    return qs


def credit_transaction_latest(*, user_id: Any, limit: int = 100) -> QuerySet[CreditTransaction]:
    """The user's latest ``limit`` ledger entries, newest first (the admin's ledger panel). A
    settlement's capture and release lines share one ``created_at``: the id orders them."""
    return CreditTransaction.objects.filter(user_id=user_id).order_by("-created_at", "-id")[:limit]
