"""File ingestion throughput: agentdeck's processing pipeline against raw SentenceTransformer.encode.

The issue's target: the pipeline embeds at least 80% of the chunks per second that a bare
``SentenceTransformer.encode`` of the same work reaches, on the same machine, in the same run.

**Corpus.** ``--mb`` megabytes of English-like text in several documents (about 256 KB each,
alternately ``.txt`` and ``.md`` with headings): a word-level Markov chain (order 2) trained on
Python's own documentation (``pydoc_data.topics``, ~465 KB of English prose and some code), so
the word-piece statistics are those of real technical English. Deterministic (``--seed``).

**Pipeline** (agentdeck): for each chunking configuration, a fresh user and a vector index with
the ``local`` embedder (all-MiniLM-L6-v2, CPU) and that chunking; every document is uploaded
with ``services.file_upload`` (not timed), then ``processing.file_process`` runs on each file in
turn in this process, as one qcluster worker would (the task queue is bypassed: the upload's
``file_processing_enqueue`` is a no-op here). Timed wall clock from the first file to the last:
claim, parse, tokenize, chunk, embed (``LocalEmbedder``: every chunk cut into windows of at most
248 word pieces, all windows of a batch of ``EMBEDDING_BATCH_SIZE`` chunks encoded in one call,
averaged per chunk), ``bulk_create`` of the chunks into PostgreSQL (with the HNSW and full-text
indexes maintained), progress heartbeats and notifications. chunks/s = chunks written / time.
Every file must end ``ready`` with exactly the chunks ``chunk_text`` gives for its text. The
files and the index are deleted afterwards, so every repetition starts from the same database.

**Baselines**, the same model object (same weights, same torch threads), not timed together:

* ``fair``: ``SentenceTransformer.encode`` of exactly the windows the pipeline encodes (the same
  chunks of the same parsed text, cut the way ``LocalEmbedder`` cuts them), in one call with
  ``batch_size=EMBEDDING_BATCH_SIZE``, ``normalize_embeddings=True``; chunks/s = chunks whose
  windows were encoded per second. This is the target's denominator: the model has to see every
  word piece (its window is 256), so encoding less would not be the same work.
* ``naive`` (800/400 only, for transparency): ``encode`` of the chunk texts themselves. The model
  silently truncates each to its first 256 word pieces, so it does about a third of the work
  and produces embeddings that ignore the rest of every chunk.

**Configurations** (``--configs``): ``800/400`` (the default chunking: ~4 windows per chunk,
248 + 248 + 248 + 56 word pieces), ``256/128`` (each 256-token chunk is still 2 windows,
248 + 8, because the window is 248 word pieces leaving room for the special tokens) and
``248/124`` (one window per chunk: windows == chunks).

Each measurement is repeated ``--reps`` times, the pipeline and the fair baseline alternating
which goes first, and medians are reported. The pipeline's time is also split (``--breakdown``,
on by default: timers around ``SentenceTransformer.encode``, ``LocalEmbedder.embed`` and
``Chunk.objects.bulk_create``) into encode / the embedder's own work (tokenizing chunks into
windows, averaging) / writing chunks / everything else. Both sides' CPU time (this process, all
threads) is recorded too, and the ratio computed from it: on a shared machine other work slows
the wall clock of whichever side it overlaps, much less its CPU time.

Without ``DATABASE_URL`` the embedded PostgreSQL runs in a fresh ``./var/bench-ingest-*``
directory, removed at the end (``--keep-var`` keeps it). The channel layer for the pipeline's
notifications is Redis (database 14, nothing flushed) when it answers on 127.0.0.1:6379, as in
production, else PostgreSQL.

    .venv/bin/python benchmarks/ingest.py                     # 1 MB, 3 repetitions, 3 configs
    .venv/bin/python benchmarks/ingest.py --mb 0.25 --reps 1 --configs 800/400
    .venv/bin/python benchmarks/ingest.py --mb 2 --json /tmp/ingest.json

Exit status: 0 when the target is met (for 800/400, the default chunking), 2 when it is missed,
1 when the benchmark itself failed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import random
import re
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from _support import (  # noqa: E402 (the scripts' own directory)
    BenchError,
    log,
    log_as,
    md_table,
    redis_answers,
    run_sync,
    setup_django,
    temporary_work_dir,
)

log_as("ingest")

RATIO_TARGET = 0.80
DOC_BYTES = 256 * 1024
REDIS_DB = 14
MAIN_CONFIG = (800, 400)


# --- the corpus ----------------------------------------------------------------------------------


def build_corpus(megabytes: float, seed: int) -> list[tuple[str, bytes]]:
    """(file name, bytes) of documents totalling ``megabytes``, from an order-2 word Markov
    chain over Python's documentation."""
    import pydoc_data.topics

    source = "\n".join(pydoc_data.topics.topics.values())
    words = re.findall(r"[A-Za-z][A-Za-z'-]*|\d+|[.,;:?!()]", source)
    chain: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    for a, b, c in zip(words, words[1:], words[2:], strict=False):
        chain[(a, b)].append(c)
    keys = [k for k in chain if k[0] == "."]  # sentence starts
    rng = random.Random(seed)  # noqa: S311 (text generation, not cryptography)
    total = int(megabytes * 1024 * 1024)
    docs: list[tuple[str, bytes]] = []
    n = 0
    while sum(len(d) for _, d in docs) < total:
        target = min(DOC_BYTES, total - sum(len(d) for _, d in docs))
        markdown = n % 2 == 1
        title = f"Document {n + 1}: notes on " + " ".join(rng.sample(words[:5000], 3))
        parts = [f"# {title}\n\n" if markdown else f"{title}\n\n"]
        size = len(parts[0])
        paragraphs = 0
        while size < target:
            paragraph = _paragraph(rng, chain, keys)
            paragraphs += 1
            if markdown and paragraphs % 5 == 0:
                heading = f"## {' '.join(rng.sample(words[:5000], 2)).capitalize()}\n\n"
                parts.append(heading)
                size += len(heading)
            parts.append(paragraph + "\n\n")
            size += len(paragraph) + 2
        name = f"doc-{n + 1:02d}.{'md' if markdown else 'txt'}"
        docs.append((name, "".join(parts).strip().encode()))
        n += 1
    return docs


