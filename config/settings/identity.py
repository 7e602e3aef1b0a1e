"""Who a request is: the user model, JWTs from the Next.js server, API keys, and what failed
credentials cost (rate limits, the client address, the admin lockout)."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from agentdeck.core.rates import parse_rate
from config.settings.base import env, required_in_production

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
    JWT_SIGNING_KEY = required_in_production("JWT_SIGNING_KEY", DEV_JWT_SIGNING_KEY)
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
