"""Search inside one vector index: vector (cosine), keyword (full text) or hybrid (both, fused).

Restricting an approximate-nearest-neighbour search to one index among many is the hard part.
An HNSW scan filters *after* it walks the graph: with ``ef_search = 40`` and one index holding
1 % of the chunks, a plain filtered HNSW query returns about 0.4 rows instead of 10. The choice
here, by the index's size:

* up to ``VECTOR_SEARCH_EXACT_MAX_CHUNKS`` chunks (20,000 by default) the search is exact: the
  rows of that index are read through the btree on ``(index_id, file_id, position)`` and
  ranked by true distance. 20,000 distances of 384 dimensions cost a few milliseconds, recall
  is 1.0, and no other index's rows are touched. A MATERIALIZED CTE keeps the planner from
  swapping in the HNSW index.
* above it, the per-dimension partial HNSW index (migration 0002) is walked with pgvector 0.8's
  iterative scan in ``strict_order``: when the filter leaves fewer than ``LIMIT`` rows the scan
  goes on past ``ef_search``, up to ``hnsw.max_scan_tuples`` (20,000). A query whose
  neighbourhood holds none of the index's rows can still come back short; then the exact read
  answers it, so results are always full. ``ef_search`` is raised to 100 (from 40) for recall.
  (benchmarks/RESULTS.md measures both branches; the planner may also pick the exact plan
  by itself for a selective filter.)
Partitioning ``chunks`` by index was the alternative; it makes every index a table (100 indices,
100 HNSW graphs to keep) and costs a DDL statement per new index, for no gain at this size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from agentdeck.files.embeddings import embedder_for
from agentdeck.files.models import VectorIndex

MODES = ("vector", "keyword", "hybrid")
# Reciprocal rank fusion constant (Cormack et al., 2009): score = sum 1 / (RRF_K + rank).
RRF_K = 60
MAX_TOP_K = 50


@dataclass
class SearchHit:
    chunk_id: int
    score: float
    text: str
    file_id: str
    file_name: str
    position: int
    page: int | None
    char_start: int
    char_end: int
    attributes: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The API's shape of a hit (``SearchHitSerializer``): ids as strings, score a float."""
        return {
            "chunk_id": self.chunk_id,
            "score": float(self.score),
            "text": self.text,
            "file_id": str(self.file_id),
            "file_name": self.file_name,
            "position": self.position,
            "page": self.page,
            "char_start": self.char_start,
            "char_end": self.char_end,
            "attributes": self.attributes,
        }


def _filters_sql(
    file_ids: list[str] | None, attributes: dict[str, Any] | None
) -> tuple[str, list[Any]]:
    """Extra WHERE terms on ``c`` (chunks) for file ids and attachment attributes; each
    attribute matches its value, or any of a list of values.

    All attribute conditions sit in one EXISTS on the chunk's attachment: the exact values as one
    jsonb containment (``@>``), each "any of" list as one ``= ANY``. The plan is one semi-join
    whatever the number of keys, and its cost grows with the conditions' total size (one
    EXISTS per key would be a join per key, whose planning grows far faster than the keys;
    ``check_filters`` bounds the keys anyway).
    """
    sql = ""
    params: list[Any] = []
    if file_ids:
        sql += " AND c.file_id = ANY(%s::uuid[])"
        params.append([str(f) for f in file_ids])
    if not attributes:
        return sql, params
    exact = {k: v for k, v in attributes.items() if not isinstance(v, list)}
    any_of = {k: v for k, v in attributes.items() if isinstance(v, list)}
    conditions = []
    if exact:
        conditions.append("a.attributes @> %s::jsonb")
        params.append(json.dumps(exact))
    for key, values in any_of.items():
        conditions.append("a.attributes -> %s = ANY(%s::jsonb[])")
        params += [key, [json.dumps(v) for v in values]]
    # Fixed text joined: the values are all parameters.
    where = " AND ".join(conditions)
    sql += (
        " AND EXISTS (SELECT 1 FROM vector_index_files a WHERE a.index_id = c.index_id"  # noqa: S608
        f" AND a.file_id = c.file_id AND {where})"
    )
    return sql, params


