"""The tool list of an MCP server, cached per process across runs.

The SDK caches a server's tool list only for the life of one server object, which lives for one
run; ``tools_list_cache`` lets a later run of the same agent in the same process skip
``tools/list`` within ``TOOLS_CACHE_TTL_SECONDS``. The key holds the Tool id and ``updated_at``
(moved by every edit, secret rotation and refresh), the URL, transport, a digest of the headers
and the allowlist. Runs do not use the stored ``discovered`` list instead: it is only as fresh as
the last manual refresh, keeps less than the SDK uses, and the server may change its tools.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from typing import Any

TOOLS_CACHE_TTL_SECONDS = 300.0
TOOLS_CACHE_MAX_ENTRIES = 512


class ToolListCache:
    """Thread-safe, process-wide ``key -> [mcp Tool]`` with a TTL and a size bound (the oldest
    entry goes first). Values are deep-copied in and out, so no caller can change another's."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, list[Any]]] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> list[Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, tools = entry
            if expires <= time.monotonic():
                del self._entries[key]
                return None
            return [t.model_copy(deep=True) for t in tools]

    def put(self, key: tuple[Any, ...], tools: list[Any]) -> None:
        copies = [t.model_copy(deep=True) for t in tools]
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (time.monotonic() + self.ttl, copies)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def discard(self, key: tuple[Any, ...]) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


tools_list_cache = ToolListCache(TOOLS_CACHE_TTL_SECONDS, TOOLS_CACHE_MAX_ENTRIES)


def tools_cache_key(
    *,
    tool_id: str,
    stamp: str,
    url: str,
    transport: str,
    headers: dict[str, str],
    allowed: list[str],
) -> tuple[Any, ...]:
    digest = hashlib.sha256(json.dumps(headers, sort_keys=True).encode()).hexdigest()
    return (tool_id, stamp, url, transport, digest, tuple(sorted(allowed)))
