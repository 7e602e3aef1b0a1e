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

import argparse
import collections
import hashlib
import json
import multiprocessing
import os
import platform
import re
import shutil
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
    HOST,
    BenchError,
    KeepAlive,
    Server,
    env_pair,
    log,
    log_as,
    md_rule,
    percentile,
    redis_answers,
    run_sync,
    setup_django,
    verdict,
)

log_as("vector")

DIMENSIONS = 384
RECALL_TARGET = 0.95
LATENCY_FACTOR = 1.5  # API p95 <= LATENCY_FACTOR * raw p95 + LATENCY_SLACK_MS
LATENCY_SLACK_MS = 5.0
USER_ID = "bench-vector-search"
TOPICS_PER_INDEX = 4
TOPIC_WORDS = 60
COMMON_WORDS = 120
PHRASES_PER_TOPIC = 40
COMMON_PHRASES = 200
META_TABLE = "bench_vector_search_meta"
DATASET_VERSION = 2  # bump when the generator changes: a kept data set is then rebuilt
REDIS_DB = 13
EXACT_MAX = "VECTOR_SEARCH_EXACT_MAX_CHUNKS"
PATHS = {
    # path -> settings the server gets for it. "default": the app as configured (exact search
    # up to 20,000 chunks per index, so exact for 1,000-chunk indices). "exact": the exact
    # branch whatever the size. "hnsw": the app's HNSW branch as it runs; the planner may still
    # prefer the btree on index_id and a sort (a one-index filter is very selective), which is
    # exact. "hnsw-forced": the HNSW branch made to take the HNSW index (every session of the
    # server, and the raw connection, with enable_sort off), to measure what the graph walk with
    # iterative scan returns.
    "default": {},
    "exact": {EXACT_MAX: "1000000000"},
    "hnsw": {EXACT_MAX: "0"},
    "hnsw-forced": {EXACT_MAX: "0", "PGOPTIONS": "-c enable_sort=off"},
}


