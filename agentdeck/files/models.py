"""Files, vector indices and their chunks.

A file is parsed once (its text is kept in ``FileMetadata.text``); each vector index it is attached
to chunks and embeds that text with the index's own settings, so one file can sit in indices with
different embedding models. Chunks belong to an (index, file) pair and are replaced as a whole.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from pgvector.django import VectorField

from agentdeck.core.models import TimestampedModel

# Dimensions an index may have. Each has its own partial HNSW index on ``chunks`` (see
# migration 0002): one HNSW index per dimension is how pgvector indexes an untyped ``vector``
# column. 384 is all-MiniLM-L6-v2 (and the hash embedder's default); 1536 is OpenAI's
# text-embedding-3-small (and -large shortened with ``dimensions``). HNSW stops at 2,000.
ALLOWED_DIMENSIONS = (256, 384, 512, 768, 1024, 1536)


def file_upload_to(instance: FileMetadata, filename: str) -> str:
    # The stored name is the row's id, never the user's name: nothing a user types reaches a path.
    return f"files/{instance.owner_id}/{instance.id}"


class FileMetadata(TimestampedModel):
    """An uploaded file (table shared with Next.js, which lists a user's files).

    State machine (transitions are conditional UPDATEs; ``claimed_by`` marks a live worker)::

        uploaded --worker claims--> processing --parse + every queued attachment--> ready
        processing --parse fails--> failed (error_code, no chunks anywhere)
        ready --attached to another index / reprocess--> processing --> ready
        processing --heartbeat stale (worker died)--> processing again (watchdog, attempts left)
                                                   or failed (processing_timeout)
    """

    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="files"
    )
    name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    mime_type = models.CharField(max_length=100)
    sha256 = models.CharField(max_length=64)
    content = models.FileField(upload_to=file_upload_to, max_length=300)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADED)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    # Parse results: the text every attached index chunks, and where each PDF page starts in it.
    text = models.TextField(blank=True, default="")
    page_offsets = models.JSONField(default=list, blank=True)
    parsed_at = models.DateTimeField(null=True, blank=True)
    page_count = models.PositiveIntegerField(default=0)
    char_count = models.PositiveBigIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    progress = models.PositiveSmallIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_by = models.UUIDField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "file_metadata"
        # Staff see uploads; "file metadata" would pluralise to "file metadatas" in the admin.
        verbose_name = "file"
        verbose_name_plural = "files"
        constraints = [
            # Identical re-uploads by the same user are one file.
            models.UniqueConstraint(fields=["owner", "sha256"], name="file_metadata_owner_sha256"),
            models.CheckConstraint(
                condition=models.Q(status__in=["uploaded", "processing", "ready", "failed"]),
                name="file_metadata_status_valid",
            ),
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="file_progress_pct"),
        ]
        indexes = [
            # GET /api/v1/files/: one owner's files, newest first.
            models.Index(fields=["owner", "-created_at"], name="file_metadata_owner_created"),
            # The watchdog: files in processing ordered by heartbeat.
            models.Index(
                fields=["heartbeat_at"],
                name="file_metadata_processing_hb",
                condition=models.Q(status="processing"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class VectorIndex(TimestampedModel):
    """A searchable collection of chunked, embedded files with one embedding model.

    ``status``: ``in_progress`` while any attached file is being embedded, ``ready`` otherwise,
    ``expired`` after its expiry policy ran (its chunks are gone; files stay).
    ``expires_after_days`` counts from ``last_active_at`` (a search or an attach), like OpenAI's
    vector stores' ``expires_after: {anchor: last_active_at, days}``.
    """

    class Status(models.TextChoices):
        READY = "ready", "Ready"
        IN_PROGRESS = "in_progress", "In progress"
        EXPIRED = "expired", "Expired"

    class Embedder(models.TextChoices):
        LOCAL = "local", "Local all-MiniLM-L6-v2"
        HASH = "hash", "Hashing (tests, no model)"
        OPENAI = "openai", "OpenAI embeddings"
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible embeddings endpoint"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vector_indices"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    embedder = models.CharField(max_length=32, choices=Embedder.choices)
    embedding_model = models.CharField(max_length=200)
    dimensions = models.PositiveIntegerField()
    # The openai / openai_compatible embedders call this provider's endpoint with its key.
    provider = models.ForeignKey(
        "agents.Provider", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    chunk_size_tokens = models.PositiveIntegerField(default=800)
    chunk_overlap_tokens = models.PositiveIntegerField(default=400)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.READY)
    file_count = models.PositiveIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    expires_after_days = models.PositiveIntegerField(null=True, blank=True)
    last_active_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "vector_indices"
        verbose_name_plural = "vector indices"  # not "indexs"; the API says vector-indices
        constraints = [
            models.CheckConstraint(
                condition=models.Q(dimensions__in=ALLOWED_DIMENSIONS),
                name="vector_indices_dimensions_allowed",
            ),
            # OpenAI's vector stores use the same bounds: 100-4096 tokens, overlap <= half.
            models.CheckConstraint(
                condition=models.Q(chunk_size_tokens__gte=100, chunk_size_tokens__lte=4096)
                & models.Q(chunk_overlap_tokens__lte=models.F("chunk_size_tokens") / 2),
                name="vector_indices_chunking_valid",
            ),
        ]
        indexes = [
            # GET /api/v1/vector-indices/: one owner's indices, newest first.
            models.Index(fields=["owner", "-created_at"], name="vector_indices_owner_created"),
            # The expiry sweep.
            models.Index(
                fields=["expires_at"],
                name="vector_indices_expiry",
                condition=models.Q(expires_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class VectorIndexFile(models.Model):
    """A file attached to an index, with this pair's own processing state and counts.

    ``queued --worker--> processing --> ready | failed``; detaching deletes the row and its chunks.
    ``attributes`` are the user's key/value labels for search filters (strings, numbers, booleans).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    id = models.BigAutoField(primary_key=True)
    index = models.ForeignKey(VectorIndex, on_delete=models.CASCADE, related_name="attachments")
    file = models.ForeignKey(FileMetadata, on_delete=models.CASCADE, related_name="attachments")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attributes = models.JSONField(default=dict, blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    token_count = models.PositiveBigIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "vector_index_files"
        constraints = [
            models.UniqueConstraint(fields=["index", "file"], name="vector_index_files_unique")
        ]
        indexes = [
            # "Which indices hold this file" (processing a file walks its attachments).
            models.Index(fields=["file", "status"], name="vector_index_files_file"),
        ]

    def __str__(self) -> str:
        return f"{self.index_id} <- {self.file_id} ({self.status})"


class Chunk(models.Model):
    """One embedded piece of a file in one index. Written only by ingestion, as a whole set per
    (index, file) in one transaction, so a search never sees half a file.

    ``embedding`` is an untyped ``vector``: indices differ in dimensions, and each allowed
    dimension has a partial HNSW index over ``embedding::vector(d)`` where ``dimensions = d``.
    ``search`` is PostgreSQL full text for keyword and hybrid search.
    """

    id = models.BigAutoField(primary_key=True)
    # Not indexed alone: chunks_index_file_position starts with index_id.
    index = models.ForeignKey(
        VectorIndex, on_delete=models.CASCADE, related_name="chunks", db_index=False
    )
    file = models.ForeignKey(FileMetadata, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    text = models.TextField()
    token_count = models.PositiveIntegerField()
    char_start = models.PositiveBigIntegerField()
    char_end = models.PositiveBigIntegerField()
    page = models.PositiveIntegerField(null=True, blank=True)
    embedding_model = models.CharField(max_length=200)
    dimensions = models.PositiveSmallIntegerField()
    embedding = VectorField()
    search = models.GeneratedField(
        expression=SearchVector("text", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        db_table = "chunks"
        constraints = [
            # Also the index behind exact search within one index (it reads one index's rows
            # through its index_id prefix) and behind replacing one file's chunks in one index.
            models.UniqueConstraint(
                fields=["index", "file", "position"], name="chunks_index_file_position"
            ),
        ]
        indexes = [
            # Keyword and hybrid search.
            GinIndex(fields=["search"], name="chunks_search_gin"),
        ]

    def __str__(self) -> str:
        return f"chunk {self.position} of {self.file_id} in {self.index_id}"


class AgentVectorIndex(models.Model):
    """An agent answers from these indices through its ``file_search`` tool."""

    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.CASCADE, related_name="vector_index_attachments"
    )
    index = models.ForeignKey(VectorIndex, on_delete=models.PROTECT, related_name="agents")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "agent_vector_indices"
        verbose_name_plural = "agent vector indices"
        constraints = [
            models.UniqueConstraint(fields=["agent", "index"], name="agent_vector_indices_unique")
        ]
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.agent_id} searches {self.index_id}"
