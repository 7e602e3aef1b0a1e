"""HTTP/1.1 requests daphne refuses before the application sees them, answered as problem+json
within configured limits.

daphne parses HTTP with Twisted's ``HTTPChannel``, which answers what it will not take itself:

- a request line or header line longer than 16 KiB (``LineReceiver.MAX_LENGTH``): it closes
  the connection with no response at all (a long ``Authorization`` header, a long URL);
- headers over 16 KiB in all or more than 500 of them, and any request line, header, length or
  chunked body it cannot parse: a bare ``HTTP/1.1 400 Bad Request`` with no body;
- a ``multipart/form-data`` POST it cannot parse (no boundary): Twisted parses form bodies into
  ``request.args``, which daphne never reads, and answers that same bare 400 when it fails;
- a client silent mid-request for the idle timeout (a body shorter than its Content-Length):
  it closes the connection with no response;

and daphne's own refusals (a path or query string that is not ASCII, a header with bytes RFC
9110 forbids) are small HTML pages.

:func:`install` makes daphne's HTTP factory build :class:`ProblemHTTPChannel` connections (and
patches daphne's ``WebRequest.basic_error``), which answer

- 414 ``uri_too_long`` when the request target is longer than ``HTTP_MAX_URL_BYTES``;
- 431 ``request_header_fields_too_large`` when the header section is longer than
  ``HTTP_MAX_HEADER_BYTES`` or has more than ``HTTP_MAX_HEADERS`` lines;
- 408 ``request_timeout`` when a request is still incomplete after ``HTTP_IDLE_TIMEOUT_SECONDS``
  without a byte;
- 400 ``bad_request`` for the rest, and pass form bodies to the application unparsed (Django
  and DRF parse them, and their errors are problem+json already).

Each refusal is written with ``Connection: close``; the connection then reads and discards what
the client is still sending for up to ``LINGER_SECONDS`` after half-closing its side, because
closing a socket with unread data makes the kernel answer with a reset, which can destroy the
response before the client reads it (the "lingering close" of Apache and nginx).

This leans on ``HTTPChannel``'s single-underscore state (``_receivedHeaderSize``,
``_handlingRequest``, ``_transferDecoder``), stable across Twisted releases for years;
tests/core/test_daphne_http.py runs a real daphne process, so a change there fails loudly.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from django.conf import settings

from agentdeck.core.errors import PROBLEM_CONTENT_TYPE, STATUS_CODES, problem

if TYPE_CHECKING:
    from twisted.python.failure import Failure

logger = logging.getLogger(__name__)

# How long a refused connection keeps reading (and dropping) what its client still sends.
LINGER_SECONDS = 2.0
# A request line is its target plus the method, two spaces and the version.
REQUEST_LINE_OVERHEAD = 64
_installed = False


def _problem_body(status: int, code: str, detail: str, **extra: Any) -> bytes:
    body = problem(status=status, code=code, detail=detail, extra=extra or None)
    return json.dumps(body, separators=(",", ":")).encode()


def problem_bytes(status: int, code: str, detail: str, **extra: Any) -> bytes:
    """A complete HTTP/1.1 response carrying a problem, closing the connection."""
    body = _problem_body(status, code, detail, **extra)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def channel_class() -> type[Any]:
    """Defined on first use: Twisted is only imported under daphne."""
    from twisted.internet.protocol import connectionDone
    from twisted.web import http

    class ProblemHTTPChannel(http.HTTPChannel):
        max_url_bytes = 16384
        max_header_bytes = 16384
        max_headers = 100
        idle_timeout: float | None = 60.0

        _refused = False
        _linger_call = None
        _header_bytes = 0
        _header_lines = 0

        def connectionMade(self) -> None:
            # Twisted annotates timeOut as int seconds; it takes a float as well (callLater).
            self.timeOut = self.idle_timeout  # type: ignore[assignment]
            # Twisted's own limits sit beyond ours, so ours answer first.
            self.MAX_LENGTH = max(self.max_url_bytes + REQUEST_LINE_OVERHEAD, self.max_header_bytes)
            self.totalHeadersSize = self.MAX_LENGTH + self.max_header_bytes
            self.maxHeaders = self.max_headers + 1
            super().connectionMade()

        # --- limits ------------------------------------------------------------------------

        def lineReceived(self, line: bytes) -> None:
            if self._refused:
                return
            if self._receivedHeaderSize == 0 and line:  # the request line
                self._header_bytes = self._header_lines = 0
                parts = line.split(b" ")
                if len(parts) == 3 and len(parts[1]) > self.max_url_bytes:
                    self.refuse_uri_too_long()
                    return
            elif line:
                self._header_bytes += len(line) + 2
                self._header_lines += 1
                if (
                    self._header_bytes > self.max_header_bytes
                    or self._header_lines > self.max_headers
                ):
                    self.refuse_headers_too_large()
                    return
            super().lineReceived(line)

        def lineLengthExceeded(self, line: bytes) -> None:
            # LineReceiver found no line end within MAX_LENGTH: over one limit or the other.
            if self._receivedHeaderSize == 0:
                self.refuse_uri_too_long()
            else:
                self.refuse_headers_too_large()

        def allContentReceived(self) -> None:
            # daphne hands the body to the application as bytes; Twisted's parse of form bodies
            # into request.args is never read, and its failure is a bare 400.
            self.requests[-1]._parsePOSTFormSubmission = False
            super().allContentReceived()

        def timeoutConnection(self) -> None:
            started = self._receivedHeaderSize or self._transferDecoder is not None
            if not self._handlingRequest and (started or self._buffer):
                self.refuse(
                    408,
                    "request_timeout",
                    f"The request was still incomplete after {self.idle_timeout:g} s of silence.",
                )
                return
            super().timeoutConnection()

        def _respondToBadRequestAndDisconnect(self) -> None:
            self.refuse(400, "bad_request", "The request is not well-formed HTTP/1.1.")

        def refuse_uri_too_long(self) -> None:
            self.refuse(
                414,
                "uri_too_long",
                f"The request target is longer than {self.max_url_bytes} bytes.",
                max_bytes=self.max_url_bytes,
            )

        def refuse_headers_too_large(self) -> None:
            self.refuse(
                431,
                "request_header_fields_too_large",
                f"The header fields are over {self.max_header_bytes} bytes or "
                f"{self.max_headers} lines.",
                max_bytes=self.max_header_bytes,
                max_headers=self.max_headers,
            )

        # --- answering and closing ---------------------------------------------------------

        def refuse(self, status: int, code: str, detail: str, **extra: Any) -> None:
            if self._refused:
                return
            self._refused = True
            self.clearLineBuffer()  # nothing more of what has arrived is parsed
            self.dataReceived = self._discard  # type: ignore[method-assign]  # nor what arrives later
            self.setTimeout(None)
            # Any: mypy reads a zope Interface's methods as taking no self.
            transport: Any = self.transport
            transport.write(problem_bytes(status, code, detail, **extra))
            half_close = getattr(transport, "loseWriteConnection", None)
            if half_close is None:
                transport.loseConnection()
            else:
                half_close()
                self._linger_call = self.callLater(LINGER_SECONDS, self._abort)

        def _discard(self, data: bytes) -> None:
            pass

        def _abort(self) -> None:
            self._linger_call = None
            transport: Any = self.transport
            transport.abortConnection()

        def connectionLost(self, reason: Failure = connectionDone) -> None:
            if self._linger_call is not None and self._linger_call.active():
                self._linger_call.cancel()
            super().connectionLost(reason)

    return ProblemHTTPChannel


def basic_error(request: Any, status: int, status_text: bytes, body: str) -> None:
    """daphne's ``WebRequest.basic_error`` (its own 400s, 500s and 503s), as problem+json."""
    content = _problem_body(status, STATUS_CODES.get(status, "error"), str(body))
    request.handle_reply(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"Content-Type", PROBLEM_CONTENT_TYPE.encode()),
                (b"Content-Length", str(len(content)).encode()),
            ],
        }
    )
    request.handle_reply({"type": "http.response.body", "body": content})


def install() -> None:
    """Make daphne's HTTP factory build :class:`ProblemHTTPChannel` connections, limits from
    settings. A no-op outside daphne (and when called again)."""
    global _installed
    if _installed:
        return
    try:
        from daphne import http_protocol
        from twisted.web.http import _GenericHTTPChannelProtocol
    except ImportError:  # not running under daphne
        return
    channel = channel_class()
    channel.max_url_bytes = settings.HTTP_MAX_URL_BYTES
    channel.max_header_bytes = settings.HTTP_MAX_HEADER_BYTES
    channel.max_headers = settings.HTTP_MAX_HEADERS
    channel.idle_timeout = settings.HTTP_IDLE_TIMEOUT_SECONDS or None

    def build_channel(factory: Any) -> Any:
        # As twisted.web.http._genericHTTPChannelProtocolFactory, with our channel.
        return _GenericHTTPChannelProtocol(channel())

    http_protocol.HTTPFactory.protocol = build_channel
    http_protocol.WebRequest.basic_error = basic_error
    _installed = True
