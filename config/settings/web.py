"""Secrets at rest, the admin account, static files, i18n and the security headers."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import DEBUG, IS_PRODUCTION, VAR_DIR, env

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
