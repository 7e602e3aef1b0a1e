"""WebSocket authentication: the same JWT or API key as the REST API.

Browsers cannot set headers on a WebSocket, so the credential travels either
* in ``Sec-WebSocket-Protocol``: offer ``["agentdeck.v1", "bearer.<token>"]``; the server answers
  ``agentdeck.v1`` and never echoes the token; or
* in the query string: ``?token=<token>`` (for clients that cannot set subprotocols; query
  strings end up in logs, so prefer the subprotocol).

The middleware never rejects: it puts ``user`` (or an AnonymousUser), ``auth_error`` (a stable
code: ``throttled`` once the client's failed credentials pass their limit, as on REST) and
``auth_expires_at`` (the JWT's ``exp``, or None) into the scope, and each consumer decides,
closing with 4401 when it needs a user.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import AuthenticationFailed

from agentdeck.accounts.authentication import (
    authenticate_api_key,
    decode_jwt,
    failures_counted,
    user_from_claims,
)
from agentdeck.accounts.services import API_KEY_PREFIX
from agentdeck.core.throttling import scope_client_address

SUBPROTOCOL = "agentdeck.v1"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."  # noqa: S105 (a prefix, not a secret)


def token_from_scope(scope: dict[str, Any]) -> str | None:
    for protocol in scope.get("subprotocols") or []:
        if protocol.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            return protocol[len(TOKEN_SUBPROTOCOL_PREFIX) :]
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("token")
    return tokens[0] if tokens else None


def authenticate_token(token: str, *, address: str) -> tuple[Any, datetime | None]:
    """(user, expiry) for a raw token from the client at ``address``; raises
    AuthenticationFailed with a stable code, :class:`AuthThrottled` (429 ``throttled``) once
    that client's failures pass their limit, counted with the REST API's."""
    with failures_counted(address, token):
        if token.startswith(API_KEY_PREFIX):
            user, api_key = authenticate_api_key(token)
            return user, api_key.expires_at
        claims = decode_jwt(token)
        return user_from_claims(claims), datetime.fromtimestamp(int(claims["exp"]), tz=UTC)


class TokenAuthMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        scope["user"], scope["auth_expires_at"], scope["auth_error"] = (
            AnonymousUser(),
            None,
            "not_authenticated",
        )
        token = token_from_scope(scope)
        if token:
            try:
                user, expires_at = await database_sync_to_async(authenticate_token)(
                    token, address=scope_client_address(scope)
                )
            except AuthenticationFailed as e:
                scope["auth_error"] = getattr(e, "problem_code", None) or getattr(
                    e.detail, "code", "token_invalid"
                )
            else:
                scope["user"], scope["auth_expires_at"], scope["auth_error"] = (
                    user,
                    expires_at,
                    None,
                )
        return await self.app(scope, receive, send)
