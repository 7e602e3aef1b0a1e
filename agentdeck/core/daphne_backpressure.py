"""Back-pressure for WebSockets under daphne.

ASGI gives an application no way to see that a client has stopped reading: daphne hands every
``websocket.send`` to Twisted, which queues it in memory without limit. One stalled browser tab
following a chatty run would grow the web process's memory for as long as the run lasts.

:func:`install` wraps two methods of daphne's ``WebSocketProtocol``:

* ``serverAccept`` caps the socket's kernel send buffer at ``WS_SOCKET_SNDBUF_BYTES`` (Linux
  would otherwise autotune it up to megabytes, hiding a stalled reader for a long time) and
  gives every close the server starts ``WS_SLOW_ABORT_SECONDS`` to complete: a close frame
  queues behind what the client has not read yet (a finished run's replay, a run's last events),
  and autobahn's default (1 s, then abort) would drop that tail and the close code for any
  client more than a second behind;
* ``serverSend`` looks at the bytes Twisted still holds for the connection. Over
  ``WS_MAX_BUFFER_BYTES`` for longer than ``WS_SLOW_GRACE_SECONDS`` (a healthy client drains
  a replay burst within that), or over eight times the limit at any moment, the connection gets
  a close frame with code 4429 and nothing more, and is aborted if the client has not read up
  to it within ``WS_SLOW_ABORT_SECONDS``.

Other connections and the worker are never slowed: the worker publishes through the channel
layer, which never waits for clients. The client reconnects with ``after=<last seq>`` and loses
nothing. The buffer is read from ``transport.dataBuffer``/``offset``/``_tempDataLen``, Twisted's
long-stable (if underscored) write buffer of ``FileDescriptor``; on a transport without them the
check sees 0 and never fires.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

from django.conf import settings

from agentdeck.core.ws import CLOSE_TOO_SLOW

logger = logging.getLogger(__name__)

HARD_LIMIT_FACTOR = 8
_installed = False


def buffered_bytes(transport: Any) -> int:
    data = getattr(transport, "dataBuffer", b"")
    offset = getattr(transport, "offset", 0)
    return max(len(data) - offset, 0) + int(getattr(transport, "_tempDataLen", 0) or 0)


def too_slow(protocol: Any, buffered: int, now: float) -> bool:
    """Decide, at one send, whether the connection has fallen too far behind."""
    limit = settings.WS_MAX_BUFFER_BYTES
    if not limit or buffered <= limit:
        protocol._agentdeck_over_since = None
        return False
    if buffered > limit * HARD_LIMIT_FACTOR:
        return True
    since: float | None = getattr(protocol, "_agentdeck_over_since", None)
    if since is None:
        protocol._agentdeck_over_since = now
        return False
    grace: float = settings.WS_SLOW_GRACE_SECONDS
    return now - since > grace


def install() -> None:
    global _installed
    if _installed:
        return
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # not running under daphne
        return
    original_send = WebSocketProtocol.serverSend
    original_accept = WebSocketProtocol.serverAccept

    def server_accept(self: Any, subprotocol: str | None = None) -> None:
        original_accept(self, subprotocol)
        self.closeHandshakeTimeout = settings.WS_SLOW_ABORT_SECONDS
        size = settings.WS_SOCKET_SNDBUF_BYTES
        handle = getattr(self.transport, "getHandle", lambda: None)()
        if size and handle is not None:
            try:
                handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            except OSError:
                logger.debug("could not cap SO_SNDBUF", exc_info=True)

    def server_send(self: Any, content: str | bytes, binary: bool = False) -> None:
        if getattr(self, "_agentdeck_too_slow", False):
            return
        buffered = buffered_bytes(self.transport)
        if too_slow(self, buffered, time.monotonic()):
            self._agentdeck_too_slow = True
            logger.warning("closing slow WebSocket %s: %d bytes unread", self.client_addr, buffered)
            # The close frame queues behind the backlog; the close-handshake timeout set at
            # accept gives a slow reader the configured grace to reach it, then it is aborted.
            self.sendClose(code=CLOSE_TOO_SLOW, reason="too slow: reconnect with after=<last seq>")
            from twisted.internet import reactor

            reactor.callLater(settings.WS_SLOW_ABORT_SECONDS + 1, _abort, self)
            return
        original_send(self, content, binary)

    WebSocketProtocol.serverAccept = server_accept
    WebSocketProtocol.serverSend = server_send
    _installed = True


def _abort(protocol: Any) -> None:
    transport = getattr(protocol, "transport", None)
    if transport is not None and getattr(transport, "connected", False):
        transport.abortConnection()