def _paragraph(rng: random.Random, chain: dict, keys: list[tuple[str, str]]) -> str:
    out: list[str] = []
    for _ in range(rng.randint(3, 8)):
        a, b = rng.choice(keys)
        sentence = [b.capitalize()]
        for _ in range(60):
            nxt = chain.get((a, b))
            if not nxt:
                break
            c = rng.choice(nxt)
            if c == ".":
                break
            sentence.append(c)
            a, b = b, c
        text = " ".join(sentence)
        text = re.sub(r" ([.,;:?!)])", r"\1", text).replace("( ", "(")
        out.append(text + ".")
    return " ".join(out)


# --- Django --------------------------------------------------------------------------------------


def start_django(args: argparse.Namespace) -> str:
    work_dir = temporary_work_dir("bench-ingest-", args.keep_var, BASE_DIR / "var")
    where = (
        "DATABASE_URL" if os.environ.get("DATABASE_URL") else f"embedded PostgreSQL in {work_dir}"
    )
    env: dict[str, str | None] = {
        "AGENTDECK_VAR_DIR": str(work_dir),  # media (the uploads) too
        "EMBEDDER_DEFAULT": "local",
    }
    if args.batch_size:
        env["EMBEDDING_BATCH_SIZE"] = str(args.batch_size)
    if redis_answers() and not args.no_redis:
        env["REDIS_URL"] = f"redis://127.0.0.1:6379/{REDIS_DB}"
        env["CHANNEL_LAYER"] = "redis"
        args.channel_layer = "redis"
    else:
        env["REDIS_URL"] = None
        env["CHANNEL_LAYER"] = "postgres"
        args.channel_layer = "postgres"
    setup_django(env)
    # The benchmark calls file_process itself (as the worker's task does); nothing is queued.
    import agentdeck.files.services.dispatch as dispatch

    dispatch.file_processing_enqueue = lambda file_id: None
    return where


# --- the work ------------------------------------------------------------------------------------


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


# --- one configuration ---------------------------------------------------------------------------


@dataclass
class ConfigResult:
    size: int
    overlap: int
    chunks: int
    windows: int
    window_tokens: int
    chunk_tokens: int
    pipeline: list[dict[str, float]] = field(default_factory=list)
    fair_s: list[float] = field(default_factory=list)
    fair_cpu_s: list[float] = field(default_factory=list)
    naive_s: list[float] = field(default_factory=list)
    load_1min: list[float] = field(default_factory=list)
    medians: dict[str, float] = field(default_factory=dict)


