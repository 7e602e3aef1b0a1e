"""The guarded connection: an httpx transport whose network backend resolves each host once,
checks every address against the policy, and dials the checked IP, so a DNS answer that changes
between check and connect (rebinding) cannot reach a private address; ``check_url`` applies the
same checks when a URL is saved. docs/outbound.md says why the check sits at the socket rather
than in the URL."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from functools import cache
from typing import Any

import httpcore
import httpx

from agentdeck.core.outbound.policy import (
    BLOCKED_NAMES,
    BLOCKED_SUFFIXES,
    Allowlist,
    IPAddress,
    OutboundError,
    OutboundRefused,
    check_address,
    check_target,
    current_allowlist,
    normalise_host,
    parse_ip_literal,
    url_host,
)


def _addresses(infos: list[tuple[Any, ...]]) -> list[IPAddress]:
    seen: dict[IPAddress, None] = {}
    for info in infos:
        seen[ipaddress.ip_address(info[4][0])] = None
    return list(seen)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """All addresses ``host`` resolves to (the event loop's resolver, in its thread pool)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return _addresses(infos)


def _resolve_sync(host: str, port: int) -> list[IPAddress]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return _addresses(infos)


async def _checked_addresses(
    host: str, port: int, allowlist: Allowlist, timeout: float | None
) -> list[str]:
    """Resolve ``host`` once and return the addresses to connect to, all of them validated."""
    name = normalise_host(host)
    exempt = allowlist.allows_name(name)
    if not exempt and (name in BLOCKED_NAMES or name.endswith(BLOCKED_SUFFIXES)):
        raise OutboundRefused(f"refused: {name} is a local or cloud-metadata host name")
    literal = parse_ip_literal(name)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = await asyncio.wait_for(_resolve(host, port), timeout)
        except TimeoutError as e:
            raise OutboundError(f"DNS lookup of {name} timed out") from e
        except (OSError, UnicodeError, ValueError) as e:
            raise OutboundError(f"could not resolve host {name}") from e
        if not addresses:
            raise OutboundError(f"could not resolve host {name}")
    if not exempt:
        for address in addresses:
            check_address(address, allowlist, name)
    # An IPv4-mapped address is dialled as the IPv4 address it is (what an IPv6 socket would
    # reach anyway), so the connection does not depend on the host's dual-stack settings.
    return [
        str(a.ipv4_mapped if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped else a)
        for a in addresses
    ]


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and validates in ``connect_tcp`` and connects to the validated IP string."""

    def __init__(self, allowlist: Allowlist) -> None:
        self._allowlist = allowlist
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _checked_addresses(host, port, self._allowlist, timeout)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused("refused: Unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


_HTTPCORE_TO_HTTPX: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's exceptions as the httpx ones a client's caller expects."""
    try:
        yield
    except tuple(core for core, _ in _HTTPCORE_TO_HTTPX) as e:
        mapped = next(ours for core, ours in _HTTPCORE_TO_HTTPX if isinstance(e, core))
        raise mapped(str(e) or type(e).__name__) from e


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        if hasattr(self._stream, "aclose"):
            await self._stream.aclose()


@cache
def _ssl_context() -> Any:
    return httpx.create_ssl_context()


class GuardedTransport(httpx.AsyncBaseTransport):
    """httpx's default transport, minus proxies, with :class:`_GuardedBackend` underneath."""

    def __init__(self, allowlist: Allowlist) -> None:
        self._allowlist = allowlist
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(),
            network_backend=_GuardedBackend(allowlist),
            http1=True,
            http2=False,
            retries=0,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        check_target(request.url, self._allowlist)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def guarded_async_client(**kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose every connection (redirects included, if enabled) goes
    through the address checks; ``OUTBOUND_HTTP_ALLOWLIST`` is read now. Refusals raise
    :class:`OutboundRefused`, other failures httpx's own exceptions. No size cap or deadline:
    that is :func:`fetch`'s job. ``kwargs`` go to the client (``transport``, ``mounts`` and
    ``trust_env`` are fixed)."""
    for fixed in ("transport", "mounts", "trust_env", "proxy"):
        if fixed in kwargs:
            raise TypeError(f"guarded_async_client() does not accept {fixed}=")
    kwargs.setdefault("follow_redirects", False)
    return httpx.AsyncClient(
        transport=GuardedTransport(current_allowlist()), trust_env=False, **kwargs
    )


def check_url(url: str, *, resolve: bool = True) -> None:
    """Raise :class:`OutboundRefused` unless ``url`` may be fetched: for validating an MCP
    server URL or an http tool's URL when it is saved. With ``resolve`` (the default) the host
    is looked up (blocking) and every address checked; a name that does not resolve is refused.
    Passing says nothing about later: :func:`fetch` checks again when it connects, so a name
    that changes its answer (DNS rebinding) is caught there."""
    allowlist = current_allowlist()
    target = check_target(url, allowlist)
    host = url_host(target)
    if not resolve or allowlist.allows_name(host) or parse_ip_literal(host) is not None:
        return
    try:
        addresses = _resolve_sync(host, target.port or 80)
    except (OSError, UnicodeError, ValueError) as e:
        raise OutboundRefused(
            f"refused: the host {host} could not be resolved; use a public host name"
        ) from e
    if not addresses:
        raise OutboundRefused(f"refused: the host {host} could not be resolved")
    for address in addresses:
        check_address(address, allowlist, host)
