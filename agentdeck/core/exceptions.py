"""Domain exceptions. Services raise these; ``agentdeck.core.errors`` renders them as
RFC 9457 problem+json. ``code`` is the stable, machine-readable part clients switch on."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        title: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        # Extension members of the problem object (RFC 9457 section 3.2), e.g. `available`.
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(self.detail)


class NotFound(ApplicationError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(ApplicationError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PermissionDenied(ApplicationError):
    status = 403
    code = "permission_denied"
    title = "Permission denied"


class PayloadTooLarge(ApplicationError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"