def measure_config(
    args: argparse.Namespace, docs: list[tuple[str, bytes]], size: int, overlap: int
) -> ConfigResult:
    from django.conf import settings

    batch = settings.EMBEDDING_BATCH_SIZE
    work = plan_work(docs, size, overlap)
    log(
        f"[{size}/{overlap}] {work.chunks} chunks ({work.chunk_tokens} word pieces), "
        f"{len(work.windows)} windows ({work.window_tokens} word pieces) to encode, "
        f"{len(work.windows) / work.chunks:.2f} windows per chunk"
    )
    result = ConfigResult(
        size, overlap, work.chunks, len(work.windows), work.window_tokens, work.chunk_tokens
    )
    naive = (size, overlap) == MAIN_CONFIG and not args.no_naive
    for rep in range(args.reps):
        result.load_1min.append(os.getloadavg()[0])
        tag = f"{size}-{overlap}-{rep}-{uuid.uuid4().hex[:6]}"
        sides = ["fair", "pipeline"] if rep % 2 == 0 else ["pipeline", "fair"]
        for side in sides:
            if side == "fair":
                result.fair_s.append(encode(work.windows, batch))
                result.fair_cpu_s.append(LAST_CPU["encode"])
                log(
                    f"[{size}/{overlap}] rep {rep + 1} fair baseline: "
                    f"{work.chunks / result.fair_s[-1]:.2f} chunks/s "
                    f"({len(work.windows) / result.fair_s[-1]:.1f} windows/s)"
                )
            else:
                p = run_pipeline(docs, work, tag, args.breakdown)
                result.pipeline.append(p)
                extra = ""
                if args.breakdown:
                    extra = (
                        f" (encode {p['encode_s']:.1f}s, embedder's own work "
                        f"{p['embedder_other_s']:.1f}s, bulk_create {p['bulk_create_s']:.1f}s, "
                        f"rest {p['rest_s']:.1f}s of {p['seconds']:.1f}s)"
                    )
                log(
                    f"[{size}/{overlap}] rep {rep + 1} pipeline: {p['chunks_per_s']:.2f} "
                    f"chunks/s{extra}"
                )
        if naive:
            result.naive_s.append(encode(work.chunk_texts, batch))
            log(
                f"[{size}/{overlap}] rep {rep + 1} naive baseline (chunks truncated at 256): "
                f"{work.chunks / result.naive_s[-1]:.2f} chunks/s"
            )
    med = statistics.median
    m: dict[str, float] = {
        "pipeline_chunks_per_s": med(p["chunks_per_s"] for p in result.pipeline),
        "fair_chunks_per_s": med(work.chunks / s for s in result.fair_s),
        "fair_windows_per_s": med(len(work.windows) / s for s in result.fair_s),
    }
    # The ratio of each repetition's pair, then the median: each pipeline run against the
    # baseline measured next to it.
    m["ratio_fair"] = med(
        p["chunks_per_s"] / (work.chunks / s)
        for p, s in zip(result.pipeline, result.fair_s, strict=True)
    )
    # The same ratio in CPU time: chunks per CPU second of the pipeline against the baseline's.
    m["ratio_fair_cpu"] = med(
        (work.chunks / p["cpu_s"]) / (work.chunks / c)
        for p, c in zip(result.pipeline, result.fair_cpu_s, strict=True)
    )
    m["pipeline_cpu_s"] = med(p["cpu_s"] for p in result.pipeline)
    m["fair_cpu_s"] = med(result.fair_cpu_s)
    if result.naive_s:
        m["naive_chunks_per_s"] = med(work.chunks / s for s in result.naive_s)
        m["ratio_naive"] = m["pipeline_chunks_per_s"] / m["naive_chunks_per_s"]
    if args.breakdown:
        for key in ("seconds", "encode_s", "embedder_other_s", "bulk_create_s", "rest_s"):
            m[f"pipeline_{key}"] = med(p[key] for p in result.pipeline)
        m["fair_s"] = med(result.fair_s)
    m["ok"] = m["ratio_fair"] >= RATIO_TARGET
    result.medians = m
    return result


# --- reporting -----------------------------------------------------------------------------------


def table(results: list[ConfigResult]) -> str:
    header = [
        "chunking",
        "chunks",
        "windows (per chunk)",
        "pipeline chunks/s",
        "fair baseline chunks/s",
        "ratio",
        ">= 80%",
        "naive baseline chunks/s",
        "pipeline / naive",
    ]
    rows = []
    for r in results:
        m = r.medians
        naive = (
            (f"{m['naive_chunks_per_s']:.2f}", f"{m['ratio_naive']:.3f}")
            if "naive_chunks_per_s" in m
            else ("-", "-")
        )
        rows.append(
            (
                f"{r.size}/{r.overlap}",
                r.chunks,
                f"{r.windows} ({r.windows / r.chunks:.2f})",
                f"{m['pipeline_chunks_per_s']:.2f}",
                f"{m['fair_chunks_per_s']:.2f}",
                f"{m['ratio_fair']:.3f}",
                "PASS" if m["ok"] else "FAIL",
                *naive,
            )
        )
    return md_table(header, rows)


