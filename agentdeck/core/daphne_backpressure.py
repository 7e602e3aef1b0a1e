"""Back-pressure for WebSockets under daphne.

ASGI gives an application no way to see that a client has stopped reading: daphne hands every
``websocket.send`` to Twisted, which queues it in memory without limit. One stalled browser tab
following a chatty run would grow the web process's memory for as long as the run lasts.

:func:`install` wraps daphne's ``WebSocketProtocol.serverSend``: when the bytes Twisted still
holds for a connection (after the kernel's socket buffer is full) pass ``WS_MAX_BUFFER_BYTES``,
the connection gets a close frame with code 4429 and nothing more; it is aborted if the client
has not finished reading within ``WS_SLOW_ABORT_SECONDS``. Other connections and the worker are
never slowed: the worker publishes through the channel layer, which does not wait for clients.
The client reconnects with ``after=<last seq>`` and loses nothing.

It reads ``transport.dataBuffer``/``_tempDataLen``, Twisted's long-stable (if underscored) write
buffer of ``FileDescriptor``; on a transport without them the check is skipped.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from agentdeck.core.ws import CLOSE_TOO_SLOW

logger = logging.getLogger(__name__)

_installed = False


def buffered_bytes(transport: Any) -> int:
    data = getattr(transport, "dataBuffer", b"")
    offset = getattr(transport, "offset", 0)
    return max(len(data) - offset, 0) + int(getattr(transport, "_tempDataLen", 0) or 0)


def install() -> None:
    global _installed
    if _installed:
        return
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # not running under daphne
        return
    original = WebSocketProtocol.serverSend

    def server_send(self, content, binary=False):
        if getattr(self, "_agentdeck_too_slow", False):
            return
        limit = settings.WS_MAX_BUFFER_BYTES
        if limit and buffered_bytes(self.transport) > limit:
            self._agentdeck_too_slow = True
            logger.warning(
                "closing slow WebSocket %s: over %d bytes unread", self.client_addr, limit
            )
            self.sendClose(code=CLOSE_TOO_SLOW, reason="too slow: reconnect with after=<last seq>")
            from twisted.internet import reactor

            reactor.callLater(settings.WS_SLOW_ABORT_SECONDS, _abort, self)
            return
        original(self, content, binary)

    WebSocketProtocol.serverSend = server_send
    _installed = True


def _abort(protocol: Any) -> None:
    transport = getattr(protocol, "transport", None)
    if transport is not None and getattr(transport, "connected", False):
        transport.abortConnection()
