"""The database (``DATABASE_URL`` or the embedded PostgreSQL), its connection pooling per
process, the cache, the django-q2 queue and the channel layer."""

from __future__ import annotations

import sys
import warnings
from urllib.parse import unquote

import environ
from django.core.exceptions import ImproperlyConfigured

from config.settings.base import VAR_DIR, env

# --- database ---------------------------------------------------------------------------------

if env.str("DATABASE_URL", default=""):
    DATABASE_URL = env.str("DATABASE_URL")
else:
    # No database service configured: start (or join) the embedded PostgreSQL + pgvector.
    from agentdeck.core.embedded_postgres import embedded_database_url

    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    DATABASE_URL = embedded_database_url(VAR_DIR)

_db = environ.Env.db_url_config(DATABASE_URL)
# A unix-socket directory travels percent-encoded in the URL's host part.
_db["HOST"] = unquote(str(_db.get("HOST") or ""))
# 0 by default: under ASGI every request runs its sync code in a thread of its own, and each
# such thread would keep a "persistent" connection until it is garbage-collected (Django's
# docs: disable persistent connections under ASGI). The run_overhead benchmark hit PostgreSQL's
# connection limit that way. Use a pooler (PgBouncer) for reuse.
_db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
# The qcluster's processes are another matter: each runs one task at a time on one thread, and
# django-q2 closes every connection before it forks a worker, so they keep theirs between tasks
# (DATABASE_WORKER_CONN_MAX_AGE seconds; health-checked before reuse). Connecting per task cost a
# PostgreSQL backend start each time: with the ORM broker ~13 ms of PostgreSQL CPU per task,
# more than a whole run may spend (benchmarks/run_floor.py).
RUNNING_QCLUSTER = sys.argv[1:2] == ["qcluster"]
# The run worker (manage.py runs_worker) likewise keeps one connection per database thread.
RUNNING_RUNWORKER = sys.argv[1:2] == ["runs_worker"]
# A pool of connections per process (Django's psycopg_pool support): a request borrows one
# instead of connecting (3-4 ms here, benchmarks/vector_search.py) and gives it back. The ASGI
# entry point (config/asgi.py, i.e. daphne) turns it on; django-q2 forks its workers, and a
# pool's threads do not survive a fork, so other processes connect per use unless told to.
DATABASE_POOL = env.bool("DATABASE_POOL", default=False)
if (RUNNING_QCLUSTER or RUNNING_RUNWORKER) and not DATABASE_POOL:
    _db["CONN_MAX_AGE"] = env.int("DATABASE_WORKER_CONN_MAX_AGE", default=600)
_db["CONN_HEALTH_CHECKS"] = True
_db.setdefault("OPTIONS", {})["connect_timeout"] = env.int("DATABASE_CONNECT_TIMEOUT", default=5)
# Lets several test sessions share one server without sharing a test database.
if env.str("TEST_DATABASE_NAME", default=""):
    _db["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME")}
DATABASES = {"default": _db}
if DATABASE_POOL:
    DATABASES["default"] = {
        **_db,
        "OPTIONS": {
            **_db["OPTIONS"],
            "pool": {
                "min_size": 1,
                "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=8),
                # Waiting longer never helps: daphne runs Django's sync code on one thread, so
                # a wait means the database is unreachable (and /readyz must say so quickly).
                "timeout": 2,
                # psycopg_pool doubles the wait between reconnection attempts without a cap
                # (1, 2, 4 ... s) until this deadline; after it, the next request starts a new
                # attempt at once. So a restarted PostgreSQL is used again within seconds.
                "reconnect_timeout": 5,
            },
        },
    }
# Requests doing their sync work at once in a web process (agentdeck.core.asgi); the others wait
# on the event loop, holding no thread. Above the pool's size, so a request waits for a
# connection only behind slow ones, never hundreds deep.
WEB_MAX_CONCURRENT_REQUESTS = env.int("WEB_MAX_CONCURRENT_REQUESTS", default=16)
if WEB_MAX_CONCURRENT_REQUESTS < 1:
    raise ImproperlyConfigured("WEB_MAX_CONCURRENT_REQUESTS must be at least 1")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache, queue, channels -------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")