def breakdown_table(results: list[ConfigResult]) -> str:
    header = [
        "chunking",
        "pipeline s",
        "encode s",
        "embedder's own work s",
        "bulk_create s",
        "rest (parse, tokenize, chunk, claims, notify) s",
        "fair baseline encode s",
        "CPU s pipeline / baseline",
        "ratio by CPU time",
    ]
    rows = (
        (
            f"{r.size}/{r.overlap}",
            f"{m['pipeline_seconds']:.1f}",
            f"{m['pipeline_encode_s']:.1f}",
            f"{m['pipeline_embedder_other_s']:.1f}",
            f"{m['pipeline_bulk_create_s']:.1f}",
            f"{m['pipeline_rest_s']:.1f}",
            f"{m['fair_s']:.1f}",
            f"{m['pipeline_cpu_s']:.0f} / {m['fair_cpu_s']:.0f}",
            f"{m['ratio_fair_cpu']:.3f}",
        )
        for r in results
        for m in [r.medians]
        if "pipeline_encode_s" in m
    )
    return md_table(header, rows)


def config_pair(text: str) -> tuple[int, int]:
    size, sep, overlap = text.partition("/")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected SIZE/OVERLAP, not {text!r}")
    return int(size), int(overlap)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=1.0, help="corpus size in megabytes")
    parser.add_argument("--reps", type=int, default=3, help="repetitions; medians reported")
    parser.add_argument(
        "--configs",
        nargs="+",
        type=config_pair,
        default=[(800, 400), (256, 128), (248, 124)],
        metavar="SIZE/OVERLAP",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--batch-size", type=int, default=0, help="EMBEDDING_BATCH_SIZE (default: the setting's)"
    )
    parser.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    parser.add_argument(
        "--no-breakdown", dest="breakdown", action="store_false", help="no timers in the pipeline"
    )
    parser.add_argument("--no-redis", action="store_true", help="PostgreSQL channel layer")
    parser.add_argument("--keep-var", action="store_true", help="keep the var directory")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.mb <= 0:
        parser.error("--reps must be >= 1 and --mb > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    loadavg = os.getloadavg()
    results: list[ConfigResult] = []

    def measure_all() -> list[tuple[str, bytes]]:
        where = start_django(args)
        import torch
        from django.conf import settings

        docs = build_corpus(args.mb, args.seed)
        log(
            f"database: {where}; channel layer {args.channel_layer}; corpus {len(docs)} documents, "
            f"{sum(len(d) for _, d in docs) / 1e6:.2f} MB; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; EMBEDDING_BATCH_SIZE "
            f"{settings.EMBEDDING_BATCH_SIZE}"
        )
        # Warm-up, not timed: the model's load, the first encode, a small document processed.
        encode(["warm-up " * 50] * 8, settings.EMBEDDING_BATCH_SIZE)
        small = [("warm-up.txt", docs[0][1][:20_000])]
        run_pipeline(small, plan_work(small, *MAIN_CONFIG), "warmup", args.breakdown)
        for size, overlap in args.configs:
            results.append(measure_config(args, docs, size, overlap))
        return docs

    status, docs = run_sync(measure_all)
    if status:
        return status

    import torch

    print()
    print(
        f"ingest, {started:%Y-%m-%d %H:%M} UTC, nproc {os.cpu_count()}, Python "
        f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} "
        f"threads); corpus {len(docs)} documents, {sum(len(d) for _, d in docs) / 1e6:.2f} MB; "
        f"medians of {args.reps} repetitions; load average at start "
        f"{' '.join(f'{x:.2f}' for x in loadavg)}, at the end "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(table(results))
    if args.breakdown:
        print()
        print(breakdown_table(results))
    main_result = next((r for r in results if (r.size, r.overlap) == MAIN_CONFIG), results[0])
    ok = bool(main_result.medians["ok"])
    if args.json:
        payload = {
            "date": started.isoformat(),
            "nproc": os.cpu_count(),
            "argv": sys.argv,
            "loadavg_start": loadavg,
            "loadavg_end": os.getloadavg(),
            "channel_layer": args.channel_layer,
            "corpus": {"documents": len(docs), "bytes": sum(len(d) for _, d in docs)},
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
