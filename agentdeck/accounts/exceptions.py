"""The accounts domain's errors: failed authentication (401, or 429 when throttled) and a
missing API-key scope (403), each with a stable problem ``code``."""

from __future__ import annotations

import math

from rest_framework import exceptions

from agentdeck.core.exceptions import PermissionDenied


class AuthFailed(exceptions.AuthenticationFailed):
    """401 with a stable problem ``code`` of its own (token_expired, api_key_revoked, ...)."""

    def __init__(self, detail: str, code: str) -> None:
        super().__init__(detail, code)
        self.problem_code = code


class AuthThrottled(AuthFailed):
    """A failed credential from a client (or against a key prefix) over its failure limit:
    429 ``throttled`` with Retry-After instead of 401. An authentication failure still, so every
    caller that handles those (REST, SSE, the WebSocket middleware) handles this one."""

    status_code = 429

    def __init__(self, wait: float) -> None:
        self.wait = max(1, math.ceil(wait))
        super().__init__(
            f"Too many failed authentication attempts; try again in {self.wait} s.", "throttled"
        )


class InsufficientScope(PermissionDenied):
    """The caller's credential lacks a scope the request needs. The one class for this code:
    the scope permission and any view raise it, so it always reads the same."""

    code = "insufficient_scope"
    title = "Insufficient scope"
