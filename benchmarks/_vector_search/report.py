"""The report: every repetition, the details, the medians with the verdicts, the sweep."""

from __future__ import annotations

import statistics
from typing import Any

from _support import md_table, verdict

from .config import RECALL_TARGET
from .measure import PathResult


def sweep_table(sweep: dict, k: int) -> str:
    header = [
        "forced HNSW, ef_search",
        f"recall@{k}",
        "in-topic / off-topic",
        "raw p50 / p95 ms",
        "short results",
    ]
    rows = [
        (
            row["ef_search"],
            f"{row['recall']:.4f}",
            f"{row['recall_in_topic']:.4f} / {row['recall_off_topic']:.4f}",
            f"{row['p50_ms']:.2f} / {row['p95_ms']:.2f}",
            row["short_results"],
        )
        for row in sweep["filtered"]
    ]
    u = sweep.get("unfiltered")
    if u:
        rows.append(
            (
                f"{u['ef_search']}, no filter (whole table, {u['queries']} queries)",
                f"{u['recall']:.4f}",
                "-",
                f"{u['p50_ms']:.2f} / {u['p95_ms']:.2f}",
                "-",
            )
        )
    return md_table(header, rows)


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
    header = [
        "path",
        f"median of {repeat}: API p50 / p95 ms",
        "raw SQL p50 / p95 ms",
        "limit (1.5 x raw p95 + 5) ms",
        "margin (limit - API p95) ms",
        "repetitions within",
        "latency",
        "recall",
    ]
    rows = (
        (
            path,
            f"{m['api_p50_ms']:.2f} / {m['api_p95_ms']:.2f}",
            f"{m['raw_p50_ms']:.2f} / {m['raw_p95_ms']:.2f}",
            f"{m['latency_limit_ms']:.2f}",
            f"{m['margin_ms']:+.2f}",
            f"{m['passed']} of {m['repetitions']}",
            verdict(m["latency_ok"]),
            f"{m['api_recall']:.4f}: {verdict(m['recall_ok'])}",
        )
        for path, m in medians.items()
    )
    return md_table(header, rows)


def _rep(r: PathResult) -> str:
    """`` #2`` for the second repetition of a path onwards."""
    return f" #{r.rep}" if r.rep > 1 else ""


def table(results: list[PathResult], k: int) -> str:
    header = [
        "path",
        "API p50 ms",
        "API p95 ms",
        "raw SQL p50 ms",
        "raw SQL p95 ms",
        "API p95 / raw p95",
        "API p95 <= 1.5 x raw p95 + 5 ms",
        f"recall@{k} (API)",
        "recall >= 0.95",
    ]
    rows = (
        (
            f"{r.path} ({r.branch} branch){_rep(r)}",
            f"{s['api_p50_ms']:.2f}",
            f"{s['api_p95_ms']:.2f}",
            f"{s['raw_p50_ms']:.2f}",
            f"{s['raw_p95_ms']:.2f}",
            f"{s['ratio_p95']:.2f}",
            f"<= {s['latency_limit_ms']:.2f}: {verdict(s['latency_ok'])}",
            f"{s['api_recall']:.4f}",
            verdict(s["recall_ok"]),
        )
        for r in results
        for s in [r.summary]
    )
    return md_table(header, rows)


def details(results: list[PathResult], k: int) -> str:
    header = [
        "path",
        f"recall@{k} in-topic / off-topic / worst query",
        "raw SQL recall",
        "same request in-process (Django test client, no HTTP) p50 / p95 ms",
        "API floor (GET index) p50 / p95 ms",
        "plans on HNSW",
        "walks short (exact read)",
        "API answers short",
        "API != raw (in-process != raw)",
    ]
    rows = (
        (
            f"{r.path}{_rep(r)}",
            f"{s['api_recall_in_topic']:.4f} / {s['api_recall_off_topic']:.4f} / "
            f"{s['api_recall_min']:.1f}",
            f"{s['raw_recall']:.4f}",
            f"{s['django_p50_ms']:.2f} / {s['django_p95_ms']:.2f}",
            f"{s['floor_p50_ms']:.2f} / {s['floor_p95_ms']:.2f}",
            f"{r.hnsw_plans}/{len(r.kinds)}",
            r.short_walks,
            r.short_results,
            f"{r.api_raw_mismatch} ({r.django_raw_mismatch})",
        )
        for r in results
        for s in [r.summary]
    )
    return md_table(header, rows)
