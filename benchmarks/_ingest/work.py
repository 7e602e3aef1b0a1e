"""The work of one configuration (the windows the pipeline encodes), the model and its bare
``encode``, the pipeline's timers, and one run of the pipeline over the corpus.
"""

from __future__ import annotations

import collections
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from _support import (
    BenchError,
)


@dataclass
class Work:
    """What one configuration asks the model to do, computed from the parsed documents."""

    size: int
    overlap: int
    chunks: int
    chunk_texts: list[str]
    windows: list[str]
    window_tokens: int  # word pieces in all windows
    chunk_tokens: int  # word pieces in all chunks (overlaps counted again)
    chunks_per_file: list[int]


def windows_of(text: str) -> list[tuple[str, int]]:
    """(window, word pieces) as ``LocalEmbedder.embed`` cuts a chunk (the same steps)."""
    from agentdeck.files.embeddings import LOCAL_WINDOW_TOKENS, tokenize

    offsets = tokenize(text).offsets
    if not offsets:
        return [(text or " ", 1)]
    out = []
    for s in range(0, len(offsets), LOCAL_WINDOW_TOKENS):
        piece = offsets[s : s + LOCAL_WINDOW_TOKENS]
        out.append((text[piece[0][0] : piece[-1][1]], len(piece)))
    return out


def plan_work(docs: list[tuple[str, bytes]], size: int, overlap: int) -> Work:
    from agentdeck.files.chunking import chunk_text
    from agentdeck.files.parsing import detect_type, parse

    texts, windows, per_file = [], [], []
    window_tokens = chunk_tokens = 0
    for name, data in docs:
        parsed = parse(data, detect_type(data, name))
        specs = chunk_text(parsed.text, size=size, overlap=overlap, page_offsets=parsed.pages)
        per_file.append(len(specs))
        for spec in specs:
            texts.append(spec.text)
            chunk_tokens += spec.token_count
            for window, n_tokens in windows_of(spec.text):
                windows.append(window)
                window_tokens += n_tokens
    return Work(size, overlap, len(texts), texts, windows, window_tokens, chunk_tokens, per_file)


def model():
    from agentdeck.files.embeddings import _sentence_transformer

    return _sentence_transformer()


# CPU seconds (all threads of this process) of the last encode() call.
LAST_CPU: dict[str, float] = {}


def encode(texts: list[str], batch_size: int) -> float:
    """Seconds for one bare ``SentenceTransformer.encode`` of ``texts`` (its CPU seconds in
    ``LAST_CPU["encode"]``)."""
    m = model()
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = m.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    elapsed = time.perf_counter() - t0
    LAST_CPU["encode"] = time.process_time() - c0
    if len(out) != len(texts):
        raise BenchError(f"encode returned {len(out)} vectors for {len(texts)} texts")
    return elapsed


class Timers:
    """Wall-clock totals of the pipeline's parts, by wrapping three callables."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = collections.defaultdict(float)
        self.depth = 0

    def wrap(self, name: str, fn: Any) -> Any:
        def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.totals[name] += time.perf_counter() - t0

        timed.__wrapped__ = fn  # type: ignore[attr-defined]
        return timed


@contextlib.contextmanager
def timers_installed(enabled: bool):
    from agentdeck.files.embeddings import LocalEmbedder
    from agentdeck.files.models import Chunk

    timers = Timers()
    if not enabled:
        yield timers
        return
    m = model()
    original_encode = m.encode
    original_embed = LocalEmbedder.embed
    manager = Chunk.objects
    original_bulk = manager.bulk_create
    m.encode = timers.wrap("encode", original_encode)
    LocalEmbedder.embed = timers.wrap("embed", original_embed)
    manager.bulk_create = timers.wrap("bulk_create", original_bulk)
    try:
        yield timers
    finally:
        del m.encode  # the instance attribute: back to the class's method
        LocalEmbedder.embed = original_embed
        del manager.bulk_create


def run_pipeline(
    docs: list[tuple[str, bytes]], work: Work, tag: str, breakdown: bool
) -> dict[str, float]:
    """Upload the documents into a fresh local index, process them, check, clean up."""
    from agentdeck.accounts.models import User
    from agentdeck.files import services
    from agentdeck.files.models import Chunk, FileMetadata, VectorIndexFile
    from agentdeck.files.processing import file_process

    user = User.objects.create_user(f"bench-ingest-{tag}@example.com", name="ingest bench")
    index = services.vector_index_create(
        owner=user,
        name=f"ingest {tag}",
        embedder="local",
        chunk_size_tokens=work.size,
        chunk_overlap_tokens=work.overlap,
    )
    files = [
        services.file_upload(owner=user, name=name, data=data, vector_indices=[index])[0]
        for name, data in docs
    ]
    with timers_installed(breakdown) as timers:
        c0 = time.process_time()
        t0 = time.perf_counter()
        for f in files:
            outcome = file_process(file_id=f.pk)
            if outcome != "ready":
                raise BenchError(f"{f.name}: file_process returned {outcome!r}")
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
    written = Chunk.objects.filter(index=index).count()
    per_file = [Chunk.objects.filter(index=index, file=f).count() for f in files]
    failed = VectorIndexFile.objects.filter(index=index).exclude(status="ready").count()
    if failed or per_file != work.chunks_per_file:
        raise BenchError(
            f"pipeline wrote {per_file} chunks per file ({failed} attachments not ready), "
            f"chunk_text gives {work.chunks_per_file}"
        )
    for f in files:
        services.file_delete(file=FileMetadata.objects.get(pk=f.pk))
    services.vector_index_delete(index=index)
    user.delete()
    from django.db import connection

    with connection.cursor() as cur:  # the next repetition starts from the same table
        cur.execute("VACUUM ANALYZE chunks")
    t = dict(timers.totals)
    # cpu_s: this process's CPU time (all threads; PostgreSQL's backend not included): on a
    # shared machine it is much less disturbed by other work than wall time.
    result = {
        "seconds": elapsed,
        "cpu_s": cpu,
        "chunks": written,
        "chunks_per_s": written / elapsed,
    }
    if breakdown:
        result.update(
            encode_s=t.get("encode", 0.0),
            embedder_other_s=t.get("embed", 0.0) - t.get("encode", 0.0),
            bulk_create_s=t.get("bulk_create", 0.0),
        )
        result["rest_s"] = elapsed - t.get("embed", 0.0) - t.get("bulk_create", 0.0)
    return result
