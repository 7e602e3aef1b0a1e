"""Reconciliation: every balance checked against its ledger and open holds (a periodic task,
``agentdeck.credits.tasks.reconcile``)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction


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
