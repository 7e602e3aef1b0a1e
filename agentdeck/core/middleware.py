from __future__ import annotations

import json
import logging
from collections.abc import Callable

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
                return data["detail"]
        return None


def _default_detail(status: int, request: HttpRequest) -> str:
    if status == 404:
        return f"No API endpoint matches {request.path}."
    if status == 405:
        return f"Method {request.method} is not allowed on {request.path}."
    if status >= 500:
        return "An unexpected error occurred; it has been logged."
    return "The request could not be processed."
