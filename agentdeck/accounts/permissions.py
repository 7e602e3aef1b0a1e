from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from agentdeck.accounts.models import ApiKey


class ApiKeyScopePermission(BasePermission):
    """Requests made with an API key need its ``read`` scope for safe methods and ``write`` for
    the rest; a view may ask for more with ``required_scopes``. JWT callers are not limited."""

    message = "This API key lacks the scope this request needs."
    code = "insufficient_scope"

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.auth, ApiKey):
            return True
        needed = {"read"} if request.method in SAFE_METHODS else {"write"}
        needed |= set(getattr(view, "required_scopes", ()))
        return needed <= set(request.auth.scopes)
