"""Files: upload (deduplicated by content), delete, reprocess."""

from __future__ import annotations

import hashlib
from typing import Any, cast

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from agentdeck.accounts.models import User
from agentdeck.core.exceptions import Conflict
from agentdeck.files.exceptions import (
    FileRejected,
    FileTooLarge,
    InvalidFile,
    UnsupportedMediaType,
)
from agentdeck.files.models import FileMetadata, VectorIndex, VectorIndexFile
from agentdeck.files.parsing import detect_type, sanitize_filename
from agentdeck.files.services import dispatch
from agentdeck.files.services.attachments import vector_index_attach
from agentdeck.files.services.indices import _check_index_owner, vector_index_refresh


def file_upload(
    *,
    owner: User,
    name: str,
    data: bytes,
    declared_type: str | None = None,
    vector_indices: list[VectorIndex] | None = None,
    attributes: dict[str, Any] | None = None,
) -> tuple[FileMetadata, bool]:
    """Store an upload; returns (file, created).

    1. Refuse what is too big (413), empty (400 ``empty_file``) or not an allowed type by its
       content (415): the name and the declared type are only hints.
    2. The same bytes from the same user are the same file: the existing row is returned (and
       attached to any indices asked for); a concurrent twin upload loses the unique race and
       returns the winner.
    3. Store the bytes under the row's id, insert the row, queue processing after commit.
    """
    if len(data) > settings.FILE_UPLOAD_MAX_BYTES:
        raise FileTooLarge(
            f"The file has {len(data)} bytes; the limit is {settings.FILE_UPLOAD_MAX_BYTES}.",
            extra={"max_bytes": settings.FILE_UPLOAD_MAX_BYTES},
        )
    try:
        mime = detect_type(data, name, declared_type)
    except FileRejected as e:
        if e.code == "unsupported_media_type":
            raise UnsupportedMediaType(e.message) from None
        raise InvalidFile(e.message, code=e.code) from None
    for index in vector_indices or []:
        _check_index_owner(index, owner)
    sha256 = hashlib.sha256(data).hexdigest()
    existing = FileMetadata.objects.filter(owner=owner, sha256=sha256).first()
    if existing is not None:
        return _existing_upload(existing, vector_indices, attributes), False

    file = FileMetadata(owner=owner, name=sanitize_filename(name), size=len(data), sha256=sha256)
    file.mime_type = mime
    # Bytes first: a row never points at missing content. If the insert fails they are removed.
    file.content.save(file.name, ContentFile(data), save=False)
    try:
        with transaction.atomic():
            file.save(force_insert=True)
            for index in vector_indices or []:
                VectorIndexFile.objects.create(index=index, file=file, attributes=attributes or {})
                vector_index_refresh(index.pk)
            transaction.on_commit(lambda: dispatch.file_processing_enqueue(file.id))
    except IntegrityError:
        file.content.storage.delete(cast(str, file.content.name))  # saved: it has a name
        existing = FileMetadata.objects.filter(owner=owner, sha256=sha256).first()
        if existing is None:
            raise
        return _existing_upload(existing, vector_indices, attributes), False
    return file, True


def _existing_upload(
    file: FileMetadata, indices: list[VectorIndex] | None, attributes: dict[str, Any] | None
) -> FileMetadata:
    """A re-upload of ``file``: attach it where this upload asked, nothing else."""
    for index in indices or []:
        vector_index_attach(index=index, file=file, attributes=attributes)
    return file


def file_delete(*, file: FileMetadata) -> None:
    """Remove the row, its chunks in every index and, after commit, its stored bytes. A worker
    processing it notices at its next heartbeat and stops."""
    storage, stored_name = file.content.storage, cast(str, file.content.name)
    with transaction.atomic():
        index_ids = list(
            VectorIndexFile.objects.filter(file=file).values_list("index_id", flat=True)
        )
        file.delete()
        for index_id in index_ids:
            vector_index_refresh(index_id)
        transaction.on_commit(lambda: storage.delete(stored_name))


@transaction.atomic
def file_reprocess(*, file: FileMetadata) -> FileMetadata:
    """Parse again and re-embed into every attached index. Idempotent: each index's chunks for
    this file are replaced as a whole."""
    file = FileMetadata.objects.select_for_update().get(pk=file.pk)
    if file.claimed_by is not None:
        raise Conflict("The file is being processed right now.", code="file_busy")
    VectorIndexFile.objects.filter(file=file).update(
        status=VectorIndexFile.Status.QUEUED, error_code="", error_message=""
    )
    FileMetadata.objects.filter(pk=file.pk).update(
        status=FileMetadata.Status.PROCESSING,
        parsed_at=None,
        attempts=0,
        progress=0,
        error_code="",
        error_message="",
        updated_at=timezone.now(),
    )
    transaction.on_commit(lambda: dispatch.file_processing_enqueue(file.pk))
    file.refresh_from_db()
    return file
