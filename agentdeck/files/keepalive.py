"""An index with an expiry policy stays alive while it is used: an attach or a search moves its
``expires_at`` forward (``expires_after_days`` from now).

Below the services on purpose: the index services (attach, query) and the ``file_search`` tool
both keep an index alive, and the tool runs inside the agents runtime, which imports no service.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from agentdeck.files.models import VectorIndex

# A search writes at most once a minute per index, not once per search.
SEARCH_TOUCH_INTERVAL = timedelta(minutes=1)


def vector_index_touch(index: VectorIndex) -> None:
    """Mark ``index`` used now (one UPDATE), moving its expiry forward if it has a policy."""
    now = timezone.now()
    updates: dict[str, Any] = {"last_active_at": now}
    if index.expires_after_days:
        updates["expires_at"] = now + timedelta(days=index.expires_after_days)
    VectorIndex.objects.filter(pk=index.pk).update(**updates)


def vector_index_touch_after_search(index: VectorIndex) -> None:
    """:func:`vector_index_touch` for a search, skipped when ``index`` was used within the last
    ``SEARCH_TOUCH_INTERVAL``."""
    if timezone.now() - index.last_active_at > SEARCH_TOUCH_INTERVAL:
        vector_index_touch(index)
