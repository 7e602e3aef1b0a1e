"""Cursor pagination for every list, refusing with 400 ``invalid_cursor`` any cursor it did not
issue or cannot use.

DRF's ``CursorPagination`` reads ``?cursor=`` as base64 of ``o=<offset>&r=<reverse>&p=<position>``
and puts the position into SQL as given (``created_at < p``), so a forged one (``p=2024`` for a
timestamp, ``p=%00``, text for a number) fails in the ORM or in PostgreSQL: a 500. Here a
cursor is

1. signed when it is made (HMAC with ``SECRET_KEY``, salted with the list's path and ordering), so
   any other text, a truncated cursor, or one from another list, is refused before it is read;
2. checked once more before use: its position must be a value of the ordering field. A cursor
   signed for the same path and ordering always is, so this guards against what the signature
   cannot see (an ordering field whose type changed, a leaked key).

``?page_size=`` is an integer from 1 up; above ``max_page_size`` it is capped (as DRF does),
anything else is a 400 ``validation_error`` naming it, where DRF silently used the default.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from urllib import parse

from django.core import signing
from django.core.exceptions import ValidationError
from django.utils import timezone
from rest_framework.exceptions import ErrorDetail
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.utils.urls import replace_query_param

from agentdeck.core.exceptions import ApplicationError
from agentdeck.core.jsoninput import refused_character

if TYPE_CHECKING:
    from django.db.models import Field, Model, QuerySet
    from rest_framework.request import Request
    from rest_framework.views import APIView

# A signed cursor is well under 200 characters; anything much longer is not one of ours and is
# refused before any HMAC is computed over it.
MAX_CURSOR_CHARS = 512
_URLSAFE_BASE64 = re.compile(r"[A-Za-z0-9_-]+={0,2}")


class InvalidCursor(ApplicationError):
    status = 400
    code = "invalid_cursor"
    title = "Invalid cursor"


class CreatedAtCursorPagination(CursorPagination):
    """Newest first; a cursor stays stable while rows are being inserted (unlike offsets)."""

    ordering = ("-created_at", "-pk")
    page_size_query_param = "page_size"
    max_page_size = 200

    # Set by paginate_queryset (DRF's, and ours for _model); django-stubs leaves request out.
    request: Request
    _model: type[Model]

    def paginate_queryset(  # type: ignore[override]
        self, queryset: QuerySet[Any], request: Request, view: APIView | None = None
    ) -> list[Any] | None:
        # decode_cursor checks the position against the field it will be compared with.
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request: Request) -> int | None:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            message = f"A whole number from 1 to {self.max_page_size}."
            raise DRFValidationError(
                {self.page_size_query_param: [ErrorDetail(message, code="invalid")]}
            )
        return min(int(raw), self.max_page_size)

    def _signer(self) -> signing.Signer:
        # Salted with the path and ordering: a cursor is only good for the list that made it.
        salt = f"{__name__}:{self.request.path}:{','.join(self.ordering)}"
        return signing.Signer(salt=salt)

    def encode_cursor(self, cursor: Cursor) -> str:
        tokens: dict[str, Any] = {}
        if cursor.offset != 0:
            tokens["o"] = str(cursor.offset)
        if cursor.reverse:
            tokens["r"] = "1"
        if cursor.position is not None:
            tokens["p"] = cursor.position
        signed = self._signer().sign(parse.urlencode(tokens, doseq=True))
        encoded = base64.urlsafe_b64encode(signed.encode("ascii")).decode("ascii")
        # base_url is set by paginate_queryset, before any cursor is encoded.
        return replace_query_param(cast(str, self.base_url), self.cursor_query_param, encoded)

    def decode_cursor(self, request: Request) -> Cursor | None:
        encoded = request.query_params.get(self.cursor_query_param)
        if not encoded:  # absent, or ?cursor= with nothing: the first page
            return None
        if len(encoded) > MAX_CURSOR_CHARS or not _URLSAFE_BASE64.fullmatch(encoded):
            raise InvalidCursor("The cursor is not one this list issued.")
        try:
            signed = base64.urlsafe_b64decode(encoded).decode("ascii")
            querystring = self._signer().unsign(signed)
        except (binascii.Error, UnicodeDecodeError, signing.BadSignature):
            raise InvalidCursor("The cursor is not one this list issued.") from None
        tokens = parse.parse_qs(querystring, keep_blank_values=True)
        offset = int(tokens.get("o", ["0"])[0])
        reverse = tokens.get("r", ["0"])[0] == "1"
        # Text, as DRF's own positions are (its stub says int).
        position: Any = tokens.get("p", [None])[0]
        if position is not None and not self._usable(position):
            raise InvalidCursor("The cursor's position does not fit this list.")
        return Cursor(offset=min(offset, self.offset_cutoff), reverse=reverse, position=position)

    def _usable(self, position: str) -> bool:
        """Whether ``position`` converts to the ordering field's type (as the ORM will convert it
        for the comparison), and a timestamp carries its zone."""
        name = self.ordering[0].lstrip("-")
        meta = self._model._meta
        # A concrete field (created_at, pk), never the reverse side of a relation.
        field = cast("Field[Any, Any]", meta.pk if name == "pk" else meta.get_field(name))
        try:
            value: Any = field.to_python(position)
        except (ValidationError, ValueError, TypeError):
            return False
        if isinstance(value, str) and refused_character(value) is not None:
            return False
        return not (isinstance(value, datetime) and timezone.is_naive(value))
