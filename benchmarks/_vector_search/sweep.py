"""Diagnostics, raw SQL only: the HNSW graph on its own (forced, at several ef_search; and without
any filter).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _support import log, percentile

from .config import DIMENSIONS
from .database import raw_connect
from .sql import raw_search, recall
from .text import Query


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
