"""The data set: indices, files and chunks written into the real tables (the chunks generated in
a process pool and COPYed), kept in the database and reused with the same parameters.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import multiprocessing
import os
import time
import uuid
from typing import Any

from _support import log

from .config import DATASET_VERSION, DIMENSIONS, META_TABLE, USER_ID, vector_literal
from .database import raw_connect
from .text import TextModel, build_text_model, make_prose, make_words

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
