"""Request body parsers: DRF's, with JSON decoded by :func:`agentdeck.core.jsoninput.loads` so
hostile JSON (too deep, NUL, lone surrogates, non-finite numbers) is a 400 ``parse_error``
before any view or serializer sees it."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from agentdeck.core import jsoninput


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        raw = stream.read() if stream is not None else b""
        try:
            return jsoninput.loads(raw)
        except jsoninput.JSONInputError as exc:
            raise ParseError(f"JSON parse error: {exc}") from None
