"""The app's SQL, by hand: the statements of ``search.vector_candidates`` as vector search sends
them, the ground truth (exact, index scans off) and recall.
"""

from __future__ import annotations

import re
import time

from _support import BenchError

from .config import DIMENSIONS
from .database import raw_connect
from .text import Query

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
