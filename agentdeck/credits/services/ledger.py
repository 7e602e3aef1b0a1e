"""A user's balance row and ledger: the primitives every credit change is built from. Each change
updates ``user_credits`` with a conditional UPDATE (the row lock serialises concurrent writers;
the WHERE clause is the invariant) and appends the ledger row in the same transaction, so balance
always equals the sum of the ledger; the owner hears of the new balance after commit."""

from __future__ import annotations

from typing import Any

from django.db import connection

from agentdeck.core.realtime import notify_user_on_commit
from agentdeck.credits.models import CreditTransaction, UserCredits
from agentdeck.credits.units import to_credits

Actor = CreditTransaction.Actor


def credits_account(*, user_id: Any) -> UserCredits:
    """The user's row, created on first need (never a 500 for a user without one)."""
    UserCredits.objects.bulk_create([UserCredits(user_id=user_id)], ignore_conflicts=True)
    return UserCredits.objects.get(user_id=user_id)


def balance_change(
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


def ledger_write(
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
    """The ledger row of a change, with the balance and reserve after it (``after``)."""
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


def balance_notify(user_id: Any, after: tuple[int, int]) -> None:
    """Tell the user their balance after a change (``credits.updated``, after commit)."""
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