CACHES = {
    "default": (
        {"BACKEND": "agentdeck.core.cache.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

Q_WORKERS = env.int("Q_WORKERS", default=2)
Q_TASK_TIMEOUT = env.int("Q_TASK_TIMEOUT", default=600)
Q_CLUSTER = {
    "name": env.str("Q_CLUSTER_NAME", default="agentdeck"),
    "workers": Q_WORKERS,
    # A task is killed after `timeout` seconds; the broker re-delivers an unacknowledged task only
    # after `retry` seconds, so retry must exceed timeout or a slow task would run twice at once.
    "timeout": Q_TASK_TIMEOUT,
    "retry": Q_TASK_TIMEOUT + 60,
    "max_attempts": env.int("Q_MAX_ATTEMPTS", default=3),
    "ack_failures": True,
    "catch_up": False,
    "save_limit": env.int("Q_SAVE_LIMIT", default=1000),
    "poll": 0.2,
    "label": "Task queue",
}
# The brokers in agentdeck.core.queue ride out a restart of PostgreSQL or Redis (django-q2's own
# let its pusher and monitor processes die and be restarted).
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    Q_CLUSTER["broker_class"] = "agentdeck.core.queue.RedisBroker"
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["broker_class"] = "agentdeck.core.queue.ORMBroker"

# The longest wait between two attempts of a connection that reconnects (the channel layers'
# LISTEN and Pub/Sub connections, the realtime publisher, the queue brokers, a run's writes):
# they are back within this long of their server (agentdeck.core.reconnect).
RECONNECT_MAX_DELAY_SECONDS = env.float("RECONNECT_MAX_DELAY_SECONDS", default=2.0)

REDIS_SOCKET_TIMEOUT_SECONDS = env.float("REDIS_SOCKET_TIMEOUT_SECONDS", default=30.0)
CHANNEL_LAYER = env.str("CHANNEL_LAYER", default="redis" if REDIS_URL else "postgres")
if CHANNEL_LAYER == "redis":
    if not REDIS_URL:
        raise ImproperlyConfigured("REDIS_URL must be set when CHANNEL_LAYER=redis")
    CHANNEL_LAYERS = {
        "default": {
            # Redis Pub/Sub rather than channels_redis's queue layer (RedisChannelLayer): a
            # group_send is one PUBLISH, which each web process with members receives once and
            # fans out in memory. The queue layer wrote one sorted-set entry per member socket
            # and popped each with four Redis round trips on one receive lock, handed over on
            # every consumer's exit: 500 sockets of runs ending together waited up to 1 s for
            # their last frames (benchmarks/ws_fanout.py: p99 190-270 ms -> 49 ms). What Pub/Sub
            # does not keep (a process reconnecting to Redis misses what was published
            # meanwhile) the run log has: followers notice the gap, or read the log after
            # RUN_STREAM_RECHECK_SECONDS without news.
            # agentdeck.core.channel_layers: channels_redis's layer, re-subscribing everything
            # held locally after Redis restarts and telling consumers they may have missed some.
            "BACKEND": "agentdeck.core.channel_layers.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS}],
            },
        }
    }
elif CHANNEL_LAYER == "postgres":
    # channels-postgres builds a Django DatabaseWrapper from CONFIG, so it needs the complete
    # settings dict Django would normally fill in (TIME_ZONE, AUTOCOMMIT, ...).
    _layer_db = {
        "ATOMIC_REQUESTS": False,
        "AUTOCOMMIT": True,
        "TIME_ZONE": None,
        "TEST": {},
        **_db,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
    }
    CHANNEL_LAYERS = {
        # agentdeck.core.channel_layers: channels_postgres's layer with a LISTEN connection that
        # reconnects after PostgreSQL restarts (upstream's dies with its first error).
        "default": {
            "BACKEND": "agentdeck.core.channel_layers.PostgresChannelLayer",
            "CONFIG": _layer_db,
        }
    }
    # channels-postgres manages group membership through the ORM on a database alias of its own
    # name; it is the same database (a test mirror of "default", so tests create nothing extra).
    DATABASES["channels_postgres"] = {**_db, "TEST": {"MIRROR": "default"}}
elif CHANNEL_LAYER == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    raise ImproperlyConfigured(
        f"CHANNEL_LAYER must be redis, postgres or memory, not {CHANNEL_LAYER!r}"
    )
