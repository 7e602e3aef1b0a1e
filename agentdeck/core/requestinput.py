"""The text of a request outside its body, checked once before any view reads it.

JSON bodies go through :mod:`agentdeck.core.jsoninput`; form and multipart fields through the
parsers (:mod:`agentdeck.core.parsers`, which use :func:`query_errors` for form-urlencoded
bodies). Everything else a client writes is checked here, for every path and before
authentication, so no view, filter, selector or log line has to:

- the query string and the path: every name and value must be UTF-8 once percent-decoded
  (Django replaces ``%ff`` with U+FFFD and carries on with altered text) and hold no NUL
  (PostgreSQL's text cannot store it: ``?search=%00`` would be a 500);
- header values: no NUL;
- ``Content-Length``: a whole number (the upload view reads it before DRF does);
- a body's declared charset: UTF-8 (or its ASCII subset) only, the one encoding the parsers read.

A refusal is a problem+json 400 ``validation_error`` naming the parameter (``search``), header
(``Idempotency-Key``) or ``path``, with DRF's codes for the same refusal in a CharField
(``null_characters_not_allowed``) or ``invalid_encoding``; or a 400 ``parse_error``
(Content-Length), or a 415 ``unsupported_media_type`` (charset).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain
from typing import cast
from urllib.parse import unquote_to_bytes

from django.http import HttpRequest, HttpResponse
from rest_framework.exceptions import ErrorDetail, ParseError, UnsupportedMediaType, ValidationError

from agentdeck.core.errors import exception_to_problem, problem_response
from agentdeck.core.jsoninput import refused_character

UTF8_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


def text_errors(field: str, text: str | None) -> Iterator[tuple[str, ErrorDetail]]:
    """The refusal of ``text`` (None: its bytes were not UTF-8) in ``field``, if any."""
    if text is None:
        yield field, ErrorDetail("Not UTF-8 text once percent-decoded.", "invalid_encoding")
        return
    refused = refused_character(text)
    if refused is not None:
        code, message = refused
        yield field, ErrorDetail(f"Text {message}", code)


def shown_name(name: str) -> str:
    """A field name fit to show in an error (a NUL in it spelled out)."""
    return name.replace("\x00", "\\u0000")


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _clean(data: bytes) -> bool:
    """UTF-8 without NUL (the bytes of a lone surrogate are not UTF-8)."""
    return b"\x00" not in data and (data.isascii() or _utf8(data) is not None)


def query_errors(data: str | bytes) -> Iterator[tuple[str, ErrorDetail]]:
    """Refusals in a query string, or a form-urlencoded body (the same format)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if _clean(unquote_to_bytes(data)):
        # The common case, decoded once. Names and values split at a literal "&" or "=" are
        # then clean too (an ASCII byte never sits inside a UTF-8 sequence); the walk below
        # only finds which one is not.
        return
    for pair in data.split(b"&"):
        if not pair:
            continue
        # Percent-decoded as a form is, "+" being a space (what QueryDict will make of it).
        name, _, value = (
            unquote_to_bytes(part.replace(b"+", b" ")) for part in pair.partition(b"=")
        )
        shown = shown_name(name.decode("utf-8", errors="replace"))
        yield from text_errors(shown, _utf8(name))
        yield from text_errors(shown, _utf8(value))


def by_field(found: Iterator[tuple[str, ErrorDetail]]) -> dict[str, list[ErrorDetail]]:
    """``{field: [details]}``, as a DRF ValidationError takes them."""
    errors: dict[str, list[ErrorDetail]] = {}
    for field, detail in found:
        errors.setdefault(field, []).append(detail)
    return errors


def _raw_path(request: HttpRequest) -> bytes | None:
    """The path's bytes as the client sent them, percent-decoded, where the server says (ASGI's
    ``raw_path``). Without it the path is already text: daphne and Django's WSGI handler keep a
    byte that is not UTF-8 as the literal ``%FF``, which only fails to match a route."""
    scope = getattr(request, "scope", None)
    raw = scope.get("raw_path") if scope is not None else None
    return None if raw is None else unquote_to_bytes(raw)


def path_errors(request: HttpRequest) -> Iterator[tuple[str, ErrorDetail]]:
    raw = _raw_path(request)
    if raw is not None and _utf8(raw) is None:
        yield from text_errors("path", None)
    else:
        yield from text_errors("path", request.path)


def header_errors(request: HttpRequest) -> Iterator[tuple[str, ErrorDetail]]:
    for key, value in request.META.items():
        is_header = key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH")
        if is_header and isinstance(value, str) and "\x00" in value:
            name = key.removeprefix("HTTP_").replace("_", "-").title()
            yield from text_errors(name, value)


def request_input_error(request: HttpRequest) -> Exception | None:
    """What is wrong with the request's text outside its body, as the DRF exception that
    :func:`agentdeck.core.errors.exception_to_problem` renders; None when nothing is."""
    errors = by_field(
        chain(
            path_errors(request),
            query_errors(request.META.get("QUERY_STRING", "")),
            header_errors(request),
        )
    )
    if errors:
        return ValidationError(errors)
    length = request.META.get("CONTENT_LENGTH", "")
    if length and not (length.isascii() and length.isdigit()):
        return ParseError("Content-Length must be a whole number of bytes.")
    has_body = (length and int(length) > 0) or "HTTP_TRANSFER_ENCODING" in request.META
    charset = (request.content_params or {}).get("charset")
    if has_body and charset is not None and charset.strip().lower() not in UTF8_CHARSETS:
        return UnsupportedMediaType(
            cast(str, request.content_type),
            detail=f"Request bodies must be UTF-8, not {charset[:40]!r}.",
        )
    return None


class RequestInputMiddleware:
    """Refuses a request whose query string, path or headers a view could not safely use (see
    the module docstring); second in MIDDLEWARE, after ProblemJsonMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        error = request_input_error(request)
        if error is None:
            return self.get_response(request)
        # request.path, not get_full_path(): the query may be what is refused.
        body, headers = exception_to_problem(error, request.path)
        return problem_response(request, body, headers)