def vector_literal(vector: list[float]) -> str:
    """What ``search.vector_candidates`` sends for a query vector."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


# --- the text model -------------------------------------------------------------------------------


@dataclass
class TextModel:
    """Words and topics, built deterministically from the seed (the same in every process)."""

    common: list[str]
    common_p: Any  # numpy array of probabilities
    content: list[str]
    topics: list[list[str]]  # each: TOPIC_WORDS words
    topic_p: Any
    index_topics: list[list[int]]
    # Phrases (2-4 words): each topic's PHRASES_PER_TOPIC made of its words, and COMMON_PHRASES
    # of common words; both drawn Zipf-weighted by position (phrase_p, common_phrase_p).
    topic_phrases: list[list[list[str]]]
    phrase_p: Any
    common_phrases: list[list[str]]
    common_phrase_p: Any


def build_text_model(seed: int, n_indices: int) -> TextModel:
    import pydoc_data.topics

    import numpy as np

    text = " ".join(pydoc_data.topics.topics.values()).lower()
    counts = collections.Counter(re.findall(r"[a-z]+", text))
    ranked = [w for w, _ in counts.most_common()]
    common = ranked[:COMMON_WORDS]
    common_p = np.array([counts[w] for w in common], dtype=float)
    content = sorted(w for w in ranked[COMMON_WORDS:] if len(w) >= 4 and counts[w] >= 2)
    rng = np.random.default_rng(seed)
    n_topics = max(2 * n_indices, TOPICS_PER_INDEX + 1)
    topics = [
        [content[i] for i in rng.choice(len(content), TOPIC_WORDS, replace=False)]
        for _ in range(n_topics)
    ]
    zipf = 1.0 / np.arange(1, TOPIC_WORDS + 1)
    index_topics = [
        sorted(int(t) for t in rng.choice(n_topics, TOPICS_PER_INDEX, replace=False))
        for _ in range(n_indices)
    ]
    common_p = common_p / common_p.sum()
    topic_p = zipf / zipf.sum()

    def phrase(words: list[str], p: Any) -> list[str]:
        return [words[int(i)] for i in rng.choice(len(words), int(rng.integers(2, 5)), p=p)]

    topic_phrases = [[phrase(t, topic_p) for _ in range(PHRASES_PER_TOPIC)] for t in topics]
    common_phrases = [phrase(common, common_p) for _ in range(COMMON_PHRASES)]
    pz = 1.0 / np.arange(1, PHRASES_PER_TOPIC + 1)
    cz = 1.0 / np.arange(1, COMMON_PHRASES + 1)
    return TextModel(
        common=common,
        common_p=common_p,
        content=content,
        topics=topics,
        topic_p=topic_p,
        index_topics=index_topics,
        topic_phrases=topic_phrases,
        phrase_p=pz / pz.sum(),
        common_phrases=common_phrases,
        common_phrase_p=cz / cz.sum(),
    )


def make_words(rng: Any, model: TextModel, topics: list[int], n: int) -> list[str]:
    """About ``n`` words as a sequence of phrases: ~40% common phrases, ~52% phrases of the
    given topics, ~8% phrases of any topic (noise). Phrases, not independent words, so that
    word pairs (the hash embedder's other features) recur within a topic as they do in real
    text; independent words would make every pair unique and the vectors mostly noise."""
    out: list[str] = []
    m = n // 2 + 8  # phrases are 3 words on average: enough draws
    kinds = rng.random(m)
    common = rng.choice(COMMON_PHRASES, m, p=model.common_phrase_p)
    topic_of = rng.choice(topics, m)
    any_topic = rng.integers(0, len(model.topics), m)
    phrase_no = rng.choice(PHRASES_PER_TOPIC, m, p=model.phrase_p)
    i = 0
    while len(out) < n:
        if kinds[i % m] < 0.40:
            out.extend(model.common_phrases[common[i % m]])
        elif kinds[i % m] < 0.92:
            out.extend(model.topic_phrases[topic_of[i % m]][phrase_no[i % m]])
        else:
            out.extend(model.topic_phrases[any_topic[i % m]][phrase_no[i % m]])
        i += 1
    return out[:n]


def make_prose(rng: Any, words: list[str]) -> str:
    """Sentences of 8-20 words, capitalised, full stops; paragraphs every ~6 sentences."""
    out, i, sentences = [], 0, 0
    while i < len(words):
        n = int(rng.integers(8, 21))
        sentence = words[i : i + n]
        i += n
        sentences += 1
        out.append(" ".join([sentence[0].capitalize(), *sentence[1:]]) + ".")
        out.append("\n\n" if sentences % 6 == 0 else " ")
    return "".join(out).strip()


# Set in the parent before the pool forks; read by the workers.
_MODEL: TextModel | None = None
_PLAN: dict[str, Any] = {}


def generate_index(index_no: int) -> list[tuple[int, int, str, int, int, int, str]]:
    """Rows of one index: (file no, position, text, token count, char start, char end, vector
    literal), from an RNG of its own (the same data whatever the pool does)."""
    import numpy as np

    from agentdeck.files.embeddings import HashEmbedder, count_tokens

    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per pool process
    model = _MODEL
    assert model is not None
    rng = np.random.default_rng([_PLAN["seed"], index_no])
    embedder = HashEmbedder(DIMENSIONS)
    rows = []
    per_file = _PLAN["chunks_per_file"][index_no]
    own = model.index_topics[index_no]
    for file_no, n_chunks in enumerate(per_file):
        file_topics = [int(t) for t in rng.choice(own, 2, replace=False)]
        offset = 0
        for position in range(n_chunks):
            text = make_prose(rng, make_words(rng, model, file_topics, _PLAN["chunk_words"]))
            vector = embedder.embed([text])[0]
            rows.append(
                (
                    file_no,
                    position,
                    text,
                    count_tokens(text),
                    offset,
                    offset + len(text),
                    vector_literal(vector),
                )
            )
            offset += len(text) // 2  # 50% overlap, as the default 800/400 chunking has
    return rows


@dataclass
class Query:
    index_no: int
    kind: str  # in-topic | off-topic
    text: str
    literal: str = ""
    truth: list[int] = field(default_factory=list)  # exact top-k ids
    truth_distances: list[float] = field(default_factory=list)
    tie_at_k: bool = False  # the k-th and (k+1)-th exact distances are equal


def make_queries(model: TextModel, n: int, n_indices: int, off_topic: float, seed: int):
    import numpy as np

    from agentdeck.files.embeddings import HashEmbedder

    rng = np.random.default_rng([seed, 7919])
    embedder = HashEmbedder(DIMENSIONS)
    queries = []
    for _ in range(n):
        index_no = int(rng.integers(0, n_indices))
        own = model.index_topics[index_no]
        if rng.random() < off_topic:
            kind = "off-topic"
            others = [t for t in range(len(model.topics)) if t not in own]
            topic = int(rng.choice(others))
        else:
            kind = "in-topic"
            topic = int(rng.choice(own))
        # 2-3 of the topic's phrases (a word dropped from some), maybe one common phrase.
        phrases = [
            list(model.topic_phrases[topic][int(rng.choice(PHRASES_PER_TOPIC, p=model.phrase_p))])
            for _ in range(int(rng.integers(2, 4)))
        ]
        for ph in phrases:
            if len(ph) > 2 and rng.random() < 0.3:
                del ph[int(rng.integers(0, len(ph)))]
        if rng.random() < 0.5:
            phrases.insert(
                int(rng.integers(0, len(phrases) + 1)),
                model.common_phrases[int(rng.choice(COMMON_PHRASES, p=model.common_phrase_p))],
            )
        text = " ".join(w for ph in phrases for w in ph)
        queries.append(Query(index_no, kind, text, vector_literal(embedder.embed([text])[0])))
    return queries


# --- Django, the database and the data set -------------------------------------------------------


def start_django(args: argparse.Namespace) -> str:
    """The embedded PostgreSQL on --var-dir (or DATABASE_URL), Django set up, migrated."""
    if os.environ.get("DATABASE_URL"):
        where = "DATABASE_URL"
    else:
        args.var_dir.mkdir(parents=True, exist_ok=True)
        where = f"embedded PostgreSQL in {args.var_dir}"
    os.environ.setdefault("VECTOR_SEARCH_EF_SEARCH", str(args.ef_search))
    os.environ.setdefault("CHANNEL_LAYER", "memory")
    setup_django(
        {
            "AGENTDECK_VAR_DIR": str(args.var_dir),
            "THROTTLE_USER_RATE": "1000000/min",  # the in-process client, like the server
            # The in-process client borrows connections as daphne does: config/asgi.py turns
            # Django's connection pool on for the web process (DATABASE_POOL, since bb6b3f3).
            "DATABASE_POOL": dict(args.server_env).get("DATABASE_POOL", "true"),
            "REDIS_URL": None,  # this process needs no cache or broker
        }
    )
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cur.fetchone()
        cur.execute("SHOW server_version")
        args.server_version = cur.fetchone()[0]
    if row is None:
        raise BenchError("pgvector is not installed in this database")
    args.pgvector_version = row[0]
    return where


def raw_connect(options: str = ""):
    """A psycopg connection to the app's database with Django's binding (client side)."""
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    # Django's cursor is a ClientCursor (parameters interpolated client side), autocommit on,
    # no prepared statements (prepare_threshold None): the same here.
    if options:
        params["options"] = options
    return psycopg.connect(**params, cursor_factory=psycopg.ClientCursor, autocommit=True)


def dataset_params(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "version": DATASET_VERSION,
        "chunks": args.chunks,
        "indices": args.indices,
        "files_per_index": args.files_per_index,
        "chunk_words": args.chunk_words,
        "seed": args.seed,
    }


def chunks_per_file(args: argparse.Namespace) -> list[list[int]]:
    """Chunks of each file of each index: --chunks spread evenly over indices, then files."""
    out = []
    base, extra = divmod(args.chunks, args.indices)
    for i in range(args.indices):
        n = base + (1 if i < extra else 0)
        fb, fe = divmod(n, args.files_per_index)
        out.append([fb + (1 if f < fe else 0) for f in range(args.files_per_index)])
    return out


def existing_dataset(cur, params: dict[str, Any]) -> list[str] | None:
    """Index ids of a kept data set made with these parameters, else None."""
    cur.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key text PRIMARY KEY, value jsonb)")
    cur.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'dataset'")  # noqa: S608
    row = cur.fetchone()
    if row is None:
        return None
    value = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    if value.get("params") != params:
        return None
    ids = value["index_ids"]
    cur.execute("SELECT count(*) FROM chunks WHERE index_id = ANY(%s::uuid[])", [ids])
    if cur.fetchone()[0] != params["chunks"]:
        return None
    return ids


def build_dataset(args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    """Returns (index ids in index order, facts about the load)."""
    global _MODEL, _PLAN
    from django.db import connection, transaction
    from django.utils import timezone

    from agentdeck.accounts.models import User
    from agentdeck.files.models import FileMetadata, VectorIndex, VectorIndexFile

    params = dataset_params(args)
    with connection.cursor() as cur:
        ids = None if args.fresh else existing_dataset(cur, params)
    if ids is not None:
        log(f"reusing the data set kept in the database ({args.chunks} chunks, {params})")
        return ids, {"reused": True}

    facts: dict[str, Any] = {"reused": False}
    started = time.perf_counter()
    user = User.objects.filter(pk=USER_ID).first()
    if user is not None:
        log("removing the previous data set")
        with connection.cursor() as cur:
            cur.execute(
                "DELETE FROM chunks WHERE index_id IN "
                "(SELECT id FROM vector_indices WHERE owner_id = %s)",
                [USER_ID],
            )
        VectorIndexFile.objects.filter(index__owner_id=USER_ID).delete()
        VectorIndex.objects.filter(owner_id=USER_ID).delete()
        FileMetadata.objects.filter(owner_id=USER_ID).delete()
    else:
        user = User.objects.create_user(f"{USER_ID}@example.com", id=USER_ID, name="vector bench")

    plan = chunks_per_file(args)
    _MODEL = build_text_model(args.seed, args.indices)
    _PLAN = {"seed": args.seed, "chunks_per_file": plan, "chunk_words": args.chunk_words}
    now = timezone.now()
    indices = [
        VectorIndex(
            owner=user,
            name=f"bench index {i:03d}",
            embedder="hash",
            embedding_model="hash-v1",
            dimensions=DIMENSIONS,
            status="ready",
            file_count=len(plan[i]),
            chunk_count=sum(plan[i]),
        )
        for i in range(args.indices)
    ]
    files = [
        [
            FileMetadata(
                owner=user,
                name=f"index-{i:03d}-doc-{f:02d}.txt",
                size=0,
                mime_type="text/plain",
                sha256=hashlib.sha256(f"{args.seed}/{i}/{f}/{uuid.uuid4()}".encode()).hexdigest(),
                content=f"files/{USER_ID}/bench-{i}-{f}",
                status="ready",
                parsed_at=now,
                processed_at=now,
                progress=100,
                chunk_count=plan[i][f],
            )
            for f in range(len(plan[i]))
        ]
        for i in range(args.indices)
    ]
    with transaction.atomic():
        VectorIndex.objects.bulk_create(indices)
        FileMetadata.objects.bulk_create([f for per in files for f in per], batch_size=1000)
    attachment_rows: dict[tuple[int, int], VectorIndexFile] = {}

    with connection.cursor() as cur:
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks' AND "
            "indexname IN (%s, %s)",
            [f"chunks_embedding_hnsw_{DIMENSIONS}", "chunks_search_gin"],
        )
        dropped = cur.fetchall()
        for name, _ in dropped:
            cur.execute(f'DROP INDEX "{name}"')
    connection.close()  # the pool forks: no open connection in the children

    log(
        f"generating {args.chunks} chunks of ~{args.chunk_words} words and their hash "
        f"embeddings with {os.cpu_count()} processes, COPYing them per index"
    )
    tokens: dict[tuple[int, int], list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    gen_t0 = time.perf_counter()
    copy_seconds = 0.0
    ctx = multiprocessing.get_context("fork")
    with raw_connect() as raw, ctx.Pool(os.cpu_count() or 1) as pool:
        for i, rows in enumerate(pool.imap(generate_index, range(args.indices))):
            index_id = str(indices[i].pk)
            t0 = time.perf_counter()
            with (
                raw.cursor() as cur,
                cur.copy(
                    "COPY chunks (index_id, file_id, position, text, token_count, char_start,"
                    " char_end, page, embedding_model, dimensions, embedding) FROM STDIN"
                ) as copy,
            ):
                for file_no, position, text, n_tokens, start, end, literal in rows:
                    copy.write_row(
                        (
                            index_id,
                            str(files[i][file_no].pk),
                            position,
                            text,
                            n_tokens,
                            start,
                            end,
                            None,
                            "hash-v1",
                            DIMENSIONS,
                            literal,
                        )
                    )
                    t = tokens[(i, file_no)]
                    t[0] += n_tokens
                    t[1] += len(text.encode()) + 4 * DIMENSIONS
                    t[2] = max(t[2], end)
            copy_seconds += time.perf_counter() - t0
            if (i + 1) % max(1, args.indices // 10) == 0:
                log(f"  {i + 1}/{args.indices} indices loaded")
    facts["generate_and_copy_s"] = time.perf_counter() - gen_t0
    facts["copy_s"] = copy_seconds

    now = timezone.now()
    for i in range(args.indices):
        for f in range(len(plan[i])):
            n_tokens, size, _chars = tokens[(i, f)]
            attachment_rows[(i, f)] = VectorIndexFile(
                index=indices[i],
                file=files[i][f],
                status="ready",
                chunk_count=plan[i][f],
                token_count=n_tokens,
                bytes=size,
                processed_at=now,
            )
    VectorIndexFile.objects.bulk_create(list(attachment_rows.values()), batch_size=1000)
    for i in range(args.indices):
        VectorIndex.objects.filter(pk=indices[i].pk).update(
            bytes=sum(attachment_rows[(i, f)].bytes for f in range(len(plan[i])))
        )
    for i in range(args.indices):
        for f in range(len(plan[i])):
            FileMetadata.objects.filter(pk=files[i][f].pk).update(
                size=tokens[(i, f)][2], char_count=tokens[(i, f)][2]
            )

    with connection.cursor() as cur:
        cur.execute("SET maintenance_work_mem = '2GB'")
        cur.execute("SET max_parallel_maintenance_workers = 1")
        for name, definition in dropped:
            t0 = time.perf_counter()
            log(f"creating {name} again: {definition}")
            cur.execute(definition)
            facts[f"create_{name}_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cur.execute("ANALYZE chunks, vector_indices, vector_index_files, file_metadata")
        facts["analyze_s"] = time.perf_counter() - t0
        index_ids = [str(ix.pk) for ix in indices]
        # --fresh on a new database never read the table, so it may not exist yet.
        cur.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key text PRIMARY KEY, value jsonb)")
        cur.execute(f"DELETE FROM {META_TABLE} WHERE key = 'dataset'")  # noqa: S608
        cur.execute(
            f"INSERT INTO {META_TABLE} (key, value) VALUES ('dataset', %s::jsonb)",  # noqa: S608
            [json.dumps({"params": params, "index_ids": index_ids})],
        )
    facts["total_s"] = time.perf_counter() - started
    log(
        f"data set built in {facts['total_s']:.0f}s (generate + COPY "
        f"{facts['generate_and_copy_s']:.0f}s, of which COPY {copy_seconds:.0f}s; "
        + ", ".join(f"{k} {v:.0f}s" for k, v in facts.items() if k.startswith("create_"))
        + ")"
    )
    return index_ids, facts


def storage_facts() -> dict[str, Any]:
    """Sizes of chunks and its indices, and where the embeddings live (inline or TOAST)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT pg_relation_size('chunks'),
                   pg_relation_size(reltoastrelid),
                   pg_indexes_size('chunks'),
                   (SELECT pg_relation_size(%s::regclass)),
                   (SELECT count(*) FROM chunks)
            FROM pg_class WHERE relname = 'chunks'
            """,
            [f"chunks_embedding_hnsw_{DIMENSIONS}"],
        )
        heap, toast, indexes, hnsw, rows = cur.fetchone()
        # A sample: average stored sizes of the columns.
        cur.execute(
            "SELECT avg(pg_column_size(embedding)), avg(pg_column_size(text)),"
            " avg(pg_column_size(search)), avg(octet_length(text)) FROM"
            " (SELECT * FROM chunks TABLESAMPLE SYSTEM (1)) s"
        )
        emb, text, search, text_raw = cur.fetchone()
    mb = 1024 * 1024
    return {
        "rows": rows,
        "heap_mb": heap / mb,
        "toast_mb": toast / mb,
        "indexes_mb": indexes / mb,
        "hnsw_mb": hnsw / mb,
        "avg_embedding_bytes": float(emb or 0),
        "avg_text_stored_bytes": float(text or 0),
        "avg_text_bytes": float(text_raw or 0),
        "avg_tsvector_bytes": float(search or 0),
        "rows_per_heap_page": rows / max(1, heap / 8192),
    }


# --- the app's SQL, by hand ----------------------------------------------------------------------

# Copies of agentdeck.files.search.vector_candidates' two statements as vector search sends them
# (d = 384, no filters, with_hits: each ranked row joined with what the API shows of it); the
# benchmark checks that they return what the API returns.
_HITS = """
        SELECT r.id, r.distance, c.text, c.file_id, f.name, c.position, c.page, c.char_start,
               c.char_end, coalesce(a.attributes, '{}'::jsonb)
        FROM ranked r JOIN chunks c ON c.id = r.id
            JOIN file_metadata f ON f.id = c.file_id
            LEFT JOIN vector_index_files a ON a.index_id = c.index_id AND a.file_id = c.file_id
        ORDER BY r.distance, r.id
"""
EXACT_SQL = f"""
    WITH ranked AS (
                WITH candidates AS MATERIALIZED (
                    SELECT c.id, c.embedding::vector({DIMENSIONS}) <=> %s::vector({DIMENSIONS}) AS distance
                    FROM chunks c
                    WHERE c.index_id = %s AND c.dimensions = {DIMENSIONS}
                )
                SELECT id, distance FROM candidates ORDER BY distance, id LIMIT %s
    ){_HITS}"""  # noqa: S608 (our constants)
HNSW_SQL = f"""
    WITH ranked AS (
                SELECT c.id, c.embedding::vector({DIMENSIONS}) <=> %s::vector({DIMENSIONS}) AS distance
                FROM chunks c
                WHERE c.dimensions = {DIMENSIONS} AND c.index_id = %s
                ORDER BY c.embedding::vector({DIMENSIONS}) <=> %s::vector({DIMENSIONS})
                LIMIT %s
    ){_HITS}"""  # noqa: S608 (our constants)
TRUTH_SQL = f"""
    SELECT id, embedding::vector({DIMENSIONS}) <=> %s::vector({DIMENSIONS}) AS distance
    FROM chunks WHERE index_id = %s ORDER BY distance, id LIMIT %s
"""  # noqa: S608 (our constants)


def raw_search(
    conn,
    path: str,
    literal: str,
    index_id: str,
    k: int,
    ef_search: int,
    explain: str = "",
    fallback: bool = True,
):
    """The app's statements for ``path`` (exact: one statement; the graph walk: in one
    transaction with its SET LOCALs): (rows, plan text or None, whether the walk came back
    short). ``explain``: "" runs the query, "plan" shows the plan,
    "analyze" runs it under EXPLAIN ANALYZE. ``fallback``: as the app does since commit
    8aae339, a walk that returns fewer than ``k`` rows is answered by the exact read in the same
    transaction (False: the walk's rows as they are, to measure the graph)."""
    prefix = {
        "": "",
        "plan": "EXPLAIN (COSTS OFF) ",
        "analyze": "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ",
    }[explain]
    short = False
    if path == "exact":  # one statement, outside a transaction, as the app sends it
        with conn.cursor() as cur:
            cur.execute(prefix + EXACT_SQL, [literal, index_id, k])
            rows = cur.fetchall()
    else:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET LOCAL hnsw.iterative_scan = strict_order")
            cur.execute("SET LOCAL hnsw.ef_search = %s", [max(ef_search, k)])
            cur.execute(prefix + HNSW_SQL, [literal, index_id, literal, k])
            rows = cur.fetchall()
            short = not explain and len(rows) < k
            if short and fallback:
                cur.execute(EXACT_SQL, [literal, index_id, k])
                rows = cur.fetchall()
    if explain:
        # The query vector's literal is long: shown as [...].
        plan = re.sub(r"'\[[-0-9.,e]{40,}\]'", "'[...]'", "\n".join(r[0] for r in rows))
        return [], plan, False
    return [(int(r[0]), float(r[1])) for r in rows], None, short


def ground_truth(queries: list[Query], index_ids: list[str], k: int) -> float:
    """Exact top-k (plus one, to see ties) of every query with index scans off; seconds taken."""
    t0 = time.perf_counter()
    with raw_connect() as conn, conn.cursor() as cur:
        cur.execute("SET enable_indexscan = off")  # no HNSW: a bitmap scan of the index's rows
        cur.execute("EXPLAIN " + TRUTH_SQL, [queries[0].literal, index_ids[0], k + 1])
        plan = "\n".join(r[0] for r in cur.fetchall())
        if "hnsw" in plan:
            raise BenchError(f"the ground-truth query uses the HNSW index:\n{plan}")
        for q in queries:
            cur.execute(TRUTH_SQL, [q.literal, index_ids[q.index_no], k + 1])
            rows = cur.fetchall()
            q.truth = [int(r[0]) for r in rows[:k]]
            q.truth_distances = [float(r[1]) for r in rows[:k]]
            q.tie_at_k = len(rows) > k and abs(float(rows[k][1]) - float(rows[k - 1][1])) < 1e-9
    return time.perf_counter() - t0


def recall(ids: list[int], truth: list[int]) -> float:
    return len(set(ids) & set(truth)) / max(1, len(truth))


# --- one path ------------------------------------------------------------------------------------


@dataclass
class PathResult:
    path: str
    server_env: dict[str, str]
    api_ms: list[float]
    raw_ms: list[float]
    django_ms: list[float]  # the same request through Django's test client: no HTTP, no daphne
    floor_ms: list[float]  # GET of the index: the API without any search
    api_recall: list[float]
    raw_recall: list[float]
    kinds: list[str]
    short_results: int  # queries answered with fewer than k rows
    api_raw_mismatch: int  # queries where the API and the raw SQL returned different ids
    plan: str
    branch: str = ""  # the branch of search.vector_candidates the app takes
    hnsw_plans: int = 0  # queries whose plan walks the HNSW index
    short_walks: int = 0  # raw SQL: graph walks that came back short (the exact read answered)
    django_raw_mismatch: int = 0  # the in-process request returned other ids than the raw SQL
    summary: dict[str, float] = field(default_factory=dict)
    rep: int = 1  # which repetition of the path (--repeat)


def measure_path(
    args: argparse.Namespace,
    path: str,
    warm: list[Query],
    queries: list[Query],
    index_ids: list[str],
    database_url: str,
    redis_url: str,
) -> PathResult:
    extra_env = {**PATHS[path], **dict(args.server_env)}
    server = Server(
        var_dir=args.var_dir,
        env_overrides={
            "DATABASE_URL": database_url,
            "DEBUG": "false",
            "SEED_DEMO": "false",
            **({"REDIS_URL": redis_url} if redis_url else {"CHANNEL_LAYER": "postgres"}),
            **extra_env,
        },
    )
    k = args.top_k
    try:
        log(f"[{path}] starting the server on {server.url} ({PATHS[path] or 'default settings'})")
        server.start(f"serve-{path}")
        token = server.manage("dev_token", "--sub", USER_ID, "--ttl", "86400").strip()
        client = KeepAlive(HOST, server.port, {"Authorization": f"Bearer {token}"})
        raw = raw_connect(PATHS[path].get("PGOPTIONS", ""))
        sql_path = branch(path, args.chunks // args.indices)

        def api(q: Query) -> list[dict]:
            status, body = client.request(
                "POST",
                f"/api/v1/vector-indices/{index_ids[q.index_no]}/search/",
                {"query": q.text, "top_k": k, "mode": "vector"},
            )
            if status != 200:
                raise BenchError(f"search -> {status}: {str(body)[:500]}")
            return body["results"]

        _, plan, _ = raw_search(
            raw,
            sql_path,
            queries[0].literal,
            index_ids[queries[0].index_no],
            k,
            args.ef_search,
            "analyze",
        )
        uses_hnsw = "hnsw" in plan
        log(f"[{path}] plan of the first query (uses HNSW: {uses_hnsw}):\n{plan}")
        if (sql_path == "hnsw") != uses_hnsw:
            log(f"[{path}] NOTE: the plan does not use the index this path is named after")
        from django.db import connection as db_connection

        django_client, undo = inprocess_client(path, token)

        def in_process(q: Query) -> list[int]:
            r = django_client.post(
                f"/api/v1/vector-indices/{index_ids[q.index_no]}/search/",
                {"query": q.text, "top_k": k, "mode": "vector"},
                content_type="application/json",
            )
            if r.status_code != 200:
                raise BenchError(f"in-process search -> {r.status_code}: {r.content[:500]}")
            return [h["chunk_id"] for h in r.json()["results"]]

        # Warm-up: caches, the server's imports and first connections.
        for q in warm:
            in_process(q)
            api(q)
            raw_search(raw, sql_path, q.literal, index_ids[q.index_no], k, args.ef_search)
            client.request("GET", f"/api/v1/vector-indices/{index_ids[q.index_no]}/")
        result = PathResult(path, extra_env, [], [], [], [], [], [], [], 0, 0, plan)
        result.branch = sql_path
        # Which plan each query gets (EXPLAIN without ANALYZE: planning only, not timed).
        for q in queries:
            _, qplan, _ = raw_search(
                raw, sql_path, q.literal, index_ids[q.index_no], k, args.ef_search, "plan"
            )
            result.hnsw_plans += "hnsw" in qplan
        for n, q in enumerate(queries):
            index_id = index_ids[q.index_no]

            def run_api(q: Query = q) -> list[int]:
                t0 = time.perf_counter()
                hits = api(q)
                result.api_ms.append((time.perf_counter() - t0) * 1000)
                return [h["chunk_id"] for h in hits]

            def run_raw(q: Query = q, index_id: str = index_id) -> list[int]:
                t0 = time.perf_counter()
                rows, _, short = raw_search(raw, sql_path, q.literal, index_id, k, args.ef_search)
                result.short_walks += short
                result.raw_ms.append((time.perf_counter() - t0) * 1000)
                return [cid for cid, _ in rows]

            def run_django(q: Query = q) -> list[int]:
                # Django's test client keeps the connection between requests; the server gets
                # one per request (DATABASE_CONN_MAX_AGE 0: a new one, or one borrowed from the
                # pool): close it first, so that the timed request gets its own the same way.
                db_connection.close()
                t0 = time.perf_counter()
                ids = in_process(q)
                result.django_ms.append((time.perf_counter() - t0) * 1000)
                return ids

            got: dict[str, list[int]] = {}
            order = [("api", run_api), ("raw", run_raw), ("django", run_django)]
            for name, fn in order[n % 3 :] + order[: n % 3]:  # each goes first in turn
                got[name] = fn()
            api_ids, raw_ids = got["api"], got["raw"]
            t0 = time.perf_counter()
            status, body = client.request("GET", f"/api/v1/vector-indices/{index_id}/")
            result.floor_ms.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise BenchError(f"GET index -> {status}: {str(body)[:300]}")
            result.api_recall.append(recall(api_ids, q.truth))
            result.raw_recall.append(recall(raw_ids, q.truth))
            result.kinds.append(q.kind)
            result.short_results += len(api_ids) < k
            result.api_raw_mismatch += api_ids != raw_ids
            result.django_raw_mismatch += got["django"] != raw_ids
        undo()
        client.close()
        raw.close()
    except BenchError:
        log(f"serve log:\n{server.log_tail()}")
        raise
    finally:
        log(f"[{path}] stopping the server")
        server.stop()
    summarise(result)
    s = result.summary
    log(
        f"[{path}] API p50 {s['api_p50_ms']:.2f} / p95 {s['api_p95_ms']:.2f} ms, raw p50 "
        f"{s['raw_p50_ms']:.2f} / p95 {s['raw_p95_ms']:.2f} ms, recall@{k} {s['api_recall']:.4f} "
        f"(in-topic {s['api_recall_in_topic']:.4f}, off-topic {s['api_recall_off_topic']:.4f}), "
        f"{result.short_results} short results, {result.short_walks} short walks (raw), "
        f"{result.api_raw_mismatch} API/raw mismatches, "
        f"{result.hnsw_plans}/{len(result.kinds)} plans on HNSW, API floor p50 "
        f"{s['floor_p50_ms']:.2f} ms, in-process Django p50 {s['django_p50_ms']:.2f} / p95 "
        f"{s['django_p95_ms']:.2f} ms"
    )
    return result


def exact_max(path: str) -> int:
    from django.conf import settings

    return int(PATHS[path].get(EXACT_MAX, settings.VECTOR_SEARCH_EXACT_MAX_CHUNKS))


def branch(path: str, chunks_per_index: int) -> str:
    """The branch of search.vector_candidates the app takes for ``path`` (every index holds
    ``chunks_per_index`` chunks here, give or take one)."""
    return "exact" if chunks_per_index <= exact_max(path) else "hnsw"


def inprocess_client(path: str, token: str):
    """Django's test client in this process, set up as the server is for ``path``: the whole
    middleware, DRF and app stack with a new database connection per request
    (``DATABASE_CONN_MAX_AGE`` 0), minus daphne and HTTP. Returns (client, undo)."""
    from django.db.backends.signals import connection_created
    from django.test import Client, override_settings

    env = PATHS[path]
    override = override_settings(VECTOR_SEARCH_EXACT_MAX_CHUNKS=exact_max(path))
    override.enable()

    def session_options(sender: Any, connection: Any, **kwargs: Any) -> None:
        if "enable_sort=off" in env.get("PGOPTIONS", ""):
            with connection.cursor() as cur:
                cur.execute("SET enable_sort = off")

    connection_created.connect(session_options, weak=False)

    def undo() -> None:
        connection_created.disconnect(session_options)
        override.disable()
        from django.db import connection

        # Pooled sessions keep what session_options SET: drop them with the path.
        connection.close()
        if getattr(connection, "pool", None):
            connection.close_pool()

    return Client(HTTP_AUTHORIZATION=f"Bearer {token}"), undo


def summarise(r: PathResult) -> None:
    def mean_of(kind: str) -> float:
        values = [x for x, kd in zip(r.api_recall, r.kinds, strict=True) if kd == kind]
        return statistics.fmean(values) if values else float("nan")

    s = {
        "api_p50_ms": percentile(r.api_ms, 50),
        "api_p95_ms": percentile(r.api_ms, 95),
        "raw_p50_ms": percentile(r.raw_ms, 50),
        "raw_p95_ms": percentile(r.raw_ms, 95),
        "django_p50_ms": percentile(r.django_ms, 50),
        "django_p95_ms": percentile(r.django_ms, 95),
        "floor_p50_ms": percentile(r.floor_ms, 50),
        "floor_p95_ms": percentile(r.floor_ms, 95),
        "api_recall": statistics.fmean(r.api_recall),
        "raw_recall": statistics.fmean(r.raw_recall),
        "api_recall_in_topic": mean_of("in-topic"),
        "api_recall_off_topic": mean_of("off-topic"),
        "api_recall_min": min(r.api_recall),
    }
    s["ratio_p95"] = s["api_p95_ms"] / s["raw_p95_ms"]
    s["latency_limit_ms"] = LATENCY_FACTOR * s["raw_p95_ms"] + LATENCY_SLACK_MS
    s["latency_ok"] = s["api_p95_ms"] <= s["latency_limit_ms"]
    s["recall_ok"] = s["api_recall"] >= RECALL_TARGET
    r.summary = s


# --- diagnostics: the HNSW graph on its own --------------------------------------------------------


def hnsw_sweep(args: argparse.Namespace, queries: list[Query], index_ids: list[str]) -> dict:
    """Raw SQL only, no server. (1) The app's HNSW statements forced onto the graph (enable_sort
    off) at several ef_search values: recall@k against the exact ground truth and latency. (2)
    The graph without any filter (the whole table's top k, ef_search = --ef-search): recall
    against an exact scan of the whole table, i.e. the graph's quality on these vectors before
    any filtering."""
    k = args.top_k
    out: dict[str, Any] = {"filtered": [], "unfiltered": {}}
    with raw_connect("-c enable_sort=off") as conn:
        for ef in args.sweep_ef:
            times, recalls, short = [], [], 0
            for q in queries:
                t0 = time.perf_counter()
                rows, _, _ = raw_search(
                    conn, "hnsw", q.literal, index_ids[q.index_no], k, ef, fallback=False
                )
                times.append((time.perf_counter() - t0) * 1000)
                ids = [cid for cid, _ in rows]
                recalls.append(recall(ids, q.truth))
                short += len(ids) < k
            kinds = [q.kind for q in queries]
            row = {
                "ef_search": ef,
                "recall": statistics.fmean(recalls),
                "recall_in_topic": statistics.fmean(
                    [r for r, kd in zip(recalls, kinds, strict=True) if kd == "in-topic"] or [0]
                ),
                "recall_off_topic": statistics.fmean(
                    [r for r, kd in zip(recalls, kinds, strict=True) if kd == "off-topic"] or [0]
                ),
                "p50_ms": percentile(times, 50),
                "p95_ms": percentile(times, 95),
                "short_results": short,
            }
            out["filtered"].append(row)
            log(
                f"[sweep] forced HNSW, ef_search {ef}: recall@{k} {row['recall']:.4f} (in-topic "
                f"{row['recall_in_topic']:.4f}, off-topic {row['recall_off_topic']:.4f}), p50 "
                f"{row['p50_ms']:.2f} / p95 {row['p95_ms']:.2f} ms, {short} short results"
            )
    n = min(len(queries), args.unfiltered_queries)
    if n:
        sql = (
            f"SELECT id FROM chunks WHERE dimensions = {DIMENSIONS} "  # noqa: S608
            f"ORDER BY embedding::vector({DIMENSIONS}) <=> %s::vector({DIMENSIONS}) LIMIT %s"
        )
        recalls, times = [], []
        with raw_connect() as conn, conn.cursor() as cur:
            for q in queries[:n]:
                cur.execute("SET enable_indexscan = off")
                cur.execute(sql, [q.literal, k])
                truth = [r[0] for r in cur.fetchall()]
                cur.execute("SET enable_indexscan = on")
                cur.execute("SET hnsw.ef_search = %s", [args.ef_search])
                t0 = time.perf_counter()
                cur.execute(sql, [q.literal, k])
                ids = [r[0] for r in cur.fetchall()]
                times.append((time.perf_counter() - t0) * 1000)
                recalls.append(recall(ids, truth))
            cur.execute("EXPLAIN (COSTS OFF) " + sql, [queries[0].literal, k])
            plan = "\n".join(r[0] for r in cur.fetchall())
        out["unfiltered"] = {
            "queries": n,
            "ef_search": args.ef_search,
            "recall": statistics.fmean(recalls),
            "p50_ms": percentile(times, 50),
            "p95_ms": percentile(times, 95),
            "uses_hnsw": "hnsw" in plan,
        }
        log(
            f"[sweep] HNSW without a filter (whole table), ef_search {args.ef_search}: recall@{k} "
            f"{out['unfiltered']['recall']:.4f} over {n} queries, p50 "
            f"{out['unfiltered']['p50_ms']:.2f} ms (plan on HNSW: {'hnsw' in plan})"
        )
    return out


def sweep_table(sweep: dict, k: int) -> str:
    lines = [
        f"| forced HNSW, ef_search | recall@{k} | in-topic / off-topic | raw p50 / p95 ms "
        "| short results |",
        "|---|---|---|---|---|",
    ]
    for row in sweep["filtered"]:
        lines.append(
            f"| {row['ef_search']} | {row['recall']:.4f} | {row['recall_in_topic']:.4f} / "
            f"{row['recall_off_topic']:.4f} | {row['p50_ms']:.2f} / {row['p95_ms']:.2f} "
            f"| {row['short_results']} |"
        )
    u = sweep.get("unfiltered")
    if u:
        lines.append(
            f"| {u['ef_search']}, no filter (whole table, {u['queries']} queries) "
            f"| {u['recall']:.4f} | - | {u['p50_ms']:.2f} / {u['p95_ms']:.2f} | - |"
        )
    return "\n".join(lines)


# --- reporting -----------------------------------------------------------------------------------


def path_medians(results: list[PathResult]) -> dict[str, dict[str, Any]]:
    """Per path, the medians over its repetitions; the verdicts are the medians' (the latency
    limit is each repetition's own, from its raw p95: the median of API p95 minus the limit)."""
    out: dict[str, dict[str, Any]] = {}
    for path in dict.fromkeys(r.path for r in results):
        reps = [r.summary for r in results if r.path == path]
        m = {
            key: statistics.median(s[key] for s in reps)
            for key in ("api_p50_ms", "api_p95_ms", "raw_p50_ms", "raw_p95_ms", "api_recall")
        }
        m["margin_ms"] = statistics.median(s["latency_limit_ms"] - s["api_p95_ms"] for s in reps)
        m["latency_limit_ms"] = statistics.median(s["latency_limit_ms"] for s in reps)
        m["latency_ok"] = m["margin_ms"] >= 0
        m["recall_ok"] = m["api_recall"] >= RECALL_TARGET
        m["passed"] = sum(s["latency_ok"] for s in reps)
        m["repetitions"] = len(reps)
        out[path] = m
    return out


def medians_table(medians: dict[str, dict[str, Any]], repeat: int) -> str:
    lines = [
        f"| path | median of {repeat}: API p50 / p95 ms | raw SQL p50 / p95 ms "
        "| limit (1.5 x raw p95 + 5) ms | margin (limit - API p95) ms | repetitions within "
        "| latency | recall |",
        md_rule(8),
    ]
    for path, m in medians.items():
        lines.append(
            f"| {path} | {m['api_p50_ms']:.2f} / {m['api_p95_ms']:.2f} "
            f"| {m['raw_p50_ms']:.2f} / {m['raw_p95_ms']:.2f} | {m['latency_limit_ms']:.2f} "
            f"| {m['margin_ms']:+.2f} | {m['passed']} of {m['repetitions']} "
            f"| {verdict(m['latency_ok'])} | {m['api_recall']:.4f}: {verdict(m['recall_ok'])} |"
        )
    return "\n".join(lines)


def table(results: list[PathResult], k: int) -> str:
    header = (
        "| path | API p50 ms | API p95 ms | raw SQL p50 ms | raw SQL p95 ms | API p95 / raw p95 "
        f"| API p95 <= 1.5 x raw p95 + 5 ms | recall@{k} (API) | recall >= 0.95 |"
    )
    lines = [header, md_rule(9)]
    for r in results:
        s = r.summary
        lines.append(
            f"| {r.path} ({r.branch} branch){f' #{r.rep}' if r.rep > 1 else ''} | {s['api_p50_ms']:.2f} | {s['api_p95_ms']:.2f} | {s['raw_p50_ms']:.2f} "
            f"| {s['raw_p95_ms']:.2f} | {s['ratio_p95']:.2f} "
            f"| <= {s['latency_limit_ms']:.2f}: {verdict(s['latency_ok'])} "
            f"| {s['api_recall']:.4f} | {verdict(s['recall_ok'])} |"
        )
    return "\n".join(lines)


def details(results: list[PathResult], k: int) -> str:
    header = (
        f"| path | recall@{k} in-topic / off-topic / worst query | raw SQL recall "
        "| same request in-process (Django test client, no HTTP) p50 / p95 ms "
        "| API floor (GET index) p50 / p95 ms | plans on HNSW | walks short (exact read) "
        "| API answers short | API != raw (in-process != raw) |"
    )
    lines = [header, md_rule(9)]
    for r in results:
        s = r.summary
        lines.append(
            f"| {r.path}{f' #{r.rep}' if r.rep > 1 else ''} | {s['api_recall_in_topic']:.4f} / "
            f"{s['api_recall_off_topic']:.4f} / "
            f"{s['api_recall_min']:.1f} | {s['raw_recall']:.4f} "
            f"| {s['django_p50_ms']:.2f} / {s['django_p95_ms']:.2f} "
            f"| {s['floor_p50_ms']:.2f} / {s['floor_p95_ms']:.2f} "
            f"| {r.hnsw_plans}/{len(r.kinds)} | {r.short_walks} | {r.short_results} "
            f"| {r.api_raw_mismatch} ({r.django_raw_mismatch}) |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks in all")
    parser.add_argument("--indices", type=int, default=100, help="vector indices (one user)")
    parser.add_argument("--files-per-index", type=int, default=10)
    parser.add_argument("--chunk-words", type=int, default=600, help="words per chunk text")
    parser.add_argument("--queries", type=int, default=200, help="Q queries per path")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="measurements per path (a server start each); verdicts on the medians",
    )
    parser.add_argument(
        "--off-topic", type=float, default=0.2, help="fraction of off-topic queries"
    )
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=20, help="uncounted queries per path")
    parser.add_argument(
        "--paths", nargs="+", choices=list(PATHS), default=["default", "hnsw", "hnsw-forced"]
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--sweep-ef",
        type=lambda t: [int(x) for x in t.split(",") if x],
        default=[40, 100, 200, 400, 800],
        help="ef_search values for the forced-HNSW diagnostic (raw SQL); empty: skip it",
    )
    parser.add_argument(
        "--unfiltered-queries",
        type=int,
        default=50,
        help="queries for the graph's recall without any filter (exact scan of the whole table)",
    )
    parser.add_argument(
        "--ef-search", type=int, default=100, help="the server's VECTOR_SEARCH_EF_SEARCH"
    )
    parser.add_argument(
        "--var-dir",
        type=Path,
        default=BASE_DIR / "var" / "bench-vector-search",
        help="the embedded PostgreSQL's home (kept between runs; the data set is reused)",
    )
    parser.add_argument("--fresh", action="store_true", help="rebuild the data set")
    parser.add_argument("--drop", action="store_true", help="remove --var-dir at the end")
    parser.add_argument("--no-redis", action="store_true", help="no REDIS_URL for the server")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        type=env_pair,
        metavar="KEY=VALUE",
        help="another setting for the server (repeatable), e.g. DATABASE_CONN_MAX_AGE=60",
    )
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    args = parser.parse_args(argv)
    if args.indices < 1 or args.chunks < args.indices * args.files_per_index:
        parser.error("need at least one chunk per file")
    args.var_dir = args.var_dir.resolve()
    # The server's ef_search must be the one the raw SQL uses.
    args.server_env.append(("VECTOR_SEARCH_EF_SEARCH", str(args.ef_search)))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
        f"{args.pgvector_version}; load average at start {' '.join(f'{x:.2f}' for x in loadavg)}"
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
