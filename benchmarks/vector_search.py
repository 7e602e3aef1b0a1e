"""Vector search inside one index of many: agentdeck's search API against its own raw SQL.

The issue's targets, for 100,000 chunks of 384 dimensions in 100 indices of one user:
recall@10 >= 0.95 for a search restricted to one index, and the API's p95 latency at most
1.5 x the raw query's p95 + 5 ms.

**Data.** ``--indices`` vector indices (embedder ``hash``, model ``hash-v1``, 384 dimensions) of
one user, ``--files-per-index`` files each, ``--chunks`` chunks in all, written into the real
tables (``vector_indices``, ``file_metadata``, ``vector_index_files``, ``chunks``); the chunks
with ``COPY`` (psycopg ``cursor.copy``), the few thousand other rows with ``bulk_create``. The
indices' and attachments' ``chunk_count``/``file_count`` are what ``vector_index_refresh`` would write,
so the app picks its search path from the true sizes. Texts are English words (the vocabulary
of Python's own documentation, ``pydoc_data.topics``) in phrases of 2-4 words drawn from topics:
each index has ``TOPICS_PER_INDEX`` of ``2 x indices`` topics (so indices share some topics),
each file mixes two of its index's topics, and each chunk has ``--chunk-words`` words (600 by
default, about the 800 word pieces of the default chunking): ~40% common phrases, ~52% phrases
of the file's topics, the rest phrases of any topic. The embedding is the app's own
``HashEmbedder(384)`` of the chunk's text (computed in a process pool), so a query made of a
topic's words has true neighbours, and the vectors share a common component as real sentence
embeddings do. (They are a hard case for a graph index, see RESULTS.md: the ``--sweep-ef``
diagnostic measures the graph without any filter.) ``token_count`` is the MiniLM word-piece
count of the text. Before the COPY the partial HNSW index for 384 dimensions and the full-text
GIN index are dropped; they are recreated afterwards from their own definitions
(``pg_indexes.indexdef``, so exactly migration 0002's ``m = 16, ef_construction = 64``), then
``ANALYZE``. The data set is kept in the benchmark's database (``--var-dir``) and reused by the
next invocation with the same parameters (``--fresh`` rebuilds it).

**Queries.** ``--queries`` queries (after ``--warmup`` uncounted ones), each for a random index:
2-3 phrases of one of that index's topics (a word dropped from some), sometimes with a common
phrase (``in-topic``), or for a fraction ``--off-topic`` of them of a topic the index does not
have (``off-topic``: the nearest chunks are far and spread out, the hard case for a graph walk).

**Paths** (``--paths``), each a server started with its settings, in turn:

* ``default``: the server as configured (``VECTOR_SEARCH_EXACT_MAX_CHUNKS`` 20,000, so 1,000
  chunks per index take the exact branch: every chunk of the index is ranked, a MATERIALIZED CTE
  over the btree on ``(index_id, file_id, position)``).
* ``exact``: the exact branch whatever the size (``VECTOR_SEARCH_EXACT_MAX_CHUNKS`` 10^9).
* ``hnsw``: ``VECTOR_SEARCH_EXACT_MAX_CHUNKS=0``: the HNSW branch, pgvector's iterative scan
  (``strict_order``, ``ef_search`` 100) as the app sets it; the planner still picks the plan, and
  for a selective filter it often prefers the btree and a sort (exact).
* ``hnsw-forced``: the HNSW branch with ``enable_sort`` off in every session of the server
  (``PGOPTIONS``) and of the raw connection, so every query walks the graph.

For each query, each going first in turn: (a) **API**: ``POST
/api/v1/vector-indices/{id}/search/`` ``{"query", "top_k": 10, "mode": "vector"}`` to daphne
(``manage.py serve --no-worker``), one ``http.client`` keep-alive connection (httpx cost ~0.35 ms
per request more on the client), a JWT from ``manage.py dev_token``, the JSON body decoded:
the wall time of the request; (b) **raw**: the SQL the app runs for that branch (a copy of
``search.vector_candidates`` as vector search calls it: the same statements, each ranked row
joined with what the API shows of it, the same ``SET LOCAL``s and transaction for the graph
walk, none for the exact read, the query vector precomputed by the same embedder and sent as the same literal,
client-side binding as Django does) on one persistent psycopg connection; (c) **in-process**:
the same request through Django's test client in this process (the whole middleware, DRF and
app stack, a database connection per request as the server gets it: borrowed from Django's
pool when ``DATABASE_POOL`` is on, as ``config/asgi.py`` sets it for daphne, else a new one; but
no HTTP and no daphne). Ground truth is exact search with index
scans off (``SET enable_indexscan = off``: a bitmap scan of the index's rows and a sort by true
distance), computed once per query before the passes. recall@10 = |returned ∩ exact top 10| /
10, for the API's and the raw SQL's results (they must return the same ids). The API floor
(``GET /api/v1/vector-indices/{id}/``: auth, one row, JSON) is measured alongside, to show what
an API request costs without any search. The plan of every query is checked (does it walk the
HNSW index?), and ``EXPLAIN (ANALYZE, BUFFERS)`` of the first query of each path is logged and
kept in the JSON output. Afterwards, raw SQL only: the forced HNSW branch at several
``ef_search`` values (``--sweep-ef``), and the graph's recall without any filter (the whole
table's top 10 against an exact scan of the whole table, ``--unfiltered-queries``).

**Database.** Without ``DATABASE_URL`` the embedded PostgreSQL 18 + pgvector 0.8 (the one
``make run`` uses) is started on a data directory of its own, ``./var/bench-vector-search``
(``--var-dir``), and kept for the next run (``--drop`` removes it at the end). With
``DATABASE_URL`` that database is used (it needs ``CREATE EXTENSION vector``; this machine's
PostgreSQL 15 on 127.0.0.1:5432 has no pgvector). The server gets the same ``DATABASE_URL``,
``THROTTLE_USER_RATE`` raised (one user sends every request) and, when Redis answers on
127.0.0.1:6379, ``REDIS_URL`` database 13 (production's cache, so the throttle's counters live
where they would; nothing is flushed) - ``--no-redis`` leaves it out.

    .venv/bin/python benchmarks/vector_search.py                       # 100k chunks, 100 indices
    .venv/bin/python benchmarks/vector_search.py --chunks 10000 --indices 10 --queries 100
    .venv/bin/python benchmarks/vector_search.py --json /tmp/vector.json
    .venv/bin/python benchmarks/vector_search.py --chunks 100000 --indices 4 \
        --var-dir var/bench-vector-search-25k --paths default exact hnsw-forced

Each path is measured ``--repeat`` times (3; a server start each, the queries in the same order):
the tables show every repetition, and the verdicts are on the medians: the median API p95 and
the median of each repetition's margin (its limit from its own raw p95, minus its API p95). On
this shared machine one 200-query p95 moves by ±20% from one minute to the next.

Exit status: 0 when every target is met, 2 when one is missed, 1 when the benchmark failed.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from _support import loadavg_text, log, log_as, redis_answers, run_sync  # noqa: E402
from _vector_search.config import DIMENSIONS, REDIS_DB  # noqa: E402
from _vector_search.database import start_django, storage_facts  # noqa: E402
from _vector_search.dataset import build_dataset, dataset_params  # noqa: E402
from _vector_search.measure import PathResult, measure_path  # noqa: E402
from _vector_search.options import parse_args  # noqa: E402
from _vector_search.report import (  # noqa: E402
    details,
    medians_table,
    path_medians,
    sweep_table,
    table,
)
from _vector_search.sql import ground_truth  # noqa: E402
from _vector_search.sweep import hnsw_sweep  # noqa: E402
from _vector_search.text import build_text_model, make_queries  # noqa: E402

log_as("vector")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.split("\n\n")[0], argv)
    started = datetime.now(UTC)
    loadavg = os.getloadavg()
    results: list[PathResult] = []
    sweep: dict[str, Any] = {}

    def measure_all() -> tuple[Any, ...]:
        where = start_django(args)
        from django.conf import settings

        log(
            f"database: {where} (PostgreSQL {args.server_version}, pgvector "
            f"{args.pgvector_version})"
        )
        index_ids, load = build_dataset(args)
        storage = storage_facts()
        log(
            "chunks: {rows} rows, heap {heap_mb:.0f} MB ({rows_per_heap_page:.1f} rows/page), "
            "TOAST {toast_mb:.0f} MB, indexes {indexes_mb:.0f} MB (HNSW {hnsw_mb:.0f} MB); "
            "stored per row: embedding {avg_embedding_bytes:.0f} B, text {avg_text_stored_bytes:.0f}"
            " B (of {avg_text_bytes:.0f}), tsvector {avg_tsvector_bytes:.0f} B".format(**storage)
        )
        model = build_text_model(args.seed, args.indices)
        queries = make_queries(
            model, args.queries + args.warmup, args.indices, args.off_topic, args.seed
        )
        truth_s = ground_truth(queries, index_ids, args.top_k)
        ties = sum(q.tie_at_k for q in queries)
        log(
            f"ground truth (exact, index scans off) for {len(queries)} queries in {truth_s:.1f}s; "
            f"{ties} with a tie at rank {args.top_k}"
        )
        warm, timed = queries[: args.warmup], queries[args.warmup :]
        redis_url = ""
        if not args.no_redis and redis_answers():
            redis_url = f"redis://127.0.0.1:6379/{REDIS_DB}"
        for path in args.paths:
            for rep in range(args.repeat):
                result = measure_path(
                    args, path, warm, timed, index_ids, settings.DATABASE_URL, redis_url
                )
                result.rep = rep + 1
                results.append(result)
        if args.sweep_ef or args.unfiltered_queries:
            sweep.update(hnsw_sweep(args, timed, index_ids))
        return load, storage, truth_s, ties, redis_url

    try:
        status, measured = run_sync(measure_all)
    finally:
        if args.drop:
            from django.db import connections

            connections.close_all()
            shutil.rmtree(args.var_dir, ignore_errors=True)
    if status:
        return status
    load, storage, truth_s, ties, redis_url = measured

    print()
    print(
        f"vector search, {started:%Y-%m-%d %H:%M} UTC, nproc {os.cpu_count()}, Python "
        f"{platform.python_version()}, PostgreSQL {args.server_version}, pgvector "
        f"{args.pgvector_version}; load average at start {loadavg_text(loadavg)}"
    )
    print(
        f"{args.chunks} chunks x {DIMENSIONS} dimensions in {args.indices} indices "
        f"({args.chunks // args.indices} each), {args.queries} queries per path "
        f"({args.off_topic:.0%} off-topic), top_k {args.top_k}, ef_search {args.ef_search}; "
        f"server cache: {'Redis' if redis_url else 'local memory'}; database pool (web and "
        f"in-process): {os.environ.get('DATABASE_POOL')}"
    )
    print(table(results, args.top_k))
    print()
    print(details(results, args.top_k))
    medians = path_medians(results)
    if args.repeat > 1:
        print()
        print(medians_table(medians, args.repeat))
    if sweep:
        print()
        print(sweep_table(sweep, args.top_k))
    ok = all(m["latency_ok"] and m["recall_ok"] for m in medians.values())
    if args.json:
        payload = {
            "date": started.isoformat(),
            "nproc": os.cpu_count(),
            "loadavg_start": loadavg,
            "loadavg_end": os.getloadavg(),
            "argv": sys.argv,
            "postgres": args.server_version,
            "pgvector": args.pgvector_version,
            "dataset": dataset_params(args),
            "load": load,
            "storage": storage,
            "redis": bool(redis_url),
            "ground_truth_s": truth_s,
            "ties_at_k": ties,
            "results": [asdict(r) for r in results],
            "medians": medians,
            "hnsw_sweep": sweep,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
