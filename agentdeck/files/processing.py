"""The worker side of files: parse, chunk, embed, write; and the watchdog.

A file is worked on by one worker at a time: the claim is a conditional UPDATE that writes a
fresh ``claimed_by`` token, and every later write by that worker (heartbeat, progress, finish)
is conditional on the token still being there. A task delivered twice, or a worker the
watchdog gave up on, finds the token gone and stops without writing anything.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet, Sum
from django.utils import timezone

from agentdeck.core.redaction import log_exception
from agentdeck.files.chunking import chunk_text
from agentdeck.files.embeddings import embedder_for, tokenize
from agentdeck.files.exceptions import EmbeddingError, ParseError
from agentdeck.files.models import Chunk, FileMetadata, VectorIndex, VectorIndexFile
from agentdeck.files.parsing import parse
from agentdeck.files.services import file_notify, file_processing_enqueue, vector_index_refresh

logger = logging.getLogger(__name__)

Status = FileMetadata.Status
AStatus = VectorIndexFile.Status
# At most one file.processing notification per this many seconds (plus one per 10 %).
PROGRESS_EVERY_SECONDS = 1.0
INSERT_BATCH = 500


class ClaimLost(Exception):
    """The file was deleted, or the watchdog handed it to another worker."""


@dataclass
class _Claim:
    file_id: Any
    token: uuid.UUID
    owner_id: Any
    last_notice: float = 0.0
    last_percent: int = -100

    def filter(self) -> QuerySet[FileMetadata]:
        return FileMetadata.objects.filter(pk=self.file_id, claimed_by=self.token)

    def beat(self, **fields: Any) -> None:
        if not self.filter().update(heartbeat_at=timezone.now(), **fields):
            raise ClaimLost

    def progress(self, file: FileMetadata, percent: int, **extra: Any) -> None:
        """Heartbeat, store ``percent`` and tell the owner, throttled."""
        percent = max(0, min(99, percent))
        self.beat(progress=percent)
        now = time.monotonic()
        if now - self.last_notice >= PROGRESS_EVERY_SECONDS or percent - self.last_percent >= 10:
            self.last_notice, self.last_percent = now, percent
            file.progress = percent
            file_notify(file, "file.processing", **extra)


def file_claim(*, file_id: Any) -> _Claim | None:
    """uploaded / processing-without-a-worker -> processing, owned by a new token."""
    token = uuid.uuid4()
    now = timezone.now()
    claimed = (
        FileMetadata.objects.filter(pk=file_id, claimed_by__isnull=True)
        .filter(status__in=[Status.UPLOADED, Status.PROCESSING])
        .update(
            status=Status.PROCESSING,
            claimed_by=token,
            heartbeat_at=now,
            processing_started_at=now,
            attempts=F("attempts") + 1,
            error_code="",
            error_message="",
            updated_at=now,
        )
    )
    if not claimed:
        return None
    owner_id = FileMetadata.objects.values_list("owner_id", flat=True).get(pk=file_id)
    return _Claim(file_id=file_id, token=token, owner_id=owner_id)


def file_process(*, file_id: Any) -> str:
    """1. Claim the file (or leave: someone else has it, or there is nothing to do).
    2. Parse it unless its text is already stored; a parse error fails the file and every
       attachment, and no chunk is written anywhere.
    3. Embed it into each queued attachment's index, one at a time.
    4. Under the file row's lock: if nothing new was attached meanwhile, it is ready."""
    claim = file_claim(file_id=file_id)
    if claim is None:
        return "not claimed"
    try:
        file = FileMetadata.objects.get(pk=file_id)
        file_notify(file, "file.processing")
        if file.parsed_at is None:
            try:
                _parse(claim, file)
            except ParseError as e:
                _fail(claim, e.code, e.message)
                return f"failed: {e.code}"
        while True:
            pending = list(
                VectorIndexFile.objects.filter(
                    file_id=file_id, status__in=[AStatus.QUEUED, AStatus.PROCESSING]
                )
                .select_related("index", "index__provider")
                .order_by("id")
            )
            for n, attachment in enumerate(pending):
                _ingest(claim, file, attachment, n, len(pending))
            if _finish(claim):
                return "ready"
    except ClaimLost:
        return "claim lost"
    except Exception as exc:
        # A bug or an unexpected library error: the file fails with a code, the worker lives;
        # the traceback goes to the log with credential-shaped text redacted.
        log_exception(logger, logging.ERROR, "processing file %s failed", file_id, exc=exc)
        with contextlib.suppress(ClaimLost):
            # Not the exception's text: it can carry paths, SQL or a provider's words.
            _fail(claim, "processing_error", "Processing failed unexpectedly; it has been logged.")
        return "failed: processing_error"


