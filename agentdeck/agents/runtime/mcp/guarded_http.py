"""The MCP client's HTTP client, through the outbound SSRF guard (agentdeck.core.outbound):
every connection resolves the host once and dials the checked address, no redirects are followed.
mcp 2.x speaks ``httpx2`` while the guard is an ``httpx`` client, so there a small ``httpx2``
transport forwards each request to the guarded client; mcp 1.x uses the guarded client as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib.metadata import version
from typing import Any

import httpx

from agentdeck.core.outbound import OutboundRefused, guarded_async_client

# mcp 2.x speaks httpx2 (a fork of httpx with its own types); mcp 1.x speaks httpx.
MCP_V2 = int(version("mcp").partition(".")[0]) >= 2


def guarded_client_factory(
    headers: dict[str, str] | None = None, timeout: Any = None, auth: Any = None
) -> Any:
    """The SDK's ``httpx_client_factory``: a client whose every connection goes through the
    outbound SSRF guard, no redirects followed (``httpx2.AsyncClient`` for mcp 2.x, the guarded
    ``httpx.AsyncClient`` itself for mcp 1.x)."""
    kwargs: dict[str, Any] = {"follow_redirects": False}
    if headers is not None:
        kwargs["headers"] = headers
    if timeout is not None:
        kwargs["timeout"] = timeout
    if auth is not None:
        kwargs["auth"] = auth
    if not MCP_V2:
        return guarded_async_client(**kwargs)
    return httpx2.AsyncClient(transport=GuardedHttpx2Transport(), trust_env=False, **kwargs)


if MCP_V2:
    import httpx2

    def _httpx2_error(error: Exception, request: httpx2.Request) -> httpx2.TransportError:
        """The ``httpx2`` exception matching an ``httpx`` one; a refusal by the outbound policy
        is a ``ConnectError`` (the MCP client then reports a connection failure)."""
        if isinstance(error, OutboundRefused):
            return httpx2.ConnectError(str(error), request=request)
        cls = getattr(httpx2, type(error).__name__, None)
        if not (isinstance(cls, type) and issubclass(cls, httpx2.TransportError)):
            cls = httpx2.TransportError
        return cls(str(error) or type(error).__name__, request=request)

    class _ResponseStream(httpx2.AsyncByteStream):
        def __init__(self, response: httpx.Response, request: httpx2.Request) -> None:
            self._response = response
            self._request = request

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self._response.aiter_raw():
                    yield chunk
            except (httpx.HTTPError, OutboundRefused) as e:
                raise _httpx2_error(e, self._request) from e

        async def aclose(self) -> None:
            await self._response.aclose()

    class GuardedHttpx2Transport(httpx2.AsyncBaseTransport):
        """Sends each ``httpx2`` request with the guarded ``httpx`` client and streams the
        response back as it arrives (SSE streams included). Per-request timeouts travel in the
        request's ``timeout`` extension, which both libraries read the same way."""

        def __init__(self) -> None:
            self._client = guarded_async_client(timeout=None)

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            body = await request.aread()  # JSON-RPC messages: small
            extensions = {}
            if "timeout" in request.extensions:
                extensions["timeout"] = request.extensions["timeout"]
            outgoing = httpx.Request(
                request.method,
                str(request.url),
                headers=request.headers.raw,
                content=body,
                extensions=extensions,
            )
            try:
                response = await self._client.send(outgoing, stream=True)
            except (httpx.HTTPError, OutboundRefused) as e:
                raise _httpx2_error(e, request) from e
            return httpx2.Response(
                status_code=response.status_code,
                headers=response.headers.raw,
                stream=_ResponseStream(response, request),
                extensions={
                    k: v
                    for k, v in response.extensions.items()
                    if k in ("http_version", "reason_phrase")
                },
            )

        async def aclose(self) -> None:
            await self._client.aclose()
