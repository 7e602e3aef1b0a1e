"""What the benchmark measures against: the issue's targets, the data set's shape, the paths
(the server settings each is measured with).
"""

from __future__ import annotations

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
