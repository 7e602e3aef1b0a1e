"""Origin checking for WebSockets (cross-site WebSocket hijacking protection).

A browser always sends ``Origin``; it must be one of ``WS_ALLOWED_ORIGINS`` (by default the
ALLOWED_HOSTS, plus the Next.js front end's host when it differs from the API's). A request
without ``Origin`` does not come from a browser page, so no victim's ambient credentials ride
on it (and the token is required anyway): programs and servers may connect without one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import ParseResult

from channels.security.websocket import OriginValidator
from django.conf import settings


class BrowserOriginValidator(OriginValidator):  # type: ignore[misc]  # channels is untyped
    """Reads ``WS_ALLOWED_ORIGINS`` at each handshake rather than once at start-up."""

    def __init__(self, application: Any) -> None:
        self.application = application

    @property
    def allowed_origins(self) -> list[str]:
        origins: list[str] = settings.WS_ALLOWED_ORIGINS
        return origins

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        if parsed_origin is None:
            return True
        return bool(self.validate_origin(parsed_origin))


def origin_validator(application: Any) -> BrowserOriginValidator:
    return BrowserOriginValidator(application)
