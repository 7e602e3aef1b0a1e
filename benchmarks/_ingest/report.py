"""The report: chunks/s of each side per configuration, and where the pipeline's time goes."""

from __future__ import annotations

from _support import (
    md_table,
)

from .measure import ConfigResult


def table(results: list[ConfigResult]) -> str:
    header = [
        "chunking",
        "chunks",
        "windows (per chunk)",
        "pipeline chunks/s",
        "fair baseline chunks/s",
        "ratio",
        ">= 80%",
        "naive baseline chunks/s",
        "pipeline / naive",
    ]
    rows = []
    for r in results:
        m = r.medians
        naive = (
            (f"{m['naive_chunks_per_s']:.2f}", f"{m['ratio_naive']:.3f}")
            if "naive_chunks_per_s" in m
            else ("-", "-")
        )
        rows.append(
            (
                f"{r.size}/{r.overlap}",
                r.chunks,
                f"{r.windows} ({r.windows / r.chunks:.2f})",
                f"{m['pipeline_chunks_per_s']:.2f}",
                f"{m['fair_chunks_per_s']:.2f}",
                f"{m['ratio_fair']:.3f}",
                "PASS" if m["ok"] else "FAIL",
                *naive,
            )
        )
    return md_table(header, rows)


def breakdown_table(results: list[ConfigResult]) -> str:
    header = [
        "chunking",
        "pipeline s",
        "encode s",
        "embedder's own work s",
        "bulk_create s",
        "rest (parse, tokenize, chunk, claims, notify) s",
        "fair baseline encode s",
        "CPU s pipeline / baseline",
        "ratio by CPU time",
    ]
    rows = (
        (
            f"{r.size}/{r.overlap}",
            f"{m['pipeline_seconds']:.1f}",
            f"{m['pipeline_encode_s']:.1f}",
            f"{m['pipeline_embedder_other_s']:.1f}",
            f"{m['pipeline_bulk_create_s']:.1f}",
            f"{m['pipeline_rest_s']:.1f}",
            f"{m['fair_s']:.1f}",
            f"{m['pipeline_cpu_s']:.0f} / {m['fair_cpu_s']:.0f}",
            f"{m['ratio_fair_cpu']:.3f}",
        )
        for r in results
        for m in [r.medians]
        if "pipeline_encode_s" in m
    )
    return md_table(header, rows)
