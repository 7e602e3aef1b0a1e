from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from agentdeck.accounts.models import ApiKey


class ApiKeyScopePermission(BasePermission):
    """Requests made with an API key need its ``read`` scope for safe methods and ``write`` for
    the rest; a view may name its own with ``required_scopes``. JWT callers are not limited by
    scopes (views that only service keys may call check that themselves)."""

    message = "This API key lacks the scope this request needs."
    code = "insufficient_scope"

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.auth, ApiKey):
            return True
        # A view naming its own scopes (e.g. credits:grant) needs exactly those.
        needed = set(getattr(view, "required_scopes", ())) or (
            {"read"} if request.method in SAFE_METHODS else {"write"}
        )
        return needed <= set(request.auth.scopes)
