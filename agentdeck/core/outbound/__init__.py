"""Outbound HTTP for agent tools, guarded against server-side request forgery (SSRF).

The built-in ``http_request`` tool, user-defined ``http`` tools and MCP server URLs make requests
to URLs that users and models choose; this package is the one way they go out, so none can reach
the server's own network (loopback, private ranges, the cloud metadata service). The policy is
``policy``, the check at every connection ``transport``, the request with redirects and size cap
``client``; docs/outbound.md is the full policy. Callers import from this package.
"""

from __future__ import annotations

from agentdeck.core.outbound.client import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_TIMEOUT,
    OutboundResponse,
    fetch,
    fetch_sync,
)
from agentdeck.core.outbound.policy import OutboundError, OutboundRefused, validate_address
from agentdeck.core.outbound.transport import check_url, guarded_async_client

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_TIMEOUT",
    "OutboundError",
    "OutboundRefused",
    "OutboundResponse",
    "check_url",
    "fetch",
    "fetch_sync",
    "guarded_async_client",
    "validate_address",
]
