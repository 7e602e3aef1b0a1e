"""One settlement of each side: agentdeck's services, the bare UPDATEs of the baseline, and the
statements the services sent before issue #6.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from _support import (
    BenchError,
)

from .config import (
    CAPTURE_SQL,
    HOLD_SQL,
    USAGE,
)


def settle_once(
    user_id: str, run_id: str, plan: Any, cost: int, run_transactions: bool = True
) -> None:
    """agentdeck: the hold at run start and the settlement at run end, each its transaction
    (``run_transactions=False``, --breakdown own_statements: each statement on its own)."""
    from django.db import transaction

    from agentdeck.credits.services import credits_hold, credits_settle

    around = transaction.atomic if run_transactions else contextlib.nullcontext
    with around():  # run start
        credits_hold(user_id=user_id, run_id=run_id, plan=plan)
    with around():  # run end
        captured = credits_settle(run_id=run_id, usage=USAGE)
    if captured != cost:
        raise BenchError(f"run {run_id} captured {captured}, expected {cost}")


def bare_once(cursor: Any, user_id: str, hold: int, cost: int) -> None:
    """baseline: two conditional single-row UPDATEs, each its own (autocommit) transaction."""
    cursor.execute(HOLD_SQL, [hold, user_id, hold])
    if cursor.rowcount != 1:
        raise BenchError(f"baseline hold for {user_id} updated {cursor.rowcount} rows")
    cursor.execute(CAPTURE_SQL, [cost, hold, user_id, hold])
    if cursor.rowcount != 1:
        raise BenchError(f"baseline capture for {user_id} updated {cursor.rowcount} rows")


APPLY_SQL = """
    UPDATE user_credits
       SET balance = balance + %s, reserved = reserved + %s,
           lifetime_granted = lifetime_granted + %s, lifetime_spent = lifetime_spent + %s,
           updated_at = clock_timestamp()
     WHERE user_id = %s {condition}
 RETURNING balance, reserved
"""
LEDGER_SQL = """
    INSERT INTO credit_transactions (user_id, kind, amount, reserved_delta, balance_after,
           reserved_after, run_id, idempotency_key, actor, actor_id, reason, created_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, 'system', '', '', %s) RETURNING id
"""


def service_sql_once(cursor: Any, user_id: str, run_id: str, plan: Any, cost: int) -> None:
    """--breakdown service_sql: the statements credits_hold and credits_settle sent before
    issue #6 (ORM, 11 per settlement), by hand."""
    from django.db import transaction
    from django.utils import timezone

    from agentdeck.credits.services import usage_cost

    hold = plan.amount
    with transaction.atomic():
        cursor.execute(
            "INSERT INTO user_credits (user_id, balance, reserved, lifetime_granted,"
            " lifetime_spent, updated_at) VALUES (%s, 0, 0, 0, 0, %s) ON CONFLICT DO NOTHING",
            [user_id, timezone.now()],
        )
        cursor.execute(
            "SELECT user_id, balance, reserved, lifetime_granted, lifetime_spent, updated_at"
            " FROM user_credits WHERE user_id = %s LIMIT 21",
            [user_id],
        )
        cursor.fetchall()
        cursor.execute(
            APPLY_SQL.format(condition="AND balance - reserved >= %s"),
            [0, hold, 0, 0, user_id, hold],
        )
        after = cursor.fetchone()
        if after is None:
            raise BenchError(f"service_sql: no cover for {user_id}")
        cursor.execute(
            "INSERT INTO credit_holds (run_id, user_id, amount, captured, refunded, status,"
            " prices, created_at, settled_at) VALUES (%s, %s, %s, 0, 0, 'open', %s::jsonb, %s,"
            " NULL)",
            [run_id, user_id, hold, json.dumps(plan.prices), timezone.now()],
        )
        cursor.execute(
            LEDGER_SQL, [user_id, "hold", 0, hold, after[0], after[1], run_id, timezone.now()]
        )
    with transaction.atomic():
        cursor.execute(
            "SELECT run_id, user_id, amount, captured, refunded, status, prices, created_at,"
            " settled_at FROM credit_holds WHERE run_id = %s AND status = 'open'"
            " ORDER BY run_id ASC LIMIT 1 FOR UPDATE",
            [run_id],
        )
        row = cursor.fetchone()
        prices = row[6] if isinstance(row[6], dict) else json.loads(row[6])
        captured = min(usage_cost(USAGE, prices), row[2])
        cursor.execute(APPLY_SQL.format(condition=""), [-captured, -captured, 0, captured, user_id])
        after = cursor.fetchone()
        cursor.execute(
            LEDGER_SQL,
            [user_id, "capture", -captured, -captured, *after, run_id, timezone.now()],
        )
        release = row[2] - captured
        cursor.execute(APPLY_SQL.format(condition=""), [0, -release, 0, 0, user_id])
        after = cursor.fetchone()
        cursor.execute(
            LEDGER_SQL, [user_id, "release", 0, -release, *after, run_id, timezone.now()]
        )
        cursor.execute(
            "UPDATE credit_holds SET captured = %s, status = 'settled', settled_at = %s"
            " WHERE run_id = %s",
            [captured, timezone.now(), run_id],
        )
    if captured != cost:
        raise BenchError(f"run {run_id} captured {captured}, expected {cost}")
