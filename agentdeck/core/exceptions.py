"""Domain exceptions. Services raise these; ``agentdeck.core.errors`` renders them as
RFC 9457 problem+json. ``code`` is the stable, machine-readable part clients switch on."""

from __future__ import annotations

from typing import Any

# One title per code, whoever raises it (RFC 9457: a problem type's title does not change from
# occurrence to occurrence). Every ApplicationError subclass registers its code here;
# agentdeck.core.errors.problem() takes the title from here, so a DRF exception, a Django error
# rewritten by the middleware and an ApplicationError with the same code read the same. Codes
# no class declares keep their HTTP status phrase.
PROBLEM_TITLES: dict[str, str] = {
    # Raised by DRF's ValidationError and by hand (SSE), never by an ApplicationError.
    "validation_error": "Invalid input",
    # Codes that several exception classes raise through ``code=`` and no class declares.
    "invalid_provider": "Invalid provider",
    "embedding_dimensions_mismatch": "Embedding dimensions mismatch",
}


def register_problem_title(code: str, title: str) -> None:
    """Record ``code``'s title; a second, different title for the same code is a bug, refused
    at import so it cannot ship."""
    known = PROBLEM_TITLES.setdefault(code, title)
    if known != title:
        raise TypeError(f"problem code {code!r} has two titles: {known!r} and {title!r}")


def problem_title(code: str, default: str) -> str:
    return PROBLEM_TITLES.get(code, default)


class ApplicationError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A class naming a code owns that code's title; a family that takes its codes at
        # construction (files.parsing.FileRejected) names none and registers nothing.
        if "code" in cls.__dict__:
            register_problem_title(cls.code, cls.title)

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
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        # A code some class declares has that class's title, whichever class raised it.
        self.title = problem_title(self.code, self.title)
        self.detail = detail or self.title
        # Extension members of the problem object (RFC 9457 section 3.2), e.g. `available`.
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(self.detail)


register_problem_title(ApplicationError.code, ApplicationError.title)


class IdempotencyConflict(ApplicationError):
    """The same idempotency key with a different request (a run's Idempotency-Key header, a
    credit grant's idempotency_key): one class, so one title, for both."""

    status = 409
    code = "idempotency_conflict"
    title = "Idempotency key reused with a different request"


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
