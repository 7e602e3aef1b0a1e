"""WebSocket close codes, shared by every consumer (documented in the README)."""

from __future__ import annotations

CLOSE_NORMAL = 1000  # the stream is complete (a run's terminal event was sent)
CLOSE_BAD_REQUEST = 4400  # the URL's parameters are invalid (e.g. after=abc)
CLOSE_UNAUTHENTICATED = 4401  # no credential, a bad one, or it expired mid-stream
CLOSE_NOT_FOUND = 4404  # the resource does not exist or is not yours
CLOSE_TOO_SLOW = 4429  # the client fell behind: its send buffer passed WS_MAX_BUFFER_BYTES
# RFC 6455's "Try Again Later": the channel layer or the database is reconnecting.
CLOSE_TRY_AGAIN = 1013

CLOSE_CODES = {
    CLOSE_NORMAL: "complete",
    CLOSE_BAD_REQUEST: "bad request",
    CLOSE_UNAUTHENTICATED: "unauthenticated",
    CLOSE_NOT_FOUND: "not found",
    CLOSE_TOO_SLOW: "too slow: reconnect with after=<last seq>",
    CLOSE_TRY_AGAIN: "try again later: the server is reconnecting to its database or Redis",
}
