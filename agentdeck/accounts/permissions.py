from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission

from agentdeck.accounts.exceptions import InsufficientScope
from agentdeck.accounts.models import ApiKey

# What a person signed in through Next.js (a JWT) may do. Granting credits is for the Next.js
# server's staff service keys only (API keys with credits:grant), never for a session.
JWT_SCOPES = frozenset({ApiKey.Scope.READ, ApiKey.Scope.WRITE})
# Scopes that only staff-owned keys can use: a key keeps its scopes when its owner is demoted,
# but not their power.
STAFF_SCOPES = frozenset({ApiKey.Scope.CREDITS_GRANT})


def usable_scopes(user: Any, auth: Any) -> frozenset[str]:
    """The scopes the caller can actually use: what ``/me`` shows and what
    :class:`ApiKeyScopePermission` checks, from one place."""
    if not isinstance(auth, ApiKey):
        return JWT_SCOPES
    scopes = frozenset(auth.scopes)
    if not (user is not None and user.is_staff):
        scopes -= STAFF_SCOPES
    return scopes


class ApiKeyScopePermission(BasePermission):
    """Requests need the ``read`` scope for safe methods and ``write`` for the rest; a view may
    name its own with ``required_scopes`` (e.g. ``credits:grant``). API keys have the scopes
    they were made with; a JWT has ``read`` and ``write`` (:func:`usable_scopes`)."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return True  # IsAuthenticated (or the view's own rule) answers for anonymous callers
        needed = set(getattr(view, "required_scopes", ())) or (
            {"read"} if request.method in SAFE_METHODS else {"write"}
        )
        missing = needed - usable_scopes(request.user, request.auth)
        if missing:
            credential = "API key" if isinstance(request.auth, ApiKey) else "token"
            raise InsufficientScope(
                f"This request needs the scope {', '.join(sorted(missing))}, which this "
                f"{credential} does not have"
                + (" (only API keys can hold it)." if credential == "token" else ".")
            )
        return True
