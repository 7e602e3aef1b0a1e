"""A run's credits: the hold placed when it starts and the settlement when it ends (capture what
it cost, release the rest). The hot path of every run, so each is one SQL statement
(``_HOLD_SQL``, ``_SETTLE_SQL``: data-modifying CTEs that write the rows the ORM would).

Races handled here:
* two runs holding at once: ``UPDATE ... SET reserved = reserved + h WHERE balance - reserved >= h``
  lets exactly as many through as the balance covers;
* a run settled twice (a task delivered twice, a reaper racing a worker): the hold is settled by
  an UPDATE ``WHERE status = 'open'``; the second waits for the first's row lock, then matches
  nothing and changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone

from agentdeck.core.lookups import PkLookup
from agentdeck.credits.exceptions import InsufficientCredits
from agentdeck.credits.models import CreditHold, UserCredits
from agentdeck.credits.services.ledger import balance_notify, credits_account
from agentdeck.credits.services.prices import price_table
from agentdeck.credits.units import TOKENS_PER_PRICE_UNIT, cost_of, to_credits

# A run's hold, read by its worker at the start of every run (agentdeck.core.lookups).
credit_hold_get = PkLookup(CreditHold)


@dataclass(frozen=True)
class HoldPlan:
    amount: int
    prices: dict[str, dict[str, int]]


DEFAULT_MAX_OUTPUT_TOKENS = 2048
HOLD_TURNS = 5  # the default cap covers this many full model turns


def run_hold_plan(*, agent: Any, input_chars: int, max_turns: int) -> HoldPlan:
    """What a run of ``agent`` reserves: its ``credit_cap``, or enough for ``min(max_turns, 5)``
    turns of (the input, roughly 4 characters a token, plus 2,000 tokens of context) in and
    (``max_output_tokens``, default 2,048) out at the model's price. Unpriced models hold 0."""
    prices = price_table(provider_kind=agent.provider.kind, model=agent.model)
    if not prices:
        return HoldPlan(amount=0, prices={})
    if agent.credit_cap is not None:
        return HoldPlan(amount=agent.credit_cap, prices=prices)
    price = prices[agent.model]
    max_out = int(
        (agent.model_settings or {}).get("max_output_tokens") or DEFAULT_MAX_OUTPUT_TOKENS
    )
    per_turn = cost_of(input_chars // 4 + 2000, price["input"]) + cost_of(max_out, price["output"])
    return HoldPlan(amount=per_turn * max(1, min(max_turns, HOLD_TURNS)), prices=prices)


# The statements name every column the models declare: Django sets no database defaults.
#
# Hold: the conditional UPDATE is the whole decision (see the module docstring); the hold row and
# its ledger line are inserted from its RETURNING, so they exist exactly when it matched.
_HOLD_SQL = """
    WITH account AS (
        UPDATE user_credits
           SET reserved = reserved + %(amount)s, updated_at = clock_timestamp()
         WHERE user_id = %(user_id)s AND balance - reserved >= %(amount)s
     RETURNING user_id, balance, reserved
    ), hold AS (
        INSERT INTO credit_holds
               (run_id, user_id, amount, captured, refunded, status, prices, created_at,
                settled_at)
        SELECT %(run_id)s::uuid, user_id, %(amount)s, 0, 0, 'open', %(prices)s::jsonb,
               %(now)s, NULL
          FROM account
    ), ledger AS (
        INSERT INTO credit_transactions
               (user_id, kind, amount, reserved_delta, balance_after, reserved_after, run_id,
                idempotency_key, actor, actor_id, reason, created_at)
        SELECT user_id, 'hold', 0, %(amount)s, balance, reserved, %(run_id)s::uuid,
               NULL, 'system', '', '', %(now)s
          FROM account
    )
    SELECT balance, reserved FROM account
"""

# What a run's usage costs at the prices kept in its hold: ``usage_cost`` in SQL, so that the
# settlement can price, capture and release in one statement. Each of uncached input, cached
# input and output is rounded up on its own, as ``cost_of`` does: ceil(n / d) is
# div(n, d) + (mod(n, d) > 0) in exact numeric arithmetic (div truncates towards zero, mod has
# the dividend's sign). A model without a price, or with an empty one, adds nothing (NULL).
# tests/credits/test_services.py checks it against ``usage_cost``.
_COST_SQL = """
    COALESCE((
        SELECT SUM(div(part.n, %(per)s) + (mod(part.n, %(per)s) > 0)::int)
          FROM jsonb_to_recordset(%(usage)s::jsonb)
               AS u(model text, uncached numeric, cached numeric, output numeric)
          JOIN jsonb_each({prices}) AS p(model, price) ON p.model = u.model
         CROSS JOIN LATERAL (VALUES (u.uncached * (p.price ->> 'input')::numeric),
                                    (u.cached * (p.price ->> 'cached_input')::numeric),
                                    (u.output * (p.price ->> 'output')::numeric)) AS part(n)
    ), 0)
"""

# Settle: the hold UPDATE ``WHERE status = 'open'`` takes the hold's row lock, so a second
# settlement (a task delivered twice, the reaper racing the worker) waits, re-reads the row,
# finds it settled and matches nothing: no balance change, no ledger line. One UPDATE of the
# balance does capture and release; the two ledger lines carry the balance after each step as
# the two UPDATEs of the previous version did (nothing else can change the row in between: this
# statement holds its lock). A line is written only for a non-zero step, capture first (ORDER BY
# gives the capture the smaller id); a hold of 0 touches neither balance nor ledger.
_SETTLE_SQL = """
    WITH hold AS (
        UPDATE credit_holds
           SET status = 'settled', settled_at = %(now)s,
               captured = LEAST(amount, {cost})
         WHERE run_id = %(run_id)s::uuid AND status = 'open'
     RETURNING user_id, amount, captured
    ), account AS (
        UPDATE user_credits AS c
           SET balance = c.balance - hold.captured, reserved = c.reserved - hold.amount,
               lifetime_spent = c.lifetime_spent + hold.captured,
               updated_at = clock_timestamp()
          FROM hold
         WHERE c.user_id = hold.user_id AND hold.amount > 0
     RETURNING c.user_id, c.balance, c.reserved, hold.captured,
               hold.amount - hold.captured AS released
    ), ledger AS (
        INSERT INTO credit_transactions
               (user_id, kind, amount, reserved_delta, balance_after, reserved_after, run_id,
                idempotency_key, actor, actor_id, reason, created_at)
        SELECT a.user_id, step.kind, step.amount, step.reserved_delta, a.balance,
               step.reserved_after, %(run_id)s::uuid, NULL, 'system', '', '', %(now)s
          FROM account AS a
         CROSS JOIN LATERAL (VALUES
                   (1, 'capture', -a.captured, -a.captured, a.reserved + a.released),
                   (2, 'release', 0, -a.released, a.reserved)
               ) AS step(seq, kind, amount, reserved_delta, reserved_after)
         WHERE step.reserved_delta <> 0
         ORDER BY step.seq
    )
    SELECT hold.user_id, hold.captured, account.balance, account.reserved
      FROM hold LEFT JOIN account ON true
""".format(cost=_COST_SQL.format(prices="credit_holds.prices"))  # noqa: S608 (constants only)


def _usage_rows(usage: dict[str, dict[str, int]]) -> str:
    """The usage as ``_COST_SQL`` reads it: per model, the token counts ``usage_cost`` prices."""
    rows = []
    for model, counts in (usage or {}).items():
        cached = counts.get("cached_input_tokens", 0)
        rows.append(
            {
                "model": model,
                "uncached": max(counts.get("input_tokens", 0) - cached, 0),
                "cached": cached,
                "output": counts.get("output_tokens", 0),
            }
        )
    return json.dumps(rows)


def _hold_once(*, user_id: Any, run_id: Any, plan: HoldPlan, now: Any) -> tuple[int, int] | None:
    with connection.cursor() as cursor:
        cursor.execute(
            _HOLD_SQL,
            {
                "user_id": user_id,
                "run_id": str(run_id),
                "amount": plan.amount,
                "prices": json.dumps(plan.prices),
                "now": now,
            },
        )
        row = cursor.fetchone()
    return (int(row[0]), int(row[1])) if row else None


def credits_hold(*, user_id: Any, run_id: Any, plan: HoldPlan) -> CreditHold | None:
    """Reserve ``plan.amount`` for a run, inside the caller's transaction (the one creating the
    run). Raises 402 ``insufficient_credits`` with what is available and what is needed. A run
    whose models have no price holds nothing and gets no hold row.

    1. One statement: the conditional UPDATE of the balance, the hold row, the ledger line.
    2. Only when it matched nothing, read the balance row; create it if the user has none (their
       first need: available 0) and, if it covers the hold after all (nothing was needed, or a
       concurrent settlement freed credits since), try once more.
    3. Still nothing: 402."""
    if plan.amount <= 0 and not plan.prices:
        return None
    now = timezone.now()
    after = _hold_once(user_id=user_id, run_id=run_id, plan=plan, now=now)
    if after is None:
        account = UserCredits.objects.filter(user_id=user_id).first() or credits_account(
            user_id=user_id
        )
        if account.available >= plan.amount:
            after = _hold_once(user_id=user_id, run_id=run_id, plan=plan, now=now)
            if after is None:
                account = credits_account(user_id=user_id)
    if after is None:
        raise InsufficientCredits(
            f"This run needs {to_credits(plan.amount)} credits; {to_credits(account.available)} are available.",
            extra={
                "available": account.available,
                "required": plan.amount,
                "available_credits": str(to_credits(account.available)),
                "required_credits": str(to_credits(plan.amount)),
            },
        )
    balance_notify(user_id, after)
    # The row as inserted, for callers that want it (no read back).
    hold = CreditHold(
        run_id=run_id, user_id=user_id, amount=plan.amount, prices=plan.prices, created_at=now
    )
    hold._state.adding, hold._state.db = False, connection.alias
    return hold


def credits_settle(*, run_id: Any, usage: dict[str, dict[str, int]]) -> int:
    """Capture what the run cost (at the prices held at its start, never more than the hold) and
    release the rest, in one statement (``_SETTLE_SQL``). Call inside the transaction that sets
    the run's final status. Returns the captured amount; settling an already settled run (or a
    run without a hold) changes nothing and returns 0."""
    with connection.cursor() as cursor:
        cursor.execute(
            _SETTLE_SQL,
            {
                "run_id": str(run_id),
                "usage": _usage_rows(usage),
                "per": TOKENS_PER_PRICE_UNIT,
                "now": timezone.now(),
            },
        )
        row = cursor.fetchone()
    if row is None:
        return 0
    user_id, captured, balance, reserved = row
    if balance is not None:  # a hold of 0 changes no balance: nothing to tell
        balance_notify(user_id, (int(balance), int(reserved)))
    return int(captured)
