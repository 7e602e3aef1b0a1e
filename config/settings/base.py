"""The environment, the deployment kind (``ENVIRONMENT``), secrets, hosts and the Django apps,
middleware and templates: what every other part of the settings builds on."""

from __future__ import annotations

from pathlib import Path

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

# Generic Django classes subscriptable at run time (ModelAdmin[UserCredits]) for the type checker.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parents[2]

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


def required_in_production(name: str, dev_default: str) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if IS_PRODUCTION:
        raise ImproperlyConfigured(f"{name} must be set when ENVIRONMENT=production")
    return dev_default


DEBUG = env.bool("DEBUG", default=False)
if IS_PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when ENVIRONMENT=production")

SECRET_KEY = required_in_production("SECRET_KEY", "dev-insecure-secret-key-not-for-production")
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
