"""Middleware that keeps the API's promises whatever a view does: every error on an API path is
problem+json (:class:`ProblemJsonMiddleware`), and a method a view does not answer is a 405
before anything else looks at the request (:class:`AllowedMethodsMiddleware`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from agentdeck.core.errors import (
    PROBLEM_CONTENT_TYPE,
    STATUS_CODES,
    exception_to_problem,
    problem,
    problem_response,
)

logger = logging.getLogger("agentdeck.errors")

API_PREFIX = "/api/"


class ProblemJsonMiddleware:
    """Keeps the problem+json promise on API paths for errors DRF never sees: an unknown URL
    (Django's 404 page), Django's own 400 (a disallowed Host), 405 from a plain view, and
    exceptions raised outside DRF. It sits first in MIDDLEWARE so it sees every response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(API_PREFIX) or response.status_code < 400:
            return response
        content_type = response.get("Content-Type", "")
        if content_type.startswith(PROBLEM_CONTENT_TYPE):
            return response
        status = response.status_code
        detail = self._detail_from(response) or _default_detail(status, request)
        body = problem(
            status=status,
            code=STATUS_CODES.get(status, "error"),
            detail=detail,
            instance=request.get_full_path(),
        )
        headers = {
            h: response[h] for h in ("Allow", "Retry-After", "WWW-Authenticate") if h in response
        }
        return problem_response(request, body, headers)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None
        body, headers = exception_to_problem(exception, request.get_full_path())
        return problem_response(request, body, headers)

    @staticmethod
    def _detail_from(response: HttpResponse) -> str | None:
        if response.get("Content-Type", "").startswith("application/json"):
            try:
                data = json.loads(response.content)
            except (ValueError, AttributeError):
                return None
            if isinstance(data, dict) and isinstance(data.get("detail"), str):
                detail: str = data["detail"]
                return detail
        return None


def allow_methods(*methods: str) -> Callable[[Any], Any]:
    """Declare the methods a plain function view answers (class-based views say so by their
    handlers): :class:`AllowedMethodsMiddleware` answers 405 for the others."""

    def declare(view: Any) -> Any:
        view.allowed_methods = tuple(m.upper() for m in methods)
        return view

    return declare


def allowed_methods(view: Any) -> list[str] | None:
    """The methods the resolved ``view`` answers, in the order Django lists them; None if it
    does not say (a plain function view without :func:`allow_methods`)."""
    declared = getattr(view, "allowed_methods", None)
    if declared is not None:
        return list(declared)
    # DRF's as_view() keeps the class as `cls` (and a viewset's method -> action map as
    # `actions`); Django's as `view_class`.
    view_class = getattr(view, "cls", None) or getattr(view, "view_class", None)
    if view_class is None:
        return None
    actions = getattr(view, "actions", None)
    names = view_class.http_method_names
    handled = set(actions) if actions is not None else {m for m in names if hasattr(view_class, m)}
    if "get" in handled:
        handled.add("head")  # both Django and DRF answer HEAD with the GET handler
    if hasattr(view_class, "options"):
        handled.add("options")
    return [m.upper() for m in names if m in handled]


class AllowedMethodsMiddleware:
    """A method the resolved view does not answer is a 405 with ``Allow``, before CSRF,
    authentication, permissions or throttling run: DRF checks the method only after them
    (a POST to a read-only list would be a 401, or a 403 for a read-only API key), and Django's
    CSRF check refuses a POST to a plain view with 403 before the view can say 405."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view: Callable[..., HttpResponse],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        allowed = allowed_methods(view)
        if allowed is None or request.method in allowed:
            return None
        body = problem(
            status=405,
            code="method_not_allowed",
            detail=f"Method {request.method} is not allowed on {request.path}.",
            instance=request.get_full_path(),
        )
        return problem_response(request, body, {"Allow": ", ".join(allowed)})


def _default_detail(status: int, request: HttpRequest) -> str:
    if status == 404:
        return f"No API endpoint matches {request.path}."
    if status == 405:
        return f"Method {request.method} is not allowed on {request.path}."
    if status >= 500:
        return "An unexpected error occurred; it has been logged."
    return "The request could not be processed."
