"""Running agents (providers, runs, the run worker), realtime streams, tools' outbound HTTP, and
files and vector indices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import ALLOWED_HOSTS, ENVIRONMENT, VAR_DIR, env
from config.settings.database import CHANNEL_LAYER, Q_TASK_TIMEOUT

# --- agent runtime --------------------------------------------------------------------------

PROVIDER_TIMEOUT_SECONDS = env.float("PROVIDER_TIMEOUT_SECONDS", default=120.0)
PROVIDER_MAX_RETRIES = env.int("PROVIDER_MAX_RETRIES", default=2)
# Connections one process opens to one provider at most (agentdeck.agents.runtime.clients): its
# runs share one client per provider, so this caps the model calls in flight to it at once;
# more wait for a free connection. openai's own default client allows 1000.
PROVIDER_MAX_CONNECTIONS = env.int("PROVIDER_MAX_CONNECTIONS", default=1000)
if PROVIDER_MAX_CONNECTIONS < 1:
    raise ImproperlyConfigured("PROVIDER_MAX_CONNECTIONS must be 1 or more")
MOCK_MODEL_DELAY_PER_TOKEN = env.float("MOCK_MODEL_DELAY_PER_TOKEN", default=0.0)
RUN_INPUT_MAX_BYTES = env.int("RUN_INPUT_MAX_BYTES", default=256 * 1024)
RUN_MAX_TURNS_LIMIT = env.int("RUN_MAX_TURNS_LIMIT", default=50)
# Below Q_TASK_TIMEOUT, so a slow run fails with run_timeout instead of the worker being killed.
RUN_TIMEOUT_SECONDS = env.int("RUN_TIMEOUT_SECONDS", default=max(Q_TASK_TIMEOUT - 30, 10))
RUN_HEARTBEAT_SECONDS = env.float("RUN_HEARTBEAT_SECONDS", default=5.0)
# A running run whose heartbeat is older than this is failed with worker_lost by the reaper.
RUN_STALE_AFTER_SECONDS = env.int("RUN_STALE_AFTER_SECONDS", default=60)
RUN_WAIT_TIMEOUT_SECONDS = env.float("RUN_WAIT_TIMEOUT_SECONDS", default=120.0)
# The run worker (manage.py runs_worker, agentdeck.agents.worker): runs in flight per process (each
# an asyncio task), how many of them one user may have running across all workers (the rest stay
# queued until one of theirs ends; 0: no cap), the database threads (= connections) its runs
# share, how often it looks for queued runs when no NOTIFY woke it, and how long SIGTERM lets
# in-flight runs finish before the rest end failed with worker_shutdown.
RUN_CONCURRENCY = env.int("RUN_CONCURRENCY", default=500)
RUN_PER_USER_CAP = env.int("RUN_PER_USER_CAP", default=100)
RUN_DB_THREADS = env.int("RUN_DB_THREADS", default=8)
RUN_POLL_SECONDS = env.float("RUN_POLL_SECONDS", default=2.0)
WORKER_DRAIN_SECONDS = env.float("WORKER_DRAIN_SECONDS", default=30.0)
for _name in ("RUN_CONCURRENCY", "RUN_DB_THREADS"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1")
# The Agents SDK uploads traces (with prompts and tool data) to OpenAI unless told otherwise;
# agentdeck stores spans in its own database (analytics.RunSpan) and exports only when this is on.
OPENAI_TRACING_EXPORT = env.bool("OPENAI_TRACING_EXPORT", default=False)

# --- realtime -----------------------------------------------------------------------------------

# Hosts (channels' pattern syntax: "app.example.com", ".example.com", "http://host:port") a
# browser page may open WebSockets from; add the Next.js front end's host when it differs.
WS_ALLOWED_ORIGINS = env.list("WS_ALLOWED_ORIGINS", default=ALLOWED_HOSTS)

# A WebSocket whose unread backlog (beyond the kernel's buffer) stays over WS_MAX_BUFFER_BYTES
# for WS_SLOW_GRACE_SECONDS is closed with 4429 (see agentdeck.core.daphne_backpressure). Any
# close the server starts (4429, or 1000 at a run's end) waits up to WS_SLOW_ABORT_SECONDS for the
# client to read up to the close frame, then the connection is aborted.
WS_MAX_BUFFER_BYTES = env.int("WS_MAX_BUFFER_BYTES", default=1024 * 1024)
WS_SLOW_GRACE_SECONDS = env.float("WS_SLOW_GRACE_SECONDS", default=5.0)
WS_SLOW_ABORT_SECONDS = env.float("WS_SLOW_ABORT_SECONDS", default=10.0)
WS_SOCKET_SNDBUF_BYTES = env.int("WS_SOCKET_SNDBUF_BYTES", default=256 * 1024)
# Followers of a run (WebSocket, SSE) read the log after this long without news, so a dropped
# last message cannot leave them waiting.
RUN_STREAM_RECHECK_SECONDS = env.float("RUN_STREAM_RECHECK_SECONDS", default=5.0)
# A run event whose JSON is longer than this travels through the channel layer as a bare
# wake-up, and every process with followers reads it from the log. PostgreSQL's NOTIFY carries
# under 8000 bytes (channels-postgres moves bigger messages to a side table that can expire
# them under load); Redis carries events whole up to the log's own 64,000-character cap, so a
# run's final output (often a few KB) does not send every follower to the database at the
# moment the run ends.
RUN_EVENT_LIVE_MAX_CHARS = int(
    env.str("RUN_EVENT_LIVE_MAX_CHARS", default="")
    or (70_000 if CHANNEL_LAYER == "redis" else 4000)
)
# SSE streams send a comment line this often so proxies keep them open.
SSE_HEARTBEAT_SECONDS = env.float("SSE_HEARTBEAT_SECONDS", default=15.0)
# Built-in http_request and user-defined http tools: per-call limits.
HTTP_TOOL_TIMEOUT_SECONDS = env.float("HTTP_TOOL_TIMEOUT_SECONDS", default=15.0)
HTTP_TOOL_MAX_RESPONSE_BYTES = env.int("HTTP_TOOL_MAX_RESPONSE_BYTES", default=200_000)
# Outbound HTTP (http_request, http tools, MCP URLs) refuses loopback, private, link-local and
# cloud-metadata addresses (agentdeck.core.outbound); these host names, IPs or CIDR networks
# (e.g. "internal.example.com,10.1.0.0/16") are exempt. Metadata IPs need an exact entry.
OUTBOUND_HTTP_ALLOWLIST = env.list("OUTBOUND_HTTP_ALLOWLIST", default=[])
# requires_action runs whose approvals are not answered in time fail with approval_timeout.
APPROVAL_TIMEOUT_SECONDS = env.int("APPROVAL_TIMEOUT_SECONDS", default=24 * 3600)

# --- files and vector indices -----------------------------------------------------------------

# Uploads past this are refused with 413 file_too_large before their body is stored.
FILE_UPLOAD_MAX_BYTES = env.int("FILE_UPLOAD_MAX_BYTES", default=50 * 1024 * 1024)
# Bigger uploads spool to a temporary file instead of memory while the request is read.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# Uploaded bytes: local disk under ./var/media by default; FILE_STORAGE=s3 stores them in any
# S3-compatible bucket through django-storages (pip install 'agentdeck[s3]').
FILE_STORAGE = env.str("FILE_STORAGE", default="local")
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default="") or VAR_DIR / "media")
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if FILE_STORAGE == "s3":
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("S3_BUCKET"),
            "endpoint_url": env.str("S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("S3_REGION", default="") or None,
            "access_key": env.str("S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("S3_SECRET_ACCESS_KEY", default="") or None,
            "default_acl": None,
            "file_overwrite": False,
        },
    }
elif FILE_STORAGE != "local":
    raise ImproperlyConfigured("FILE_STORAGE must be 'local' or 's3'")
# The embedder new vector indices get when the request names none: local all-MiniLM-L6-v2, or
# "hash" (no model, for tests and very small machines).
EMBEDDER_DEFAULT = env.str("EMBEDDER_DEFAULT", default="local")
EMBEDDING_BATCH_SIZE = env.int("EMBEDDING_BATCH_SIZE", default=64)
# Load the local model when the web process and the queue workers start, not in the first search
# or file (agentdeck.core.preload); on by default when new indices embed locally, except in test
# processes (ENVIRONMENT=test), which load what they use.
EMBEDDING_PRELOAD = env.bool(
    "EMBEDDING_PRELOAD", default=EMBEDDER_DEFAULT == "local" and ENVIRONMENT != "test"
)
# A file whose worker has not reported for this long is retried (up to
# FILE_PROCESSING_MAX_ATTEMPTS times in all) or failed with processing_timeout by the watchdog.
FILE_PROCESSING_STALE_SECONDS = env.int("FILE_PROCESSING_STALE_SECONDS", default=300)
FILE_PROCESSING_MAX_ATTEMPTS = env.int("FILE_PROCESSING_MAX_ATTEMPTS", default=3)
# One file's processing task may run this long (django-q2 kills it after that).
FILE_PROCESSING_TIMEOUT_SECONDS = env.int("FILE_PROCESSING_TIMEOUT_SECONDS", default=3600)
# Search inside an index with at most this many chunks reads them all (exact, recall 1.0);
# bigger indices walk the HNSW graph with iterative scans (agentdeck.files.search explains).
VECTOR_SEARCH_EXACT_MAX_CHUNKS = env.int("VECTOR_SEARCH_EXACT_MAX_CHUNKS", default=20_000)
VECTOR_SEARCH_EF_SEARCH = env.int("VECTOR_SEARCH_EF_SEARCH", default=100)