def _parse(claim: _Claim, file: FileMetadata) -> None:
    with file.content.open("rb") as fh:
        data = fh.read()
    parsed = parse(data, file.mime_type)
    file.text = parsed.text
    file.page_offsets = [list(p) for p in parsed.pages]
    file.page_count = parsed.page_count
    file.char_count = parsed.char_count
    file.parsed_at = timezone.now()
    claim.beat(
        text=file.text,
        page_offsets=file.page_offsets,
        page_count=file.page_count,
        char_count=file.char_count,
        parsed_at=file.parsed_at,
        progress=10,
    )
    file.progress = 10
    file_notify(file, "file.processing")


def _ingest(
    claim: _Claim, file: FileMetadata, attachment: VectorIndexFile, n: int, total: int
) -> None:
    """Chunk and embed ``file`` for one index, then replace its chunks there in one
    transaction, so searches see the old set or the new one, never half."""
    index: VectorIndex = attachment.index
    VectorIndexFile.objects.filter(pk=attachment.pk).update(status=AStatus.PROCESSING)
    vector_index_refresh(index.pk)
    tokens = tokenize(file.text)
    specs = chunk_text(
        file.text,
        size=index.chunk_size_tokens,
        overlap=index.chunk_overlap_tokens,
        page_offsets=file.page_offsets,
        tokens=tokens,
    )
    embedder = embedder_for(index)
    batch = max(1, settings.EMBEDDING_BATCH_SIZE)
    vectors: list[list[float]] = []
    span = 90 / max(total, 1)
    try:
        for start in range(0, len(specs), batch):
            vectors.extend(embedder.embed([s.text for s in specs[start : start + batch]]))
            done = min(start + batch, len(specs))
            claim.progress(
                file,
                int(10 + span * n + span * done / max(len(specs), 1)),
                vector_index_id=str(index.pk),
            )
    except EmbeddingError as e:
        VectorIndexFile.objects.filter(pk=attachment.pk).update(
            status=AStatus.FAILED, error_code=e.code, error_message=e.detail[:1000]
        )
        vector_index_refresh(index.pk)
        return
    rows = [
        Chunk(
            index_id=index.pk,
            file_id=file.pk,
            position=s.position,
            text=s.text,
            token_count=s.token_count,
            char_start=s.char_start,
            char_end=s.char_end,
            page=s.page,
            embedding_model=index.embedding_model,
            dimensions=index.dimensions,
            embedding=v,
        )
        for s, v in zip(specs, vectors, strict=True)
    ]
    size = sum(len(r.text.encode()) + 4 * index.dimensions for r in rows)
    with transaction.atomic():
        claim.beat()
        # Detached (or the file deleted) while embedding: nothing to write.
        if not VectorIndexFile.objects.select_for_update().filter(pk=attachment.pk).exists():
            return
        Chunk.objects.filter(index_id=index.pk, file_id=file.pk).delete()
        Chunk.objects.bulk_create(rows, batch_size=INSERT_BATCH)
        VectorIndexFile.objects.filter(pk=attachment.pk).update(
            status=AStatus.READY,
            chunk_count=len(rows),
            token_count=sum(s.token_count for s in specs),
            bytes=size,
            error_code="",
            error_message="",
            processed_at=timezone.now(),
        )
        vector_index_refresh(index.pk)


def _finish(claim: _Claim) -> bool:
    """ready, unless something was attached meanwhile (then the caller goes round again)."""
    with transaction.atomic():
        file = FileMetadata.objects.select_for_update().filter(pk=claim.file_id).first()
        if file is None or file.claimed_by != claim.token:
            raise ClaimLost
        if VectorIndexFile.objects.filter(file=file, status=AStatus.QUEUED).exists():
            return False
        chunks = (
            VectorIndexFile.objects.filter(file=file, status=AStatus.READY).aggregate(
                n=Sum("chunk_count")
            )["n"]
            or 0
        )
        now = timezone.now()
        file.status, file.progress, file.chunk_count = Status.READY, 100, chunks
        file.claimed_by, file.processed_at = None, now
        file.save(
            update_fields=[
                "status",
                "progress",
                "chunk_count",
                "claimed_by",
                "processed_at",
                "updated_at",
            ]
        )
        failed = [
            {"vector_index_id": str(index_id), "error_code": code}
            for index_id, code in VectorIndexFile.objects.filter(
                file=file, status=AStatus.FAILED
            ).values_list("index_id", "error_code")
        ]
        file_notify(file, "file.ready", failed_indices=failed)
    return True


