"""What a user may store to be sent later as an HTTP header: a provider's API key and extra
headers, a tool's headers and secret headers.

httpx encodes header values as ASCII and h11 refuses control characters and surrounding
whitespace, so a value outside that set breaks every request made with it (a 500 on
``/providers/{id}/models/``, ``internal_error`` on every run). These checks run when such a
value is written (API and admin) and again when a stored one is about to be used, so a row
written by other means fails with a clear code instead.

- names: RFC 9110 tokens, at most ``MAX_NAME_LENGTH`` characters, and not one of the framing
  headers the HTTP client sets itself (``Content-Length``, ``Host``, ...);
- values: visible ASCII, spaces and tabs inside but not at either end, no CR, LF or NUL, at most
  ``MAX_VALUE_LENGTH`` characters (h11's ``field-value`` rule, minus obs-text that httpx cannot
  encode);
- API keys: visible ASCII without spaces (``Authorization: Bearer <key>``), at most
  ``API_KEY_MAX_LENGTH`` characters.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import Direction
from rest_framework import serializers

MAX_HEADERS = 32
MAX_NAME_LENGTH = 128
MAX_VALUE_LENGTH = 4096
# Long enough for a JWT-style key (Azure AD tokens run to ~2,500 characters).
API_KEY_MAX_LENGTH = 4096

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?)?")
_API_KEY = re.compile(r"[\x21-\x7e]+")
# Set by the HTTP client from the request itself; a stored one would corrupt the message.
FRAMING_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class HeaderError(ValueError):
    """``str(exc)`` says what is wrong; ``name`` is the header it concerns, when it has a
    printable one."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


def _shown(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def check_header_name(name: Any) -> None:
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise HeaderError(
            f"Header name {_shown(str(name))} is not a token: letters, digits and "
            "!#$%&'*+-.^_`|~ only."
        )
    if len(name) > MAX_NAME_LENGTH:
        raise HeaderError(f"Header names may have at most {MAX_NAME_LENGTH} characters.")
    if name.lower() in FRAMING_HEADERS:
        raise HeaderError(f"{name} is set by the HTTP client and cannot be configured.", name=name)


def check_header_value(value: Any, *, name: str | None = None) -> None:
    if not isinstance(value, str):
        raise HeaderError("Header values must be strings.", name=name)
    if len(value) > MAX_VALUE_LENGTH:
        raise HeaderError(
            f"Header values may have at most {MAX_VALUE_LENGTH} characters.", name=name
        )
    if not _VALUE.fullmatch(value):
        raise HeaderError(
            "Header values may hold only visible ASCII characters, with spaces or tabs "
            "between them (no line breaks, control or non-ASCII characters).",
            name=name,
        )


def check_headers(headers: Any) -> None:
    """A ``{name: value}`` object of headers to send, as the checks above define them."""
    if not isinstance(headers, dict):
        raise HeaderError("Headers must be an object of {name: value}.")
    if len(headers) > MAX_HEADERS:
        raise HeaderError(f"At most {MAX_HEADERS} headers.")
    for name, value in headers.items():
        check_header_name(name)
        check_header_value(value, name=name)


def _check_api_key_characters(key: Any) -> None:
    if not isinstance(key, str) or not _API_KEY.fullmatch(key):
        raise HeaderError(
            "API keys may hold only visible ASCII characters (no spaces, line breaks or "
            "non-ASCII characters)."
        )


def check_api_key(key: Any) -> None:
    _check_api_key_characters(key)
    if len(key) > API_KEY_MAX_LENGTH:
        raise HeaderError(f"API keys may have at most {API_KEY_MAX_LENGTH} characters.")


def validate_api_key(key: str) -> None:
    """DRF validator of an API key field: its characters (the field's ``max_length`` bounds
    it; an empty key, meaning none, is left to the field)."""
    if key:
        try:
            _check_api_key_characters(key)
        except HeaderError as exc:
            raise serializers.ValidationError(str(exc), code="invalid") from None


class HeadersField(serializers.DictField):
    """``{name: value}`` of HTTP headers to send; refused (400, naming the header) unless every
    name and value can be sent as it is."""

    default_error_messages = {"max_headers": f"At most {MAX_HEADERS} headers."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "child", serializers.CharField(allow_blank=True, max_length=MAX_VALUE_LENGTH)
        )
        kwargs.setdefault(
            "help_text",
            f"{{name: value}}, at most {MAX_HEADERS}: names are RFC 9110 tokens, values visible "
            "ASCII.",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict[str, str]:
        if isinstance(data, dict) and len(data) > MAX_HEADERS:
            self.fail("max_headers")
        value = super().to_internal_value(data)
        try:
            check_headers(value)
        except HeaderError as exc:
            if exc.name is not None:
                raise serializers.ValidationError({exc.name: [str(exc)]}, code="invalid") from None
            raise serializers.ValidationError(str(exc), code="invalid") from None
        return value


class HeadersFieldExtension(OpenApiSerializerFieldExtension):
    """drf-spectacular: a headers field documents how many headers and what values it takes."""

    target_class = "agentdeck.core.httpheaders.HeadersField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {
            **schema,
            "maxProperties": MAX_HEADERS,
            "additionalProperties": {
                "type": "string",
                "maxLength": MAX_VALUE_LENGTH,
                "pattern": "^[\\x20-\\x7e\\t]*$",
            },
        }
