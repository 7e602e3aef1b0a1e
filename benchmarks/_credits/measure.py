"""One measurement (a side, a configuration, a repetition) with the exact checks of its effect, and
the final reconciliation.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import asdict
from typing import Any

from _support import (
    BenchError,
)

from .fixture import Fixture, per_worker, worker_users
from .workers import Job, Sample, run_workers


def balances(user_ids: list[str]) -> dict[str, tuple[int, int]]:
    from agentdeck.credits.models import UserCredits

    return {
        u.user_id: (u.balance, u.reserved)
        for u in UserCredits.objects.filter(user_id__in=set(user_ids))
    }


@contextlib.contextmanager
def publishing(enabled: bool):
    """--breakdown no_publish: credits_hold/credits_settle without their credits.updated."""
    from agentdeck.credits.services import ledger

    # balance_notify's one way out: every service module calls it, and it calls this.
    original = ledger.notify_user_on_commit
    if not enabled:
        ledger.notify_user_on_commit = lambda *args, **kwargs: None
    try:
        yield
    finally:
        ledger.notify_user_on_commit = original


def measure(args: argparse.Namespace, fixture: Fixture, config: str, rep: int, side: str) -> Sample:
    from agentdeck.credits.models import CreditHold, CreditTransaction

    users = worker_users(fixture, config, args.workers)
    counts = per_worker(args.settlements, args.workers)
    run_lists = fixture.runs.get((config, rep, side))
    jobs = [
        Job(
            side,
            users[w],
            run_lists[w] if run_lists else [],
            counts[w],
            fixture.plan,
            fixture.cost,
            args.worker_warmup,
        )
        for w in range(args.workers)
    ]
    before = balances(users)
    with publishing(side != "no_publish"):
        sample = run_workers(jobs, args.mode, args.timeout, fixture.postmaster)
    after = balances(users)
    # The exact effect on every row: `cost` spent per settlement, nothing left reserved.
    spent: dict[str, int] = {}
    for w, user_id in enumerate(users):
        spent[user_id] = spent.get(user_id, 0) + (counts[w] + args.worker_warmup) * fixture.cost
    for user_id, amount in spent.items():
        expected = (before[user_id][0] - amount, before[user_id][1])
        if after[user_id] != expected:
            raise BenchError(f"{side}/{config}: {user_id} is {after[user_id]}, want {expected}")
    if side == "baseline":
        # The bare UPDATEs wrote no ledger: account for them so reconciliation covers every row.
        CreditTransaction.objects.bulk_create(
            CreditTransaction(
                user_id=user_id,
                kind=CreditTransaction.Kind.ADJUSTMENT,
                amount=-amount,
                balance_after=after[user_id][0],
                reserved_after=after[user_id][1],
                actor=CreditTransaction.Actor.SYSTEM,
                reason=f"credits benchmark baseline ({config}, repetition {rep + 1})",
            )
            for user_id, amount in spent.items()
        )
    else:
        run_ids = [r for lst in run_lists for r in lst]
        settled = CreditHold.objects.filter(
            run_id__in=run_ids, status=CreditHold.Status.SETTLED, captured=fixture.cost
        ).count()
        if settled != len(run_ids):
            raise BenchError(f"{side}/{config}: {settled} of {len(run_ids)} holds settled")
        ledger = CreditTransaction.objects.filter(run_id__in=run_ids).count()
        if ledger != 3 * len(run_ids):
            raise BenchError(f"{side}/{config}: {ledger} ledger rows for {len(run_ids)} runs")
    return sample


def reconcile() -> dict[str, Any]:
    from agentdeck.credits.models import CreditHold, UserCredits
    from agentdeck.credits.services import credits_reconcile

    found = credits_reconcile()
    return {
        "discrepancies": [asdict(d) for d in found],
        "accounts": UserCredits.objects.count(),
        "reserved_nonzero": UserCredits.objects.exclude(reserved=0).count(),
        "open_holds": CreditHold.objects.filter(status=CreditHold.Status.OPEN).count(),
    }
