"""One error shape for the whole API: RFC 9457 ``application/problem+json``.

Every error body has ``type``, ``title``, ``status``, ``detail``, ``code`` and ``instance``;
validation failures add ``errors``: a list of ``{field, code, detail}``. DRF views reach
:func:`problem_exception_handler`; errors raised outside DRF on API paths (unknown URLs, Django's
own 400/405/500) are rewritten by ``agentdeck.core.middleware.ProblemJsonMiddleware``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, NotRequired, TypedDict

from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error

from agentdeck.core.exceptions import ApplicationError, problem_title

logger = logging.getLogger("agentdeck.errors")

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:agentdeck:problem:"


class FieldError(TypedDict):
    field: str
    code: str
    detail: str


class Problem(TypedDict):
    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: NotRequired[str]
    errors: NotRequired[list[FieldError]]


# Codes for Django/DRF errors that carry no code of ours; keyed by HTTP status.
STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "throttled",
    431: "request_header_fields_too_large",
    500: "internal_error",
    503: "service_unavailable",
}


def problem(
    *,
    status: int,
    code: str,
    detail: str,
    title: str | None = None,
    instance: str | None = None,
    errors: list[FieldError] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        # One title per code (agentdeck.core.exceptions.PROBLEM_TITLES), whoever builds it.
        "title": problem_title(code, title or HTTPStatus(status).phrase),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    if extra:
        # Extension members never override the standard ones.
        body.update({k: v for k, v in extra.items() if k not in body})
    return body


def problem_response(
    request: HttpRequest | None, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> JsonResponse:
    response = JsonResponse(
        body,
        status=body["status"],
        content_type=PROBLEM_CONTENT_TYPE,
        json_dumps_params={"separators": (",", ":")},
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def flatten_validation_errors(detail: Any, prefix: str = "") -> list[FieldError]:
    """Turn DRF's nested ``get_full_details()`` into a flat list with dotted field paths."""
    out: list[FieldError] = []
    if isinstance(detail, dict) and set(detail) == {"message", "code"}:
        out.append(
            {
                "field": prefix or "non_field_errors",
                "code": str(detail["code"]),
                "detail": str(detail["message"]),
            }
        )
    elif isinstance(detail, dict):
        for key, value in detail.items():
            out.extend(flatten_validation_errors(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            nested = isinstance(value, dict) and set(value) != {"message", "code"}
            nested = nested or isinstance(value, list)
            out.extend(flatten_validation_errors(value, f"{prefix}.{index}" if nested else prefix))
    else:
        out.append(
            {"field": prefix or "non_field_errors", "code": "invalid", "detail": str(detail)}
        )
    return out


def _detail_text(detail: Any) -> str:
    if isinstance(detail, dict):
        # simplejwt puts {"detail": ..., "code": ..., "messages": [...]} in exc.detail.
        return str(detail.get("detail") or next(iter(detail.values()), ""))
    if isinstance(detail, list):
        return "; ".join(str(d) for d in detail)
    return str(detail)


def exception_to_problem(
    exc: Exception, instance: str | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Map any exception to (problem body, extra headers)."""
    headers: dict[str, str] = {}

    if isinstance(exc, ApplicationError):
        body = problem(
            status=exc.status,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            instance=instance,
            extra=exc.extra,
        )
        return body, dict(exc.headers)

    if isinstance(exc, (SuspiciousOperation, BadRequest, MultiPartParserError)):
        return _request_problem(exc, instance), headers

    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        # {field: [messages]} with each message's code; a message with no field of its own is
        # filed under non_field_errors, as serializers do.
        exc = drf_exceptions.ValidationError(detail=as_serializer_error(exc))

    if isinstance(exc, drf_exceptions.ValidationError):
        errors = flatten_validation_errors(exc.get_full_details())
        body = problem(
            status=400,
            code="validation_error",
            title="Invalid input",
            detail="The request has invalid fields; see `errors`.",
            instance=instance,
            errors=errors,
        )
        return body, headers

    if isinstance(exc, drf_exceptions.APIException):
        status = exc.status_code
        detail: Any = exc.detail
        code = getattr(exc, "problem_code", None)
        if code is None and isinstance(detail, dict) and "code" in detail:
            code = str(detail["code"])
        if code is None:
            code = getattr(detail, "code", None) or exc.default_code
        # Set by DRF on authentication failures (auth_header) and by Throttled (wait).
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None)
        if wait:
            headers["Retry-After"] = str(int(wait))
        body = problem(
            status=status, code=str(code), detail=_detail_text(detail), instance=instance
        )
        return body, headers

    logger.error("Unhandled exception on %s", instance, exc_info=exc)
    body = problem(
        status=500,
        code="internal_error",
        detail="An unexpected error occurred; it has been logged.",
        instance=instance,
    )
    return body, headers


def _request_problem(exc: Exception, instance: str | None) -> dict[str, Any]:
    """Django's refusals of a request it could not read safely: a body over
    DATA_UPLOAD_MAX_MEMORY_SIZE, more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS (form or query),
    a multipart body it cannot parse, a disallowed Host. Django answers them with a 400 page of
    its own, but raised inside a DRF view (reading request.data or query_params) they would
    reach the 500 branch below."""
    if isinstance(exc, SuspiciousOperation):
        # Where Django logs them (its security loggers), not as a server error.
        logging.getLogger(f"django.security.{type(exc).__name__}").warning(str(exc))
    if isinstance(exc, RequestDataTooBig):
        return problem(
            status=413,
            code="payload_too_large",
            detail=f"The request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
            instance=instance,
        )
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        what, limit = (
            ("files", settings.DATA_UPLOAD_MAX_NUMBER_FILES)
            if isinstance(exc, TooManyFilesSent)
            else ("parameters or fields", settings.DATA_UPLOAD_MAX_NUMBER_FIELDS)
        )
        return problem(
            status=400,
            code="too_many_fields",
            detail=f"The request has more than {limit} {what}.",
            instance=instance,
        )
    if isinstance(exc, MultiPartParserError):
        return problem(
            status=400,
            code="parse_error",
            detail=f"Multipart parse error: {exc}",
            instance=instance,
        )
    return problem(
        status=400,
        code="bad_request",
        detail="The request could not be processed.",
        instance=instance,
    )


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF ``EXCEPTION_HANDLER``: every exception becomes problem+json, a 500 included."""
    request = context.get("request")
    instance = request.get_full_path() if request is not None else None
    body, headers = exception_to_problem(exc, instance)
    return Response(body, status=body["status"], headers=headers, content_type=PROBLEM_CONTENT_TYPE)
