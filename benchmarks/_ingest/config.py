"""The target, the corpus' document size, the Redis database, the default chunking."""

from __future__ import annotations

RATIO_TARGET = 0.80
DOC_BYTES = 256 * 1024
REDIS_DB = 14
MAIN_CONFIG = (800, 400)
