"""A file in a vector index: attach (embed, or copy another index's chunks) and detach."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from agentdeck.core.exceptions import Conflict
from agentdeck.core.jsonshape import shape_errors_as
from agentdeck.files.attributes import check_attributes
from agentdeck.files.exceptions import InvalidIndex
from agentdeck.files.keepalive import vector_index_touch
from agentdeck.files.models import FileMetadata, VectorIndex, VectorIndexFile
from agentdeck.files.services import dispatch
from agentdeck.files.services.indices import vector_index_refresh


def vector_index_attach(
    *,
    index: VectorIndex,
    file: FileMetadata,
    attributes: dict[str, Any] | None = None,
    copy_from: VectorIndex | None = None,
) -> tuple[VectorIndexFile, bool]:
    """Attach a file to an index and queue its embedding; returns (attachment, created).

    ``created`` is the answer of the insert itself (``get_or_create`` under the unique
    (index, file) constraint), not of a look beforehand: of two concurrent attaches of the same
    file, exactly one says it created the attachment (tests/files/test_files_api.py).

    The file row is locked so this cannot interleave with a worker finishing the file: either
    the worker's last look (under the same lock) sees the new attachment, or the file is free
    and this queues a task for it.

    ``copy_from``: another index that already holds this file's chunks with the same embedding
    model, dimensions and chunking; its chunks and vectors are copied in this transaction and
    nothing is embedded again. Vectors of another model or size would be meaningless here:
    409 ``embedding_dimensions_mismatch`` / ``embedding_model_mismatch`` / ``chunking_mismatch``.
    """
    from agentdeck.core.exceptions import NotFound

    if index.owner_id != file.owner_id:
        raise NotFound("File not found.")
    if index.status == VectorIndex.Status.EXPIRED:
        raise Conflict("This vector index has expired.", code="vector_index_expired")
    _check_attributes(attributes)
    if copy_from is not None:
        return _attach_by_copy(index=index, file=file, source=copy_from, attributes=attributes)
    with transaction.atomic():
        locked = FileMetadata.objects.select_for_update().get(pk=file.pk)
        attachment, created = VectorIndexFile.objects.get_or_create(
            index=index, file=locked, defaults={"attributes": attributes or {}}
        )
        if not created:
            if attributes is not None and attributes != attachment.attributes:
                attachment.attributes = attributes
                attachment.save(update_fields=["attributes"])
            return attachment, False
        if locked.claimed_by is None and locked.status != FileMetadata.Status.UPLOADED:
            FileMetadata.objects.filter(pk=locked.pk).update(
                status=FileMetadata.Status.PROCESSING,
                attempts=0,
                progress=0,
                error_code="",
                error_message="",
                updated_at=timezone.now(),
            )
            transaction.on_commit(lambda: dispatch.file_processing_enqueue(locked.pk))
        vector_index_touch(index)
        vector_index_refresh(index.pk)
    return attachment, True


def _attach_by_copy(
    *,
    index: VectorIndex,
    file: FileMetadata,
    source: VectorIndex,
    attributes: dict[str, Any] | None,
) -> tuple[VectorIndexFile, bool]:
    from agentdeck.core.exceptions import NotFound

    if source.owner_id != index.owner_id:
        raise NotFound("Source vector index not found.")
    if source.dimensions != index.dimensions:
        raise Conflict(
            f"The source index has {source.dimensions}-dimension vectors; this index takes "
            f"{index.dimensions}.",
            code="embedding_dimensions_mismatch",
        )
    if (source.embedder, source.embedding_model) != (index.embedder, index.embedding_model):
        raise Conflict(
            f"The source index embeds with {source.embedding_model}; this index with "
            f"{index.embedding_model}.",
            code="embedding_model_mismatch",
        )
    if (source.chunk_size_tokens, source.chunk_overlap_tokens) != (
        index.chunk_size_tokens,
        index.chunk_overlap_tokens,
    ):
        raise Conflict("The two indices chunk files differently.", code="chunking_mismatch")
    with transaction.atomic():
        origin = (
            VectorIndexFile.objects.select_for_update()
            .filter(index=source, file=file, status=VectorIndexFile.Status.READY)
            .first()
        )
        if origin is None:
            raise Conflict(
                "The file is not ready in the source index.", code="file_not_ready_in_source"
            )
        attachment, created = VectorIndexFile.objects.get_or_create(
            index=index, file=file, defaults={"attributes": attributes or {}}
        )
        if not created and attachment.status in (
            VectorIndexFile.Status.QUEUED,
            VectorIndexFile.Status.PROCESSING,
        ):
            raise Conflict("The file is being embedded into this index.", code="file_busy")
        from django.db import connection

        from agentdeck.files.models import Chunk

        Chunk.objects.filter(index=index, file=file).delete()
        with connection.cursor() as cur:
            cur.execute(
                """
                INSERT INTO chunks (index_id, file_id, position, text, token_count, char_start,
                                    char_end, page, embedding_model, dimensions, embedding)
                SELECT %s, file_id, position, text, token_count, char_start, char_end, page,
                       embedding_model, dimensions, embedding
                FROM chunks WHERE index_id = %s AND file_id = %s
                """,
                [str(index.pk), str(source.pk), str(file.pk)],
            )
        attachment.status = VectorIndexFile.Status.READY
        attachment.attributes = attributes if attributes is not None else attachment.attributes
        attachment.chunk_count, attachment.token_count = origin.chunk_count, origin.token_count
        attachment.bytes, attachment.processed_at = origin.bytes, timezone.now()
        attachment.error_code = attachment.error_message = ""
        attachment.save()
        vector_index_touch(index)
        vector_index_refresh(index.pk)
    return attachment, created


def vector_index_detach(*, index: VectorIndex, file: FileMetadata) -> None:
    with transaction.atomic():
        deleted, _ = VectorIndexFile.objects.filter(index=index, file=file).delete()
        if not deleted:
            from agentdeck.core.exceptions import NotFound

            raise NotFound("This file is not in the index.")
        index.chunks.filter(file=file).delete()
        vector_index_refresh(index.pk)


def _check_attributes(attributes: dict[str, Any] | None) -> None:
    if attributes is not None:
        with shape_errors_as("attributes", code="invalid_attributes", error=InvalidIndex):
            check_attributes(attributes)
