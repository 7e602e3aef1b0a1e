from __future__ import annotations

import logging

from agentdeck.credits.services import credits_reconcile

logger = logging.getLogger(__name__)


def reconcile() -> int:
    found = credits_reconcile()
    for d in found:
        logger.error(
            "credits discrepancy: user %s %s is %s, expected %s",
            d.user_id,
            d.field,
            d.recorded,
            d.expected,
        )
    return len(found)
