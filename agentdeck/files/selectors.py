"""Reads of files and vector indices: what a user may see, and ids resolved to their rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet

from agentdeck.accounts.models import User
from agentdeck.agents.models import Provider
from agentdeck.agents.selectors import providers_visible_to, rows_by_ids
from agentdeck.core.permissions import scope_to_owner
from agentdeck.files.exceptions import InvalidIndex
from agentdeck.files.models import FileMetadata, VectorIndex, VectorIndexFile


def files_visible_to(user: User) -> QuerySet[FileMetadata]:
    # The extracted text can be megabytes; no API answer shows it.
    return scope_to_owner(FileMetadata.objects.all(), user).defer("text")


def vector_indices_visible_to(user: User) -> QuerySet[VectorIndex]:
    return scope_to_owner(VectorIndex.objects.all(), user)


def vector_indices_by_id(*, user: User, ids: Sequence[Any]) -> tuple[list[VectorIndex], list[str]]:
    """The indices ``user`` may use with these ids, in the order asked, and the ids not found:
    for an agent's ``vector_index_ids`` and an upload's."""
    return rows_by_ids(vector_indices_visible_to(user), ids)


def vector_indices_searchable(*, ids: Sequence[Any]) -> QuerySet[VectorIndex]:
    """The indices with these ids that can still be searched: an index deleted since an agent
    version listed it, or expired (its chunks are gone), is left out. No owner check: the ids
    come from a version snapshot, checked when the version was made (the ``file_search`` tool)."""
    return VectorIndex.objects.filter(pk__in=ids).exclude(status=VectorIndex.Status.EXPIRED)


def vector_index_provider(*, user: User, provider_id: Any) -> Provider | None:
    """The provider a new index embeds with: None when none is named, 400 ``invalid_provider``
    when ``user`` may not use it."""
    if not provider_id:
        return None
    provider = providers_visible_to(user).filter(pk=provider_id).first()
    if provider is None:
        raise InvalidIndex("Unknown provider.", code="invalid_provider")
    return provider


def vector_index_attachment_list(*, index: VectorIndex) -> QuerySet[VectorIndexFile]:
    """The index's files, newest first, with the file's name and status (not its text)."""
    return (
        index.attachments.select_related("file").order_by("-created_at", "-id").defer("file__text")
    )


def vector_index_attachment_get(*, attachment_id: Any) -> VectorIndexFile:
    """An attachment as the API shows it, with its file as it stands (not its text)."""
    return VectorIndexFile.objects.select_related("file").defer("file__text").get(pk=attachment_id)
