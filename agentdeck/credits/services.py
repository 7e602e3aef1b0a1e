"""Every change to credits. Each one updates ``user_credits`` with a conditional UPDATE (the row
lock serialises concurrent writers; the WHERE clause is the invariant) and appends the ledger
row in the same transaction, so balance always equals the sum of the ledger.

A run's hold and settlement, the hot path, are one SQL statement each (``_HOLD_SQL``,
``_SETTLE_SQL``: data-modifying CTEs that write the same rows the ORM did); grants, adjustments
and refunds, which are rare, use the ORM.

Races handled here:
* two runs holding at once: ``UPDATE ... SET reserved = reserved + h WHERE balance - reserved >= h``
  lets exactly as many through as the balance covers;
* a grant retried by Next.js: the (user, idempotency key) unique index makes the second insert
  fail, and the retry returns the first transaction;
* a run settled twice (a task delivered twice, a reaper racing a worker): the hold is settled by
  an UPDATE ``WHERE status = 'open'``; the second waits for the first's row lock, then matches
  nothing and changes nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from agentdeck.accounts.models import User
from agentdeck.core.lookups import PkLookup
from agentdeck.core.realtime import notify_user_on_commit
from agentdeck.credits.exceptions import (
    CreditsIdempotencyConflict,
    InsufficientCredits,
    InvalidAmount,
    NothingToRefund,
)
from agentdeck.credits.models import CreditHold, CreditTransaction, ModelPrice, UserCredits
from agentdeck.credits.units import (
    MAX_GRANT_MICROS,
    MAX_PRICE_PER_MILLION,
    MAX_REASON_CHARS,
    TOKENS_PER_PRICE_UNIT,
    cost_of,
    to_credits,
)

logger = logging.getLogger(__name__)
Kind = CreditTransaction.Kind
Actor = CreditTransaction.Actor


def credits_account(*, user_id: Any) -> UserCredits:
    """The user's row, created on first need (never a 500 for a user without one)."""
    UserCredits.objects.bulk_create([UserCredits(user_id=user_id)], ignore_conflicts=True)
    return UserCredits.objects.get(user_id=user_id)


