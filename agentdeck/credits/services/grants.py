"""Credits given and taken outside runs: grants and purchases (from Next.js), staff adjustments
and refunds. They are rare, so they use the ORM.

Race handled here: a grant retried by Next.js: the (user, idempotency key) unique index makes the
second insert fail, and the retry returns the first transaction.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from agentdeck.accounts.models import User
from agentdeck.credits.exceptions import (
    CreditsIdempotencyConflict,
    InsufficientCredits,
    InvalidAmount,
    NothingToRefund,
)
from agentdeck.credits.models import CreditHold, CreditTransaction
from agentdeck.credits.services.ledger import (
    balance_change,
    balance_notify,
    credits_account,
    ledger_write,
)
from agentdeck.credits.units import MAX_GRANT_MICROS, MAX_REASON_CHARS

Kind = CreditTransaction.Kind
Actor = CreditTransaction.Actor


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
            after = balance_change(user_id=user.pk, amount=amount, reserved_delta=0, granted=amount)
            assert after is not None
            tx = ledger_write(
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
            balance_notify(user.pk, after)
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
    after = balance_change(
        user_id=user.pk,
        amount=amount,
        reserved_delta=0,
        granted=max(amount, 0),
        require_available=max(-amount, 0),
    )
    if after is None:
        raise InsufficientCredits("The adjustment would take the balance below what is available.")
    tx = ledger_write(
        user_id=user.pk,
        kind=Kind.ADJUSTMENT,
        amount=amount,
        reserved_delta=0,
        after=after,
        actor=Actor.STAFF,
        actor_id=str(staff.pk),
        reason=reason,
    )
    balance_notify(user.pk, after)
    return tx


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
    after = balance_change(user_id=hold.user_id, amount=amount, reserved_delta=0, spent=-amount)
    assert after is not None
    hold.refunded += amount
    hold.save(update_fields=["refunded"])
    tx = ledger_write(
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
    balance_notify(hold.user_id, after)
    return tx
