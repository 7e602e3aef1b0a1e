"""One path: a server started with the path's settings; every query through the API, the raw SQL
and Django in-process, each going first in turn.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from _support import HOST, BenchError, KeepAlive, Server, log, percentile

from .config import EXACT_MAX, LATENCY_FACTOR, LATENCY_SLACK_MS, PATHS, RECALL_TARGET, USER_ID
from .database import raw_connect
from .sql import raw_search, recall
from .text import Query


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