def _apply(
    *,
    user_id: Any,
    amount: int,
    reserved_delta: int,
    require_available: int | None = None,
    spent: int = 0,
    granted: int = 0,
) -> tuple[int, int] | None:
    """Change one user's row atomically; None when the condition (enough available) fails.
    Must run inside the caller's transaction."""
    condition = "AND balance - reserved >= %s" if require_available is not None else ""
    params: list[Any] = [amount, reserved_delta, granted, spent, user_id]
    if require_available is not None:
        params.append(require_available)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE user_credits
               SET balance = balance + %s, reserved = reserved + %s,
                   lifetime_granted = lifetime_granted + %s, lifetime_spent = lifetime_spent + %s,
                   updated_at = clock_timestamp()
             WHERE user_id = %s {condition}
         RETURNING balance, reserved
            """,  # noqa: S608 (condition is one of two constants, values are parameters)
            params,
        )
        row = cursor.fetchone()
    return (int(row[0]), int(row[1])) if row else None


def _record(
    *,
    user_id: Any,
    kind: str,
    amount: int,
    reserved_delta: int,
    after: tuple[int, int],
    run_id: Any = None,
    idempotency_key: str | None = None,
    actor: str = Actor.SYSTEM,
    actor_id: str = "",
    reason: str = "",
) -> CreditTransaction:
    return CreditTransaction.objects.create(
        user_id=user_id,
        kind=kind,
        amount=amount,
        reserved_delta=reserved_delta,
        balance_after=after[0],
        reserved_after=after[1],
        run_id=run_id,
        idempotency_key=idempotency_key,
        actor=actor,
        actor_id=actor_id,
        reason=reason,
    )


def _notify(user_id: Any, after: tuple[int, int]) -> None:
    notify_user_on_commit(
        user_id,
        "credits.updated",
        {
            "balance": after[0],
            "reserved": after[1],
            "available": after[0] - after[1],
            "balance_credits": str(to_credits(after[0])),
            "available_credits": str(to_credits(after[0] - after[1])),
        },
    )


def credits_grant(
    *,
    user: User,
    amount: int,
    idempotency_key: str | None = None,
    kind: str = Kind.GRANT,
    actor: str = Actor.SERVICE,
    actor_id: str = "",
    reason: str = "",
) -> tuple[CreditTransaction, bool]:
    """Add credits (a grant, or a purchase paid on the Next.js side). Idempotent by key:
    the same key and amount returns the first transaction (created=False); another amount 409."""
    if not 0 < amount <= MAX_GRANT_MICROS:
        raise InvalidAmount(f"A grant must be a positive amount of at most {MAX_GRANT_MICROS}.")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidAmount(
            f"A reason has at most {MAX_REASON_CHARS} characters.", code="invalid_reason"
        )
    if kind not in (Kind.GRANT, Kind.PURCHASE):
        raise InvalidAmount("kind must be grant or purchase.", code="invalid_kind")
    if idempotency_key:
        existing = CreditTransaction.objects.filter(
            user=user, idempotency_key=idempotency_key
        ).first()
        if existing is not None:
            return _same_grant(existing, amount), False
    credits_account(user_id=user.pk)
    try:
        with transaction.atomic():
            after = _apply(user_id=user.pk, amount=amount, reserved_delta=0, granted=amount)
            assert after is not None
            tx = _record(
                user_id=user.pk,
                kind=kind,
                amount=amount,
                reserved_delta=0,
                after=after,
                idempotency_key=idempotency_key,
                actor=actor,
                actor_id=actor_id,
                reason=reason,
            )
            _notify(user.pk, after)
    except IntegrityError:
        existing = CreditTransaction.objects.filter(
            user=user, idempotency_key=idempotency_key
        ).first()
        if existing is None:
            raise
        return _same_grant(existing, amount), False
    return tx, True


def _same_grant(existing: CreditTransaction, amount: int) -> CreditTransaction:
    if existing.amount != amount:
        raise CreditsIdempotencyConflict(
            f"This idempotency key was used for {existing.amount}, not {amount}.",
            extra={"transaction_id": existing.pk},
        )
    return existing


@transaction.atomic
def credits_adjust(*, user: User, amount: int, staff: User, reason: str) -> CreditTransaction:
    """A staff correction, up or down, with a reason. It cannot take the balance below what
    runs in flight hold."""
    if amount == 0:
        raise InvalidAmount("An adjustment must change the balance.")
    if abs(amount) > MAX_GRANT_MICROS:
        raise InvalidAmount(f"An adjustment is at most {MAX_GRANT_MICROS} either way.")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidAmount(
            f"A reason has at most {MAX_REASON_CHARS} characters.", code="invalid_reason"
        )
    if not reason.strip():
        raise InvalidAmount("An adjustment needs a reason.", code="reason_required")
    credits_account(user_id=user.pk)
    after = _apply(
        user_id=user.pk,
        amount=amount,
        reserved_delta=0,
        granted=max(amount, 0),
        require_available=max(-amount, 0),
    )
    if after is None:
        raise InsufficientCredits("The adjustment would take the balance below what is available.")
    tx = _record(
        user_id=user.pk,
        kind=Kind.ADJUSTMENT,
        amount=amount,
        reserved_delta=0,
        after=after,
        actor=Actor.STAFF,
        actor_id=str(staff.pk),
        reason=reason,
    )
    _notify(user.pk, after)
    return tx


# --- prices and run holds ----------------------------------------------------------------------------


def price_for(*, provider_kind: str, model: str, at=None) -> ModelPrice | None:
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
    return (exact or candidates or [None])[0]


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


# A run's hold, read by its worker at the start of every run (agentdeck.core.lookups).
credit_hold_get = PkLookup(CreditHold)


@dataclass(frozen=True)
class HoldPlan:
    amount: int
    prices: dict[str, dict[str, int]]


# The hot path of every run, one statement each (benchmarks/RESULTS.md, credits.py: the ORM
# version sent 9 statements for the pair and spent ~4 ms of worker CPU on them). The columns are
# those the models declare; Django sets no database defaults, so every column is given here.
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
    _notify(user_id, after)
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
        _notify(user_id, (int(balance), int(reserved)))
    return int(captured)


@transaction.atomic
def credits_refund(
    *, run_id: Any, staff: User, reason: str, amount: int | None = None
) -> CreditTransaction:
    """Give back what a run cost (all of it by default). 409 when the run captured nothing or
    everything captured was already refunded."""
    hold = CreditHold.objects.select_for_update().filter(run_id=run_id).first()
    if hold is None or hold.status != CreditHold.Status.SETTLED or hold.captured == 0:
        raise NothingToRefund("This run was never charged.")
    refundable = hold.captured - hold.refunded
    amount = refundable if amount is None else amount
    if amount <= 0 or amount > refundable:
        raise NothingToRefund(
            f"At most {refundable} can be refunded for this run.", extra={"refundable": refundable}
        )
    after = _apply(user_id=hold.user_id, amount=amount, reserved_delta=0, spent=-amount)
    assert after is not None
    hold.refunded += amount
    hold.save(update_fields=["refunded"])
    tx = _record(
        user_id=hold.user_id,
        kind=Kind.REFUND,
        amount=amount,
        reserved_delta=0,
        after=after,
        run_id=run_id,
        actor=Actor.STAFF,
        actor_id=str(staff.pk),
        reason=reason,
    )
    _notify(hold.user_id, after)
    return tx


# --- reconciliation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Discrepancy:
    user_id: str
    field: str
    recorded: int
    expected: int


def credits_reconcile() -> list[Discrepancy]:
    """Every user's balance against the sum of their ledger, and reserved against both the
    ledger and their open holds. Read in one REPEATABLE READ snapshot so concurrent writers
    cannot make a consistent state look inconsistent."""
    fresh = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if fresh:  # inside a caller's transaction (as in tests) the snapshot is the caller's
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute("""
                SELECT c.user_id, c.balance, c.reserved,
                       COALESCE(l.amount, 0), COALESCE(l.reserved, 0), COALESCE(h.open, 0)
                  FROM user_credits c
             LEFT JOIN (SELECT user_id, SUM(amount) AS amount, SUM(reserved_delta) AS reserved
                          FROM credit_transactions GROUP BY user_id) l ON l.user_id = c.user_id
             LEFT JOIN (SELECT user_id, SUM(amount) AS open FROM credit_holds WHERE status = 'open'
                         GROUP BY user_id) h ON h.user_id = c.user_id
            """)
        rows = cursor.fetchall()
    found = []
    for user_id, balance, reserved, ledger_balance, ledger_reserved, open_holds in rows:
        if balance != ledger_balance:
            found.append(Discrepancy(user_id, "balance", balance, int(ledger_balance)))
        if reserved != ledger_reserved:
            found.append(Discrepancy(user_id, "reserved_vs_ledger", reserved, int(ledger_reserved)))
        if reserved != open_holds:
            found.append(Discrepancy(user_id, "reserved_vs_open_holds", reserved, int(open_holds)))
    return found


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


def model_price_create(
    *,
    provider_kind: str,
    model: str,
    input_per_million: int,
    cached_input_per_million: int,
    output_per_million: int,
    effective_from,
) -> ModelPrice:
    from agentdeck.core.exceptions import Conflict

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
