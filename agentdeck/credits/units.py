"""The one credit unit. Every amount in the database and the services is an integer number of
micro-credits (1 credit = 1,000,000 micro-credits), so no arithmetic ever rounds a float;
the API shows amounts both raw and in credits."""

from __future__ import annotations

from decimal import Decimal

MICROS_PER_CREDIT = 1_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are per million tokens


def to_credits(micros: int) -> Decimal:
    return Decimal(micros) / MICROS_PER_CREDIT


def cost_of(tokens: int, price_per_million: int) -> int:
    """Micro-credits for ``tokens`` at ``price_per_million`` micro-credits per million tokens,
    rounded up (a fraction of a unit is charged as one: never give away an unpriced remainder)."""
    return -(-tokens * price_per_million // TOKENS_PER_PRICE_UNIT)
