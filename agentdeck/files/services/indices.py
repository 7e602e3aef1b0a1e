"""Vector indices: create, update, delete, query, and the counts and expiry kept on each."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, ProtectedError, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from agentdeck.accounts.models import User
from agentdeck.core.exceptions import Conflict
from agentdeck.core.jsonshape import shape_errors_as
from agentdeck.files.attributes import check_filters
from agentdeck.files.exceptions import InvalidIndex
from agentdeck.files.keepalive import vector_index_touch_after_search
from agentdeck.files.models import ALLOWED_DIMENSIONS, VectorIndex, VectorIndexFile


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
        expires_at=now + timedelta(days=expires_after_days) if expires_after_days else None,
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
        index.expires_at = index.last_active_at + timedelta(days=days) if days else None
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
    vector_index_touch_after_search(index)
    return hits


def _check_filters(filters: dict[str, Any]) -> None:
    with shape_errors_as("filters", code="invalid_filter", error=InvalidIndex):
        check_filters(filters)


def vector_index_refresh(index_id: Any) -> None:
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
