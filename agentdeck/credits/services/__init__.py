"""Every change to credits. Each one updates ``user_credits`` with a conditional UPDATE and appends
its ledger row in the same transaction (``ledger``), so balance always equals the sum of the
ledger. The races each change handles are listed where it is made:

``holds``      a run's hold and settlement, one SQL statement each (the hot path)
``grants``     grants, purchases, staff adjustments and refunds
``prices``     the price in force for a model, a usage's cost, adding a price
``reconcile``  balances checked against the ledger and the open holds

Callers import from here (``from agentdeck.credits.services import credits_hold``).
"""

from agentdeck.credits.services.grants import credits_adjust, credits_grant, credits_refund
from agentdeck.credits.services.holds import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    HOLD_TURNS,
    HoldPlan,
    credit_hold_get,
    credits_hold,
    credits_settle,
    run_hold_plan,
)
from agentdeck.credits.services.ledger import credits_account
from agentdeck.credits.services.prices import (
    model_price_check_can_create,
    model_price_create,
    price_for,
    price_table,
    usage_cost,
)
from agentdeck.credits.services.reconcile import Discrepancy, credits_reconcile

__all__ = [
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "HOLD_TURNS",
    "Discrepancy",
    "HoldPlan",
    "credit_hold_get",
    "credits_account",
    "credits_adjust",
    "credits_grant",
    "credits_hold",
    "credits_reconcile",
    "credits_refund",
    "credits_settle",
    "model_price_check_can_create",
    "model_price_create",
    "price_for",
    "price_table",
    "run_hold_plan",
    "usage_cost",
]
