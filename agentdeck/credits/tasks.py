from __future__ import annotations

import logging

from agentdeck.core import realtime
from agentdeck.credits.services import credits_reconcile

logger = logging.getLogger(__name__)


def reconcile() -> int:
    try:
        found = credits_reconcile()
    finally:
        # Like every task's end (agentdeck.agents.tasks): let queued realtime messages leave.
        realtime.flush()
    for d in found:
        logger.error(
            "credits discrepancy: user %s %s is %s, expected %s",
            d.user_id,
            d.field,
            d.recorded,
            d.expected,
        )
    return len(found)
