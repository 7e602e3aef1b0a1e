"""``manage.py credits_reconcile``: every balance against its ledger, every reserved amount
against the ledger and the open holds. Prints each discrepancy; exits 1 when there is any.
Also scheduled daily on the queue (``agentdeck.core.schedules``)."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from agentdeck.credits.services import credits_reconcile


class Command(BaseCommand):
    help = "Check balances against the ledger and reserved credits against open holds."

    def handle(self, *args: Any, **options: Any) -> None:
        found = credits_reconcile()
        for d in found:
            self.stdout.write(f"user {d.user_id}: {d.field} is {d.recorded}, expected {d.expected}")
        if found:
            self.stderr.write(f"{len(found)} discrepancy(ies)")
            sys.exit(1)
        self.stdout.write("credits reconcile: no discrepancies")
