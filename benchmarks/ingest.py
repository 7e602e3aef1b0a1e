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

import json
import os
import platform
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from _ingest.config import MAIN_CONFIG  # noqa: E402
from _ingest.corpus import build_corpus  # noqa: E402
from _ingest.environment import start_django  # noqa: E402
from _ingest.measure import ConfigResult, measure_config  # noqa: E402
from _ingest.options import parse_args  # noqa: E402
from _ingest.report import breakdown_table, table  # noqa: E402
from _ingest.work import encode, plan_work, run_pipeline  # noqa: E402
from _support import log, log_as, run_sync  # noqa: E402 (the scripts' own directory)

log_as("ingest")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.split("\n\n")[0], argv)
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