# What a hit shows besides its score, read in the ranking statement itself for vector search
# (one round trip), and by _hydrate for keyword and hybrid results.
_HIT_COLUMNS = """c.text, c.file_id, f.name, c.position, c.page, c.char_start, c.char_end,
                   coalesce(a.attributes, '{}'::jsonb)"""
_HIT_JOINS = """JOIN file_metadata f ON f.id = c.file_id
            LEFT JOIN vector_index_files a ON a.index_id = c.index_id AND a.file_id = c.file_id"""


def _with_hits(ranked_sql: str) -> str:
    """``ranked_sql`` (id, distance; ordered, limited) with each row's hit columns joined."""
    return f"""
        WITH ranked AS ({ranked_sql})
        SELECT r.id, r.distance, {_HIT_COLUMNS}
        FROM ranked r JOIN chunks c ON c.id = r.id
            {_HIT_JOINS}
        ORDER BY r.distance, r.id
        """  # noqa: S608 (fixed text)


def vector_candidates(
    *,
    index: VectorIndex,
    vector: list[float],
    limit: int,
    file_ids: list[str] | None = None,
    attributes: dict[str, Any] | None = None,
    with_hits: bool = False,
) -> list[tuple[Any, ...]]:
    """(chunk id, cosine distance) of the ``limit`` nearest chunks in ``index``, nearest first;
    ``with_hits``: each row also carries what ``_hit`` needs, read by the same statement."""
    # Interpolated into the SQL: an int, and WHERE fragments made of fixed text with %s params.
    d = int(index.dimensions)
    extra, extra_params = _filters_sql(file_ids, attributes)
    literal = "[" + ",".join(repr(float(x)) for x in vector) + "]"
    exact_sql = f"""
        WITH candidates AS MATERIALIZED (
            SELECT c.id, c.embedding::vector({d}) <=> %s::vector({d}) AS distance
            FROM chunks c
            WHERE c.index_id = %s AND c.dimensions = {d}{extra}
        )
        SELECT id, distance FROM candidates ORDER BY distance, id LIMIT %s
        """  # noqa: S608 (see `d` / `extra`)
    walk_sql = f"""
        SELECT c.id, c.embedding::vector({d}) <=> %s::vector({d}) AS distance
        FROM chunks c
        WHERE c.dimensions = {d} AND c.index_id = %s{extra}
        ORDER BY c.embedding::vector({d}) <=> %s::vector({d})
        LIMIT %s
        """  # noqa: S608 (see `d` / `extra`)
    if with_hits:
        exact_sql, walk_sql = _with_hits(exact_sql), _with_hits(walk_sql)
    exact_params = [literal, str(index.pk), *extra_params, limit]
    if index.chunk_count <= settings.VECTOR_SEARCH_EXACT_MAX_CHUNKS:
        # One statement, no transaction needed (a round trip each for BEGIN and COMMIT).
        with connection.cursor() as cur:
            cur.execute(exact_sql, exact_params)
            return [(int(r[0]), float(r[1]), *r[2:]) for r in cur.fetchall()]
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL hnsw.iterative_scan = strict_order")
        cur.execute("SET LOCAL hnsw.ef_search = %s", [max(settings.VECTOR_SEARCH_EF_SEARCH, limit)])
        cur.execute(walk_sql, [literal, str(index.pk), *extra_params, literal, limit])
        rows = cur.fetchall()
        if len(rows) < limit:
            # The walk gave up (hnsw.max_scan_tuples) before finding `limit` rows of this
            # index: a query whose neighbourhood holds none of them. Read them all instead.
            cur.execute(exact_sql, exact_params)
            rows = cur.fetchall()
        return [(int(r[0]), float(r[1]), *r[2:]) for r in rows]


