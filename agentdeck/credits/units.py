"""The one credit unit. Every amount in the database and the services is an integer number of
micro-credits (1 credit = 1,000,000 micro-credits), so no arithmetic ever rounds a float;
the API shows amounts both raw and in credits."""

from __future__ import annotations

from decimal import Decimal

MICROS_PER_CREDIT = 1_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are per million tokens
# Upper bounds on what a client may write, so every sum the ledger forms stays far inside
# PostgreSQL's bigint (9.2e18): a grant past it was a DataError (500), and a price past it made
# a run's capture overflow when the run finished. A billion credits per grant; a million
# credits per million tokens.
MAX_GRANT_MICROS = 10**9 * MICROS_PER_CREDIT
MAX_PRICE_PER_MILLION = 10**6 * MICROS_PER_CREDIT
# A staff adjustment's or a grant's reason, as shown in the ledger.
MAX_REASON_CHARS = 1000


def to_credits(micros: int) -> Decimal:
    return Decimal(micros) / MICROS_PER_CREDIT


def cost_of(tokens: int, price_per_million: int) -> int:
    """Micro-credits for ``tokens`` at ``price_per_million`` micro-credits per million tokens,
    rounded up (a fraction of a unit is charged as one: never give away an unpriced remainder)."""
    return -(-tokens * price_per_million // TOKENS_PER_PRICE_UNIT)
