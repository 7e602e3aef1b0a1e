"""One chunking configuration: the pipeline and the baselines, repeated, and their medians."""

from __future__ import annotations

import argparse
import os
import statistics
import uuid
from dataclasses import dataclass, field

from _support import (
    log,
)

from .config import MAIN_CONFIG, RATIO_TARGET
from .work import LAST_CPU, encode, plan_work, run_pipeline


@dataclass
class ConfigResult:
    size: int
    overlap: int
    chunks: int
    windows: int
    window_tokens: int
    chunk_tokens: int
    pipeline: list[dict[str, float]] = field(default_factory=list)
    fair_s: list[float] = field(default_factory=list)
    fair_cpu_s: list[float] = field(default_factory=list)
    naive_s: list[float] = field(default_factory=list)
    load_1min: list[float] = field(default_factory=list)
    medians: dict[str, float] = field(default_factory=dict)


def measure_config(
    args: argparse.Namespace, docs: list[tuple[str, bytes]], size: int, overlap: int
) -> ConfigResult:
    from django.conf import settings

    batch = settings.EMBEDDING_BATCH_SIZE
    work = plan_work(docs, size, overlap)
    log(
        f"[{size}/{overlap}] {work.chunks} chunks ({work.chunk_tokens} word pieces), "
        f"{len(work.windows)} windows ({work.window_tokens} word pieces) to encode, "
        f"{len(work.windows) / work.chunks:.2f} windows per chunk"
    )
    result = ConfigResult(
        size, overlap, work.chunks, len(work.windows), work.window_tokens, work.chunk_tokens
    )
    naive = (size, overlap) == MAIN_CONFIG and not args.no_naive
    for rep in range(args.reps):
        result.load_1min.append(os.getloadavg()[0])
        tag = f"{size}-{overlap}-{rep}-{uuid.uuid4().hex[:6]}"
        sides = ["fair", "pipeline"] if rep % 2 == 0 else ["pipeline", "fair"]
        for side in sides:
            if side == "fair":
                result.fair_s.append(encode(work.windows, batch))
                result.fair_cpu_s.append(LAST_CPU["encode"])
                log(
                    f"[{size}/{overlap}] rep {rep + 1} fair baseline: "
                    f"{work.chunks / result.fair_s[-1]:.2f} chunks/s "
                    f"({len(work.windows) / result.fair_s[-1]:.1f} windows/s)"
                )
            else:
                p = run_pipeline(docs, work, tag, args.breakdown)
                result.pipeline.append(p)
                extra = ""
                if args.breakdown:
                    extra = (
                        f" (encode {p['encode_s']:.1f}s, embedder's own work "
                        f"{p['embedder_other_s']:.1f}s, bulk_create {p['bulk_create_s']:.1f}s, "
                        f"rest {p['rest_s']:.1f}s of {p['seconds']:.1f}s)"
                    )
                log(
                    f"[{size}/{overlap}] rep {rep + 1} pipeline: {p['chunks_per_s']:.2f} "
                    f"chunks/s{extra}"
                )
        if naive:
            result.naive_s.append(encode(work.chunk_texts, batch))
            log(
                f"[{size}/{overlap}] rep {rep + 1} naive baseline (chunks truncated at 256): "
                f"{work.chunks / result.naive_s[-1]:.2f} chunks/s"
            )
    med = statistics.median
    m: dict[str, float] = {
        "pipeline_chunks_per_s": med(p["chunks_per_s"] for p in result.pipeline),
        "fair_chunks_per_s": med(work.chunks / s for s in result.fair_s),
        "fair_windows_per_s": med(len(work.windows) / s for s in result.fair_s),
    }
    # The ratio of each repetition's pair, then the median: each pipeline run against the
    # baseline measured next to it.
    m["ratio_fair"] = med(
        p["chunks_per_s"] / (work.chunks / s)
        for p, s in zip(result.pipeline, result.fair_s, strict=True)
    )
    # The same ratio in CPU time: chunks per CPU second of the pipeline against the baseline's.
    m["ratio_fair_cpu"] = med(
        (work.chunks / p["cpu_s"]) / (work.chunks / c)
        for p, c in zip(result.pipeline, result.fair_cpu_s, strict=True)
    )
    m["pipeline_cpu_s"] = med(p["cpu_s"] for p in result.pipeline)
    m["fair_cpu_s"] = med(result.fair_cpu_s)
    if result.naive_s:
        m["naive_chunks_per_s"] = med(work.chunks / s for s in result.naive_s)
        m["ratio_naive"] = m["pipeline_chunks_per_s"] / m["naive_chunks_per_s"]
    if args.breakdown:
        for key in ("seconds", "encode_s", "embedder_other_s", "bulk_create_s", "rest_s"):
            m[f"pipeline_{key}"] = med(p[key] for p in result.pipeline)
        m["fair_s"] = med(result.fair_s)
    m["ok"] = m["ratio_fair"] >= RATIO_TARGET
    result.medians = m
    return result
