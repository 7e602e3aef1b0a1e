"""Model prices: which one is in force for a model, what a run's usage costs at them, and adding
one."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from agentdeck.accounts.models import User
from agentdeck.core.exceptions import Conflict, PermissionDenied
from agentdeck.credits.exceptions import InvalidAmount
from agentdeck.credits.models import ModelPrice
from agentdeck.credits.units import MAX_PRICE_PER_MILLION, cost_of


def price_for(*, provider_kind: str, model: str, at: datetime | None = None) -> ModelPrice | None:
    """The price in force at ``at``: an exact model name beats a pattern; the newest
    ``effective_from`` not after ``at`` wins."""
    at = at or timezone.now()
    candidates = [
        p
        for p in ModelPrice.objects.filter(
            provider_kind=provider_kind, effective_from__lte=at
        ).order_by("-effective_from")
        if p.matches(model)
    ]
    exact = [p for p in candidates if not p.is_pattern]
    best = exact or candidates
    return best[0] if best else None


def price_table(*, provider_kind: str, model: str) -> dict[str, dict[str, int]]:
    price = price_for(provider_kind=provider_kind, model=model)
    if price is None:
        return {}
    return {
        model: {
            "input": price.input_per_million,
            "cached_input": price.cached_input_per_million,
            "output": price.output_per_million,
        }
    }


def usage_cost(usage: dict[str, dict[str, int]], prices: dict[str, dict[str, int]]) -> int:
    """Micro-credits for a run's usage: uncached input, cached input and output (reasoning tokens
    are output tokens) each at their price. A model without a price costs nothing."""
    total = 0
    for model, counts in (usage or {}).items():
        price = prices.get(model)
        if not price:
            continue
        cached = counts.get("cached_input_tokens", 0)
        total += cost_of(max(counts.get("input_tokens", 0) - cached, 0), price["input"])
        total += cost_of(cached, price["cached_input"])
        total += cost_of(counts.get("output_tokens", 0), price["output"])
    return total


def model_price_check_can_create(*, actor: User) -> None:
    """Only staff set prices: 403 ``staff_only``. The view calls it before it validates the body,
    so a user who may not set prices learns nothing from its errors."""
    if not actor.is_staff:
        raise PermissionDenied("Only staff set prices.", code="staff_only")


def model_price_create(
    *,
    actor: User,
    provider_kind: str,
    model: str,
    input_per_million: int,
    cached_input_per_million: int,
    output_per_million: int,
    effective_from: datetime,
) -> ModelPrice:
    """Add a price (staff only, :func:`model_price_check_can_create`); a later
    ``effective_from`` supersedes the one in force, and past rows stay as history."""
    model_price_check_can_create(actor=actor)
    prices = (input_per_million, cached_input_per_million, output_per_million)
    if min(prices) < 0 or max(prices) > MAX_PRICE_PER_MILLION:
        raise InvalidAmount(f"Prices are between 0 and {MAX_PRICE_PER_MILLION} per million tokens.")
    try:
        with transaction.atomic():
            return ModelPrice.objects.create(
                provider_kind=provider_kind,
                model=model,
                input_per_million=input_per_million,
                cached_input_per_million=cached_input_per_million,
                output_per_million=output_per_million,
                effective_from=effective_from,
            )
    except IntegrityError:
        raise Conflict(
            "A price for this model from that moment exists already.", code="price_exists"
        ) from None
