"""Request body parsers and the content negotiation that checks what any parser returns.

JSON is decoded by :func:`agentdeck.core.jsoninput.loads` (:class:`StrictJSONParser`, the default
parser), so hostile JSON (too deep, NUL, lone surrogates, non-finite numbers) is a 400
``parse_error`` before any view or serializer sees it.

Form and multipart bodies are read by DRF's parsers, which views name themselves (the upload
view: ``MultiPartParser, FormParser``). :class:`StrictContentNegotiation` (DRF's
``DEFAULT_CONTENT_NEGOTIATION_CLASS``) checks whatever parser it selects, so whatever parser a
view lists, JSON is read by :class:`StrictJSONParser`, and every form field name, value and file
name is refused with a 400 ``validation_error`` naming the field when it holds NUL (or,
form-urlencoded, percent-escapes that are not UTF-8).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from itertools import chain
from typing import IO, TYPE_CHECKING, Any

from django.utils.datastructures import MultiValueDict
from rest_framework.exceptions import ErrorDetail, ParseError, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser, DataAndFiles, FormParser, JSONParser

from agentdeck.core import jsoninput
from agentdeck.core.requestinput import by_field, query_errors, shown_name, text_errors

if TYPE_CHECKING:
    from rest_framework.request import Request


class StrictJSONParser(JSONParser):
    def parse(
        self,
        stream: IO[Any] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        raw = stream.read() if stream is not None else b""
        try:
            return jsoninput.loads(raw)
        except jsoninput.JSONInputError as exc:
            raise ParseError(f"JSON parse error: {exc}") from None


def form_errors(data: MultiValueDict[str, Any]) -> Iterator[tuple[str, ErrorDetail]]:
    """Refusals in field names and values (text, or uploads by their file name)."""
    for name, values in data.lists():
        shown = shown_name(name)
        for text in (name, *(getattr(v, "name", v) for v in values)):
            if isinstance(text, str):
                yield from text_errors(shown, text)


class _Checked:
    """Mixed in before the selected parser's class (see :func:`checked`): its input or result,
    checked. A subclass rather than a wrapper, so DRF still sees a FormParser (it gives one the
    body as bytes, keeping ``request.body`` readable)."""

    def parse(
        self,
        stream: IO[Any] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        if isinstance(self, FormParser):
            # Checked as bytes, as the query string is: QueryDict would turn %ff into U+FFFD.
            raw = stream.read() if stream is not None else b""
            errors = by_field(query_errors(raw))
            if errors:
                raise ValidationError(errors)
            return super().parse(io.BytesIO(raw), media_type, parser_context)  # type: ignore[misc]
        result = super().parse(stream, media_type, parser_context)  # type: ignore[misc]
        if isinstance(result, DataAndFiles):
            errors = by_field(chain(form_errors(result.data), form_errors(result.files)))
            if errors:
                raise ValidationError(errors)
            return result
        try:
            jsoninput.check_strings(result)
        except jsoninput.JSONInputError as exc:
            raise ParseError(f"Parse error: {exc}") from None
        return result


@cache
def checked(parser_class: type[BaseParser]) -> type[BaseParser]:
    return type(f"Checked{parser_class.__name__}", (_Checked, parser_class), {})


class StrictContentNegotiation(DefaultContentNegotiation):
    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        parser = super().select_parser(request, parsers)
        if parser is None or isinstance(parser, StrictJSONParser):
            return parser
        if isinstance(parser, JSONParser):
            # JSON is read by the one loader whatever a view lists: a plain JSONParser
            # recursed on deep JSON (RecursionError, a 500).
            return StrictJSONParser()
        # DRF makes parsers with no arguments and keeps no state in them.
        # mypy takes a class for unhashable (python/typeshed#4638); functools.cache hashes it fine.
        return checked(type(parser))()  # type: ignore[arg-type]
