"""The database: Django set up on the embedded PostgreSQL (or DATABASE_URL), a raw psycopg
connection bound as Django binds, and the sizes of what is stored.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from _support import BenchError, setup_django

from .config import DIMENSIONS


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
