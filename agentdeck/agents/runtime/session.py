"""The OpenAI Agents SDK ``Session`` protocol on the Django ORM.

A conversation's history lives in ``ConversationItem`` rows at gapless positions
``0 .. Conversation.next_position - 1``. Every mutation locks the ``Conversation`` row first, so
writers (two workers, or a worker and an API request clearing the conversation) are serialised
by PostgreSQL: a batch lands at consecutive positions, nobody interleaves, and positions are never
reused or skipped. Readers take no lock; they see whole batches because a batch is one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from agents.memory import SessionSettings
from django.db import transaction
from django.utils import timezone
from pydantic import BaseModel

from agentdeck.agents.models import Conversation, ConversationItem
from agentdeck.core.db_threads import run_db as _run_db
from agentdeck.core.jsonsafe import pg_json_safe

if TYPE_CHECKING:
    from agents import TResponseInputItem

__all__ = ["DjangoSession"]

_T = TypeVar("_T")


class DjangoSession:
    """Conversation history for the Agents SDK, stored in ``conversation_items``.

    ``DjangoSession(conversation_id, run_id=run.id)`` is passed as ``session=`` to
    ``Runner.run``; items it adds are tagged with ``run_id`` so a conversation's history can be
    traced back to the run that produced it. The conversation must exist; the mutating methods
    raise ``Conversation.DoesNotExist`` otherwise.

    The methods are coroutines that run the (synchronous) ORM work through ``sync_to_async``, so
    they can be awaited from a running event loop such as the worker's ``asyncio.run``.
    """

    session_id: str
    session_settings: SessionSettings | None

    def __init__(
        self,
        conversation_id: UUID | str,
        *,
        run_id: UUID | str | None = None,
        session_settings: SessionSettings | Mapping[str, Any] | None = None,
    ) -> None:
        self.conversation_id = conversation_id
        self.run_id = run_id
        self.session_id = str(conversation_id)
        # Same default as the SDK's SQLiteSession: a settings object with no limit.
        if session_settings is None:
            session_settings = SessionSettings()
        elif isinstance(session_settings, Mapping):
            session_settings = SessionSettings(**session_settings)
        self.session_settings = session_settings

    def __repr__(self) -> str:
        return f"DjangoSession(conversation_id={self.session_id!r}, run_id={self.run_id!r})"

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The latest ``limit`` items in chronological order (all when no limit applies).

        ``limit=None`` falls back to ``session_settings.limit``, as the SDK's own sessions do.
        """
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        return await _run_db(self._get_items_sync, limit)

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` at consecutive positions after the current last item."""
        if not items:
            return
        # Serialise on the caller's side: a non-JSON item fails here, before any lock is taken.
        data = [_to_json(item) for item in items]
        await _await_outcome(_run_db(self._add_items_sync, data))

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the last item, or ``None`` when the conversation is empty."""
        return await _await_outcome(_run_db(self._pop_item_sync))

    async def clear_session(self) -> None:
        """Delete every item and start positions again from 0."""
        await _await_outcome(_run_db(self._clear_session_sync))

    # --- synchronous ORM work (runs in sync_to_async's thread) ---------------------------------

    def _get_items_sync(self, limit: int | None) -> list[TResponseInputItem]:
        rows = ConversationItem.objects.filter(conversation_id=self.conversation_id)
        if limit is None:
            return list(rows.order_by("position").values_list("data", flat=True))
        if limit <= 0:
            # PostgreSQL rejects a negative LIMIT and Django negative slices; "at most 0" is empty.
            return []
        # Newest first so the (conversation, position) unique index serves "the last N",
        # then flipped back to chronological order.
        latest = list(rows.order_by("-position").values_list("data", flat=True)[:limit])
        latest.reverse()
        return latest

    def _add_items_sync(self, data: list[Any]) -> None:
        with transaction.atomic():
            start = self._lock_conversation()
            ConversationItem.objects.bulk_create(
                ConversationItem(
                    conversation_id=self.conversation_id,
                    position=start + offset,
                    data=item,
                    run_id=self.run_id,
                )
                for offset, item in enumerate(data)
            )
            self._set_next_position(start + len(data))

    def _pop_item_sync(self) -> TResponseInputItem | None:
        with transaction.atomic():
            self._lock_conversation()
            last = (
                ConversationItem.objects.filter(conversation_id=self.conversation_id)
                .order_by("-position")
                .only("id", "position", "data")
                .first()
            )
            if last is None:
                return None
            ConversationItem.objects.filter(pk=last.pk).delete()
            # The popped position is handed out again by the next add: positions stay gapless.
            self._set_next_position(last.position)
            item: TResponseInputItem = last.data
            return item

    def _clear_session_sync(self) -> None:
        with transaction.atomic():
            self._lock_conversation()
            ConversationItem.objects.filter(conversation_id=self.conversation_id).delete()
            self._set_next_position(0)

    def _lock_conversation(self) -> int:
        """Lock the conversation row until the transaction ends; return ``next_position``.

        FOR NO KEY UPDATE still excludes every other writer of this conversation, but unlike
        FOR UPDATE it does not block inserts that merely reference the row (a new run, say).
        """
        return (
            Conversation.objects.select_for_update(no_key=True)
            .values_list("next_position", flat=True)
            .get(pk=self.conversation_id)
        )

    def _set_next_position(self, position: int) -> None:
        Conversation.objects.filter(pk=self.conversation_id).update(
            next_position=position, updated_at=timezone.now()
        )


def _to_json(value: Any) -> Any:
    """``value`` as plain JSON data. Input items are normally dicts already; a pydantic object
    that slipped in (an SDK output item, say) is dumped the way the SDK turns output items into
    input items, so what is read back is what the model API accepts as input."""
    if isinstance(value, BaseModel):
        return pg_json_safe(value.model_dump(mode="json", exclude_unset=True))
    if isinstance(value, str):
        return pg_json_safe(value)
    if isinstance(value, Mapping):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(item) for item in value]
    return value


async def _await_outcome(awaitable: Awaitable[_T]) -> _T:
    """Await a mutation to its end even if the caller is cancelled meanwhile.

    A thread cannot be interrupted: when the awaiting task is cancelled, the transaction still
    commits or rolls back. Raising CancelledError before that would leave the caller unsure
    whether the write happened (and lose a popped item), so wait for the outcome first, then
    re-raise the cancellation, as the SDK's own sessions do.
    """
    task = asyncio.ensure_future(awaitable)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            cancelled = cancelled or exc
    if cancelled is not None:
        # The outcome (result or error) is settled in the database; cancellation wins.
        if not task.cancelled():
            task.exception()  # mark retrieved, so asyncio does not log it as unhandled
        raise cancelled
    return task.result()