def keyword_candidates(
    *,
    index: VectorIndex,
    query: str,
    limit: int,
    file_ids: list[str] | None = None,
    attributes: dict[str, Any] | None = None,
) -> list[tuple[int, float]]:
    """(chunk id, ts_rank_cd) of the best full-text matches (websearch syntax: quotes, OR, -)."""
    extra, extra_params = _filters_sql(file_ids, attributes)
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT c.id, ts_rank_cd(c.search, q) AS rank
            FROM chunks c, websearch_to_tsquery('english', %s) q
            WHERE c.index_id = %s AND c.search @@ q{extra}
            ORDER BY rank DESC, c.id
            LIMIT %s
            """,  # noqa: S608 (see `d` / `extra`)
            [query, str(index.pk), *extra_params, limit],
        )
        return [(int(r[0]), float(r[1])) for r in cur.fetchall()]


def _hit(chunk_id: int, score: float, columns: tuple[Any, ...]) -> SearchHit:
    """A hit from ``_HIT_COLUMNS``' values."""
    text, file_id, file_name, position, page, char_start, char_end, attrs = columns
    # Django has psycopg hand jsonb over as text (JSONField parses it itself).
    if isinstance(attrs, str):
        attrs = json.loads(attrs)
    return SearchHit(
        chunk_id=chunk_id,
        score=round(score, 6),
        text=text,
        file_id=str(file_id),
        file_name=file_name,
        position=position,
        page=page,
        char_start=char_start,
        char_end=char_end,
        attributes=attrs,
    )


def _hydrate(scored: list[tuple[int, float]]) -> list[SearchHit]:
    if not scored:
        return []
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT c.id, {_HIT_COLUMNS}
            FROM chunks c
            {_HIT_JOINS}
            WHERE c.id = ANY(%s)
            """,  # noqa: S608 (fixed text)
            [[cid for cid, _ in scored]],
        )
        rows = {r[0]: r[1:] for r in cur.fetchall()}
    # A chunk deleted between the two queries is left out.
    return [_hit(cid, score, rows[cid]) for cid, score in scored if cid in rows]


def vector_index_search(
    *,
    index: VectorIndex,
    query: str,
    top_k: int = 10,
    mode: str = "vector",
    file_ids: list[str] | None = None,
    attributes: dict[str, Any] | None = None,
    score_threshold: float | None = None,
) -> list[SearchHit]:
    """Best ``top_k`` chunks of ``index`` for ``query``. Scores: ``vector`` cosine similarity
    (1 - distance, -1..1), ``keyword`` ``ts_rank_cd``, ``hybrid`` the RRF sum (at most 2/61);
    ``score_threshold`` drops hits below it, in the mode's own scale."""
    if mode not in MODES:
        raise ValueError(mode)
    top_k = max(1, min(int(top_k), MAX_TOP_K))
    scored: list[tuple[int, float]]
    if mode == "vector":
        vector = embedder_for(index).embed([query])[0]
        rows = vector_candidates(
            index=index,
            vector=vector,
            limit=top_k,
            file_ids=file_ids,
            attributes=attributes,
            with_hits=True,
        )
        hits = ((row, 1.0 - row[1]) for row in rows)  # cosine similarity from distance
        return [
            _hit(row[0], score, row[2:])
            for row, score in hits
            if score_threshold is None or score >= score_threshold
        ]
    if mode == "keyword":
        scored = keyword_candidates(
            index=index, query=query, limit=top_k, file_ids=file_ids, attributes=attributes
        )
    else:
        depth = max(4 * top_k, 20)
        vector = embedder_for(index).embed([query])[0]
        by_vector = vector_candidates(
            index=index, vector=vector, limit=depth, file_ids=file_ids, attributes=attributes
        )
        by_keyword = keyword_candidates(
            index=index, query=query, limit=depth, file_ids=file_ids, attributes=attributes
        )
        fused: dict[int, float] = {}
        for ranking in (by_vector, by_keyword):
            for rank, (cid, _) in enumerate(ranking, start=1):
                fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank)
        scored = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
    if score_threshold is not None:
        scored = [(cid, s) for cid, s in scored if s >= score_threshold]
    return _hydrate(scored)