def _fail(claim: _Claim, code: str, message: str) -> None:
    """The file fails as a whole: no chunks of it remain in any index."""
    with transaction.atomic():
        file = FileMetadata.objects.select_for_update().filter(pk=claim.file_id).first()
        if file is None or file.claimed_by != claim.token:
            raise ClaimLost
        _fail_locked(file, code, message)


def _fail_locked(file: FileMetadata, code: str, message: str) -> None:
    index_ids = list(
        VectorIndexFile.objects.filter(file=file).values_list("index_id", flat=True).distinct()
    )
    Chunk.objects.filter(file=file).delete()
    VectorIndexFile.objects.filter(file=file).update(
        status=AStatus.FAILED, chunk_count=0, bytes=0, error_code=code, error_message=message
    )
    file.status, file.error_code, file.error_message = Status.FAILED, code, message
    file.claimed_by, file.chunk_count, file.processed_at = None, 0, timezone.now()
    file.save(
        update_fields=[
            "status",
            "error_code",
            "error_message",
            "claimed_by",
            "chunk_count",
            "processed_at",
            "updated_at",
        ]
    )
    for index_id in index_ids:
        vector_index_refresh(index_id)
    file_notify(file, "file.failed")


# --- watchdog -------------------------------------------------------------------------------------


def files_watchdog() -> dict[str, int]:
    """Find files stuck in processing and get them moving again.

    * claimed, heartbeat older than ``FILE_PROCESSING_STALE_SECONDS`` (the worker died or hung):
      take the claim away; with attempts left, queue it again, else fail it with
      ``processing_timeout``;
    * waiting for a worker (``uploaded``, or ``processing`` unclaimed) for that long (the task
      was lost: the Redis broker drops in-flight tasks with their worker): queue it again.
    The conditional UPDATEs make a watchdog racing a worker or a second watchdog harmless.
    """
    stale = timezone.now() - timedelta(seconds=settings.FILE_PROCESSING_STALE_SECONDS)
    retried = failed = requeued = 0
    for file_id, token, attempts in FileMetadata.objects.filter(
        status=Status.PROCESSING, claimed_by__isnull=False, heartbeat_at__lt=stale
    ).values_list("id", "claimed_by", "attempts"):
        if attempts < settings.FILE_PROCESSING_MAX_ATTEMPTS:
            if FileMetadata.objects.filter(pk=file_id, claimed_by=token).update(
                claimed_by=None, heartbeat_at=timezone.now()
            ):
                transaction.on_commit(functools.partial(file_processing_enqueue, file_id))
                retried += 1
            continue
        with transaction.atomic():
            file = FileMetadata.objects.select_for_update().filter(pk=file_id).first()
            if file is None or file.claimed_by != token:
                continue
            _fail_locked(
                file,
                "processing_timeout",
                f"Processing stopped reporting {attempts} times; giving up.",
            )
            failed += 1
    waiting = FileMetadata.objects.filter(
        Q(status=Status.UPLOADED) | Q(status=Status.PROCESSING, claimed_by__isnull=True),
        updated_at__lt=stale,
    )
    for file_id in waiting.values_list("id", flat=True):
        # Touch it so the next sweep waits a full period before queueing it again.
        if (
            FileMetadata.objects.filter(pk=file_id, claimed_by__isnull=True)
            .filter(updated_at__lt=stale)
            .update(updated_at=timezone.now())
        ):
            file_processing_enqueue(file_id)
            requeued += 1
    expired = _expire_indices()
    return {"retried": retried, "failed": failed, "requeued": requeued, "expired": expired}


def _expire_indices() -> int:
    """Indices past their ``expires_at`` lose their chunks and attachments (the files stay)."""
    expired = 0
    for index in VectorIndex.objects.filter(expires_at__lt=timezone.now()).exclude(
        status=VectorIndex.Status.EXPIRED
    ):
        with transaction.atomic():
            index.chunks.all().delete()
            index.attachments.all().delete()
            VectorIndex.objects.filter(pk=index.pk).update(
                status=VectorIndex.Status.EXPIRED, file_count=0, chunk_count=0, bytes=0
            )
        expired += 1
    return expired
