"""How callers prove who they are.

* ``Authorization: Bearer adk_...``: an API key (:class:`ApiKeyAuthentication`).
* ``Authorization: Bearer <JWT>``: a short-lived token signed by the Next.js server
  (:class:`NextJsJWTAuthentication`). HS256 with ``JWT_SIGNING_KEY`` by default, or keys from
  ``JWT_JWKS_URL``; ``exp`` and ``sub`` are required; ``aud``/``iss`` are checked when set.
  The tokens carry no simplejwt-specific claims (``token_type``, ``jti``).

``request.auth`` is the :class:`ApiKey` for API keys and the claims dict for JWTs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import jwt
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenBackendError, TokenBackendExpiredToken

from agentdeck.accounts.exceptions import AuthFailed, AuthThrottled
from agentdeck.accounts.models import ApiKey, User
from agentdeck.accounts.selectors import api_key_get_by_secret, user_get_by_pk
from agentdeck.accounts.services import (
    API_KEY_DISPLAY_PREFIX_LEN,
    API_KEY_PREFIX,
    API_KEY_RANDOM_CHARS,
    api_key_touch,
    user_get_or_create_from_claims,
)
from agentdeck.core.exceptions import ApplicationError
from agentdeck.core.jsoninput import refused_character
from agentdeck.core.throttling import count_auth_failure, request_client_address

if TYPE_CHECKING:
    from django.db.models import Field
    from rest_framework.request import Request


@contextmanager
def failures_counted(address: str, credential: str | None) -> Iterator[None]:
    """Count a failed credential raised inside against ``address`` and the credential's API key
    prefix (agentdeck.core.throttling.count_auth_failure); over the limit the failure becomes
    :class:`AuthThrottled`. A success costs nothing: nothing is counted or read."""
    try:
        yield
    except AuthFailed as failure:
        if isinstance(failure, AuthThrottled):
            raise
        prefix = credential[:API_KEY_DISPLAY_PREFIX_LEN] if credential else ""
        # A cache that is down counts nothing (count_auth_failure fails open): still a 401.
        wait = count_auth_failure(
            address=address,
            credential_prefix=prefix if API_KEY_PREFIX_RE.fullmatch(prefix) else None,
        )
        if wait is not None:
            raise AuthThrottled(wait) from None
        raise


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        address = request_client_address(request)
        with failures_counted(address, None):
            secret = bearer_token(request)
        if secret is None or not secret.startswith(API_KEY_PREFIX):
            return None  # not ours: let the JWT authentication look at it
        with failures_counted(address, secret):
            return authenticate_api_key(secret)

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


# adk_ + 40 base62 characters (services._new_api_key_secret); the prefix is what lists show.
API_KEY_RE = re.compile(rf"{API_KEY_PREFIX}[0-9A-Za-z]{{{API_KEY_RANDOM_CHARS}}}")
API_KEY_PREFIX_RE = re.compile(
    rf"{API_KEY_PREFIX}[0-9A-Za-z]{{{API_KEY_DISPLAY_PREFIX_LEN - len(API_KEY_PREFIX)}}}"
)


def authenticate_api_key(secret: str) -> tuple[User, ApiKey]:
    # A string that cannot be a key is refused without asking the database.
    api_key = api_key_get_by_secret(secret=secret) if API_KEY_RE.fullmatch(secret) else None
    if api_key is None:
        raise AuthFailed("Invalid API key.", "api_key_invalid")
    if api_key.is_revoked:
        raise AuthFailed("This API key has been revoked.", "api_key_revoked")
    if api_key.is_expired:
        raise AuthFailed("This API key has expired.", "api_key_expired")
    if not api_key.owner.is_active:
        raise AuthFailed("User is inactive.", "user_inactive")
    api_key_touch(api_key=api_key)
    return api_key.owner, api_key


def bearer_token(request) -> str | None:
    parts = get_authorization_header(request).split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2:
        raise AuthFailed(
            "Authorization header must be 'Bearer <token>'.", "authorization_malformed"
        )
    try:
        return parts[1].decode()
    except UnicodeDecodeError:
        raise AuthFailed(
            "Authorization header is not valid text.", "authorization_malformed"
        ) from None


class NextJsTokenBackend(TokenBackend):
    """simplejwt's backend, accepting a list of algorithms (a JWKS may hold RSA and EC keys)
    and requiring ``exp`` and ``sub``."""

    def __init__(self, *, algorithms: list[str], **kwargs: Any) -> None:
        super().__init__(algorithm=algorithms[0], **kwargs)
        for alg in algorithms:
            self._validate_algorithm(alg)
        self.algorithms = list(algorithms)

    def get_verifying_key(self, token: Any) -> Any:
        if self.jwks_client:
            try:
                return self.jwks_client.get_signing_key_from_jwt(token).key
            except jwt.PyJWKClientError as e:
                raise TokenBackendError(_("Token is invalid")) from e
        return self.prepared_signing_key

    def decode(self, token: Any, verify: bool = True) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                self.get_verifying_key(token),
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.get_leeway(),
                options={
                    "verify_aud": self.audience is not None,
                    "verify_signature": verify,
                    "require": ["exp", "sub"],
                },
            )
        except jwt.ExpiredSignatureError as e:
            raise TokenBackendExpiredToken(_("Token is expired")) from e
        except jwt.ImmatureSignatureError as e:
            raise TokenBackendError(_("Token is not valid yet")) from e
        except jwt.MissingRequiredClaimError as e:
            raise TokenBackendError(f"Token has no '{e.claim}' claim") from e
        except jwt.InvalidAlgorithmError as e:
            raise TokenBackendError(_("Token algorithm is not accepted")) from e
        except jwt.InvalidTokenError as e:
            raise TokenBackendError(_("Token is invalid")) from e


@lru_cache(maxsize=1)
def token_backend() -> NextJsTokenBackend:
    # Cached per process: the JWKS client inside keeps fetched keys between requests.
    return NextJsTokenBackend(
        algorithms=settings.JWT_ALGORITHMS,
        signing_key=settings.JWT_SIGNING_KEY or None,
        audience=settings.JWT_AUDIENCE,
        issuer=settings.JWT_ISSUER,
        jwk_url=settings.JWT_JWKS_URL or None,
        leeway=settings.JWT_LEEWAY_SECONDS,
    )


def decode_jwt(raw_token: str) -> dict[str, Any]:
    try:
        claims = token_backend().decode(raw_token)
    except TokenBackendExpiredToken:
        raise AuthFailed("Token has expired.", "token_expired") from None
    except TokenBackendError as e:
        raise AuthFailed(str(e), "token_invalid") from None
    check_user_claims(claims)
    return claims


# The claims that become columns of `users` (claim -> column). A signed token is trusted to say
# who the user is, not to fit the table: an over-long value or one PostgreSQL cannot store (NUL,
# a lone surrogate) made the lookup or the insert fail with a 500.
USER_CLAIM_COLUMNS = {"sub": "id", "email": "email", "name": "name", "picture": "image"}


def check_user_claims(claims: dict[str, Any]) -> None:
    """Refuse (401 ``token_invalid``) a token whose user claims could not be stored as they are:
    ``sub`` must be a non-empty string; ``email``, ``name`` and ``picture`` absent, null or
    strings; each within its column's length and free of NUL and lone surrogates. Runs before
    any query."""
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise AuthFailed("Token 'sub' must be a non-empty string.", "token_invalid")
    for claim, column in USER_CLAIM_COLUMNS.items():
        value = claims.get(claim)
        if value is None:
            continue
        if not isinstance(value, str):
            raise AuthFailed(f"Token '{claim}' must be a string.", "token_invalid")
        max_length = cast("Field[Any, Any]", User._meta.get_field(column)).max_length
        if max_length is not None and len(value) > max_length:
            raise AuthFailed(
                f"Token '{claim}' is longer than {max_length} characters.", "token_invalid"
            )
        if refused_character(value) is not None:
            raise AuthFailed(
                f"Token '{claim}' contains characters that cannot be stored.", "token_invalid"
            )


def user_from_claims(claims: dict[str, Any]) -> User:
    user = user_get_by_pk(claims["sub"])
    if user is None:
        if not settings.USERS_TABLE_MANAGED:
            # Prisma owns the table: a user we cannot see does not exist (yet) for us.
            raise AuthFailed("Unknown user.", "user_not_found")
        try:
            user = user_get_or_create_from_claims(
                user_id=claims["sub"],  # checked by check_user_claims, like the three below
                email=claims.get("email"),
                name=claims.get("name"),
                image=claims.get("picture"),
            )
        except ApplicationError as e:
            raise AuthFailed(e.detail, e.code) from None
    if not user.is_active:
        raise AuthFailed("User is inactive.", "user_inactive")
    return user


class NextJsJWTAuthentication(JWTAuthentication):
    # request.auth is the token's claims here, not simplejwt's Token.
    def authenticate(  # type: ignore[override]
        self, request: Request
    ) -> tuple[User, dict[str, Any]] | None:
        # ApiKeyAuthentication runs first and has refused a malformed header already.
        raw = bearer_token(request)
        if raw is None or raw.startswith(API_KEY_PREFIX):
            return None
        with failures_counted(request_client_address(request), raw):
            claims = decode_jwt(raw)
            return user_from_claims(claims), claims

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
