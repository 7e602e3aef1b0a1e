"""Files and vector indices: upload, delete, attach, detach, reprocess, index lifecycle.

The processing itself (parse, chunk, embed, write) runs on the worker: ``agentdeck.files.processing``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Count, ProtectedError, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from agentdeck.accounts.models import User
from agentdeck.core.exceptions import ApplicationError, Conflict
from agentdeck.core.jsonshape import shape_errors_as
from agentdeck.core.queue import enqueue
from agentdeck.core.realtime import notify_user_on_commit
from agentdeck.files.attributes import check_attributes, check_filters
from agentdeck.files.models import (
    ALLOWED_DIMENSIONS,
    FileMetadata,
    VectorIndex,
    VectorIndexFile,
)
from agentdeck.files.parsing import FileRejected, detect_type, sanitize_filename


class FileTooLarge(ApplicationError):
    status = 413
    code = "file_too_large"
    title = "File too large"


class UnsupportedMediaType(ApplicationError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class InvalidFile(ApplicationError):
    status = 400
    code = "invalid_file"
    title = "Invalid file"


class InvalidIndex(ApplicationError):
    status = 400
    code = "invalid_vector_index"
    title = "Invalid vector index"


# --- notifications ------------------------------------------------------------------------------


def file_notify(file: FileMetadata, kind: str, **extra: Any) -> None:
    """``file.processing`` (with ``percent``), ``file.ready`` or ``file.failed`` on the owner's
    notification stream, after commit."""
    notify_user_on_commit(
        file.owner_id,
        kind,
        {
            "file_id": str(file.id),
            "name": file.name,
            "status": file.status,
            "percent": file.progress,
            "chunk_count": file.chunk_count,
            "error_code": file.error_code,
            "error_message": file.error_message,
            **extra,
        },
    )


def file_processing_enqueue(file_id: Any) -> None:
    enqueue(
        "agentdeck.files.tasks.process_file",
        str(file_id),
        task_name=f"file:{file_id}",
        group="files",
        # Embedding a 50 MB PDF on a CPU can outlast a run's task timeout. Should the broker
        # deliver the task again meanwhile, the copy finds the file claimed and leaves.
        timeout=settings.FILE_PROCESSING_TIMEOUT_SECONDS,
    )


# --- files --------------------------------------------------------------------------------------


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
                _index_refresh(index.pk)
            transaction.on_commit(lambda: file_processing_enqueue(file.id))
    except IntegrityError:
        file.content.storage.delete(file.content.name)
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
    storage, stored_name = file.content.storage, file.content.name
    with transaction.atomic():
        index_ids = list(
            VectorIndexFile.objects.filter(file=file).values_list("index_id", flat=True)
        )
        file.delete()
        for index_id in index_ids:
            _index_refresh(index_id)
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
    transaction.on_commit(lambda: file_processing_enqueue(file.pk))
    file.refresh_from_db()
    return file


# --- vector indices -----------------------------------------------------------------------------


def _check_index_owner(index: VectorIndex, owner: User) -> None:
    from agentdeck.core.exceptions import NotFound

    if index.owner_id != owner.pk:
        raise NotFound("Vector index not found.")


def _embedding_choice(
    *, embedder: str, model: str | None, dimensions: int | None, provider: Any
) -> tuple[str, int]:
    from agentdeck.files.embeddings import HASH_MODEL, LOCAL_DIMENSIONS, LOCAL_MODEL

    if embedder == VectorIndex.Embedder.LOCAL:
        if model not in (None, "", LOCAL_MODEL) or dimensions not in (None, LOCAL_DIMENSIONS):
            raise InvalidIndex(f"The local embedder is {LOCAL_MODEL} with 384 dimensions.")
        return LOCAL_MODEL, LOCAL_DIMENSIONS
    if embedder == VectorIndex.Embedder.HASH:
        return HASH_MODEL, dimensions or LOCAL_DIMENSIONS
    if embedder in (VectorIndex.Embedder.OPENAI, VectorIndex.Embedder.OPENAI_COMPATIBLE):
        if provider is None:
            raise InvalidIndex(f"The {embedder} embedder needs provider_id.")
        if provider.kind != embedder:
            raise InvalidIndex(f"provider_id must be a provider of kind {embedder}.")
        if not model:
            raise InvalidIndex("embedding_model is required for this embedder.")
        if embedder == VectorIndex.Embedder.OPENAI:
            return model, dimensions or 1536
        if not dimensions:
            raise InvalidIndex("dimensions is required for an openai_compatible embedder.")
        return model, dimensions
    raise InvalidIndex(f"Unknown embedder {embedder!r}.", code="invalid_embedder")


def vector_index_create(
    *,
    owner: User,
    name: str,
    description: str = "",
    embedder: str | None = None,
    embedding_model: str | None = None,
    dimensions: int | None = None,
    provider: Any = None,
    chunk_size_tokens: int = 800,
    chunk_overlap_tokens: int = 400,
    expires_after_days: int | None = None,
) -> VectorIndex:
    embedder = embedder or settings.EMBEDDER_DEFAULT
    if provider is not None and provider.owner_id not in (None, owner.pk):
        raise InvalidIndex("Unknown provider.", code="invalid_provider")
    model, dims = _embedding_choice(
        embedder=embedder, model=embedding_model, dimensions=dimensions, provider=provider
    )
    if dims not in ALLOWED_DIMENSIONS:
        raise InvalidIndex(
            f"dimensions must be one of {', '.join(map(str, ALLOWED_DIMENSIONS))}.",
            code="invalid_dimensions",
        )
    if not 100 <= chunk_size_tokens <= 4096:
        raise InvalidIndex("chunk_size_tokens must be between 100 and 4096.")
    if not 0 <= chunk_overlap_tokens <= chunk_size_tokens // 2:
        raise InvalidIndex("chunk_overlap_tokens must be between 0 and half of chunk_size_tokens.")
    if expires_after_days is not None and not 1 <= expires_after_days <= 365:
        raise InvalidIndex("expires_after_days must be between 1 and 365.")
    now = timezone.now()
    return VectorIndex.objects.create(
        owner=owner,
        name=name,
        description=description,
        embedder=embedder,
        embedding_model=model,
        dimensions=dims,
        provider=provider,
        chunk_size_tokens=chunk_size_tokens,
        chunk_overlap_tokens=chunk_overlap_tokens,
        expires_after_days=expires_after_days,
        expires_at=now + timezone.timedelta(days=expires_after_days)
        if expires_after_days
        else None,
    )


def vector_index_update(
    *, index: VectorIndex, name: str | None = None, description: str | None = None, **kw: Any
) -> VectorIndex:
    """Name, description and the expiry policy may change; embedding and chunking may not
    (every chunk would have to be rebuilt: make a new index instead)."""
    fields = ["updated_at"]
    if name is not None:
        index.name, fields = name, [*fields, "name"]
    if description is not None:
        index.description, fields = description, [*fields, "description"]
    if "expires_after_days" in kw:
        days = kw["expires_after_days"]
        if days is not None and not 1 <= days <= 365:
            raise InvalidIndex("expires_after_days must be between 1 and 365.")
        index.expires_after_days = days
        index.expires_at = index.last_active_at + timezone.timedelta(days=days) if days else None
        fields += ["expires_after_days", "expires_at"]
    index.save(update_fields=fields)
    return index


def vector_index_delete(*, index: VectorIndex) -> None:
    try:
        index.delete()
    except ProtectedError:
        raise Conflict(
            "Agents still search this index; detach it from them first.", code="vector_index_in_use"
        ) from None


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
            transaction.on_commit(lambda: file_processing_enqueue(locked.pk))
        _index_touch(index)
        _index_refresh(index.pk)
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
        _index_touch(index)
        _index_refresh(index.pk)
    return attachment, created


def vector_index_detach(*, index: VectorIndex, file: FileMetadata) -> None:
    with transaction.atomic():
        deleted, _ = VectorIndexFile.objects.filter(index=index, file=file).delete()
        if not deleted:
            from agentdeck.core.exceptions import NotFound

            raise NotFound("This file is not in the index.")
        index.chunks.filter(file=file).delete()
        _index_refresh(index.pk)


def vector_index_query(
    *,
    index: VectorIndex,
    query: str,
    top_k: int = 10,
    mode: str = "vector",
    file_ids: list[str] | None = None,
    attributes: dict[str, Any] | None = None,
    score_threshold: float | None = None,
) -> list[Any]:
    """Search one index (``agentdeck.files.search``) and keep it alive under its expiry policy."""
    from agentdeck.files.search import vector_index_search

    if index.status == VectorIndex.Status.EXPIRED:
        raise Conflict("This vector index has expired.", code="vector_index_expired")
    if attributes is not None:
        _check_filters(attributes)
    hits = vector_index_search(
        index=index,
        query=query,
        top_k=top_k,
        mode=mode,
        file_ids=file_ids,
        attributes=attributes,
        score_threshold=score_threshold,
    )
    # At most one write a minute per index, not one per search.
    if timezone.now() - index.last_active_at > timezone.timedelta(minutes=1):
        _index_touch(index)
    return hits


def _check_filters(filters: dict[str, Any]) -> None:
    with shape_errors_as("filters", code="invalid_filter", error=InvalidIndex):
        check_filters(filters)


def _check_attributes(attributes: dict[str, Any] | None) -> None:
    if attributes is not None:
        with shape_errors_as("attributes", code="invalid_attributes", error=InvalidIndex):
            check_attributes(attributes)


def _index_touch(index: VectorIndex) -> None:
    """Keep an index with an expiry policy alive while it is used (an attach or a search)."""
    now = timezone.now()
    updates: dict[str, Any] = {"last_active_at": now}
    if index.expires_after_days:
        updates["expires_at"] = now + timezone.timedelta(days=index.expires_after_days)
    VectorIndex.objects.filter(pk=index.pk).update(**updates)


def _index_refresh(index_id: Any) -> None:
    """Recompute an index's counts and status from its attachments (one UPDATE)."""
    agg = VectorIndexFile.objects.filter(index_id=index_id).aggregate(
        files=Count("id", filter=Q(status="ready")),
        chunks=Coalesce(Sum("chunk_count", filter=Q(status="ready")), 0),
        size=Coalesce(Sum("bytes", filter=Q(status="ready")), 0),
        pending=Count("id", filter=Q(status__in=["queued", "processing"])),
    )
    index_qs = VectorIndex.objects.filter(pk=index_id).exclude(status=VectorIndex.Status.EXPIRED)
    index_qs.update(
        file_count=agg["files"],
        chunk_count=agg["chunks"],
        bytes=agg["size"],
        status=VectorIndex.Status.IN_PROGRESS if agg["pending"] else VectorIndex.Status.READY,
        updated_at=timezone.now(),
    )
