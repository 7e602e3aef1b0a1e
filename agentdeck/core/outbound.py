"""Outbound HTTP for agent tools, guarded against server-side request forgery (SSRF).

The built-in ``http_request`` tool, user-defined ``http`` tools and MCP server URLs make requests
to URLs that users and models choose. Without a guard such a request can reach the server's own
network: ``http://127.0.0.1:5432``, the cloud metadata service at ``169.254.169.254`` (which
hands out credentials), an admin panel on ``10.0.0.5``. This module is the one way those tools go
out.

What is refused (:class:`OutboundRefused`, whose text is the tool error the model sees):

* schemes other than ``http`` and ``https`` (``file:``, ``ftp:``, ``gopher:``, ``data:``, ...),
  URLs without a host and ports outside 1-65535;
* host names that are local by definition (``localhost``, ``*.localhost``) or name a cloud
  metadata service (``metadata.google.internal``, ``metadata.goog``, ``instance-data``, ...);
* every address that is not globally reachable: loopback, private (RFC 1918, IPv6 unique local),
  link-local, multicast, reserved, unspecified, "this network" (``0.0.0.0/8``), shared address
  space (``100.64.0.0/10``), IETF protocol assignments (``192.0.0.0/24``), documentation and
  benchmarking ranges, IPv6 site-local, Teredo, local-use NAT64 and the deprecated
  IPv4-compatible ``::a.b.c.d`` form; IPv6 forms that embed an IPv4 address (IPv4-mapped
  ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged by that IPv4
  address, so ``[::ffff:127.0.0.1]`` is loopback while a DNS64-synthesised address of a public
  host is fine;
* the cloud metadata addresses by name in the message (AWS ``169.254.169.254``,
  ``169.254.170.2`` and ``fd00:ec2::254``, Alibaba ``100.100.100.200``, Oracle ``192.0.0.192``);
* oddly encoded hosts: ``http://2130706433/``, ``http://0x7f.0.0.1/``, ``http://127.1/`` (the
  numeric forms ``inet_aton`` accepts) are parsed as the IPv4 address they mean; forms httpx's URL
  parser rejects (``http://0177.0.0.1/``) are refused as invalid URLs; trailing dots, upper case,
  userinfo (``http://evil@127.0.0.1/``) and fragments (``http://127.0.0.1#@example.com/``) are
  handled by parsing the URL exactly once, with the same parser that makes the request;
* redirects are followed here, not by httpx (at most ``max_redirects``), and every hop goes
  through the same checks; a cross-origin hop drops the caller's headers except a few harmless
  ones (``Accept``, ``Accept-Language``, ``User-Agent``), so tool secrets in headers are sent
  only to the host they were configured for.

How the check is tied to the connection (DNS rebinding). Validating a URL and then handing it to
an HTTP client is not enough: the client resolves the name again, and a hostile DNS server can
answer with a public address the first time and ``127.0.0.1`` the second. Here the check sits
*in the connection itself*: the requests go through an httpx transport built on httpcore's public
network-backend interface (``httpcore.AsyncConnectionPool(network_backend=...)``). Its
``connect_tcp(host, port)`` resolves the host once (``loop.getaddrinfo``), validates *every*
address the name resolves to (one bad answer refuses the whole name, so a round-robin mix of
public and private addresses cannot win a race), and opens the socket to a validated IP string,
so no second lookup happens anywhere. TLS is unaffected: httpcore starts TLS on that socket with
the URL's host name as SNI and certificate-verification name. Because the check is at the socket,
it covers every connection the client makes, whatever httpx's URL parser decided the host is, and
whatever numeric form ``getaddrinfo`` accepts (the address that comes back is what gets checked).
Rewriting the URL to the IP plus a ``Host`` header and the ``sni_hostname`` extension would also
work, but it has to be repeated correctly at every call site (and every redirect), while the
backend cannot be bypassed by a request that forgets it. Environment proxies are ignored
(``trust_env=False``): a proxy would do its own DNS and make the address check meaningless.
Unix sockets are refused.

The operator allowlist, ``OUTBOUND_HTTP_ALLOWLIST`` (a list of host names, IP addresses or CIDR
networks), exempts matches from the address checks, for internal services an operator means to
expose and for tests that talk to local servers. A host-name entry exempts that exact name
(``.example.com`` also exempts its subdomains), whatever it resolves to; an address or network
entry exempts resolved addresses inside it. Cloud metadata addresses are exempted only by an
entry naming that exact address, never by a wider network such as ``169.254.0.0/16``. The scheme
check always applies. Any port is allowed.

Limits: ``timeout`` bounds each connect, read and write and, as a deadline, the whole call
including DNS and redirects (so a server dripping a byte a second cannot hold a tool forever);
the body is streamed and cut at ``max_bytes`` (``truncated`` says so; ``total_bytes`` is the full
size when known). ``gzip``/``deflate`` bodies are inflated here with a bounded output size, so a
small compressed "bomb" cannot expand past the cap in memory.

Errors: :class:`OutboundRefused` for policy refusals (scheme, address, host name, too many
redirects, unresolvable name at save time) and :class:`OutboundError`, a *subclass* of it, for
requests that were allowed but failed (DNS failure at request time, connection refused, TLS
error, timeout, protocol error). Tools catch ``OutboundRefused`` and so turn both into an error
the model sees instead of a crashed run; tests and logs can tell them apart. Messages name the
host but never the full URL, whose query string may carry a tool's secret.

API: :func:`fetch` (async), :func:`fetch_sync`, :func:`check_url` (save-time validation of an
MCP server URL or an http tool's URL template), :func:`validate_address` and
:func:`guarded_async_client` (an ``httpx.AsyncClient`` whose every connection is checked, for
code that needs an httpx client of its own).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ipaddress
import re
import socket
import time
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import httpcore
import httpx
from django.conf import settings

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

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_MAX_REDIRECTS = 5
ALLOWED_SCHEMES = frozenset({"http", "https"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Request headers kept when a redirect leaves the origin; everything else the caller set (API
# keys, Authorization, cookies, custom secret headers) stays with the original host.
CROSS_ORIGIN_SAFE_HEADERS = frozenset({"accept", "accept-language", "user-agent"})
_BODY_HEADERS = ("content-type", "content-length", "content-encoding", "transfer-encoding")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutboundRefused(Exception):
    """The request was refused by the SSRF policy; ``str(e)`` is the reason, fit for the model."""


class OutboundError(OutboundRefused):
    """The request was allowed but failed (DNS, connect, TLS, timeout, protocol). A subclass of
    :class:`OutboundRefused` so that tools catching that one exception handle every failure."""


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes  # decoded (gzip/deflate inflated), at most max_bytes
    truncated: bool
    total_bytes: int | None  # the full body size when known (read it all, or Content-Length)
    final_url: str  # after redirects, without userinfo
    elapsed_ms: int

    @property
    def text(self) -> str:
        """The body as text: the Content-Type charset when there is a known one, else UTF-8;
        undecodable bytes (including a character cut by truncation) become U+FFFD."""
        match = re.search(r"charset=[\"']?([\w.:-]+)", self.headers.get("content-type", ""), re.I)
        encoding = "utf-8"
        if match:
            with contextlib.suppress(LookupError):
                encoding = codecs.lookup(match.group(1)).name
        return self.body.decode(encoding, errors="replace")


# --- address policy ----------------------------------------------------------------------------

_METADATA_ADDRESSES: dict[IPAddress, str] = {
    ipaddress.ip_address("169.254.169.254"): "the cloud instance-metadata service",
    ipaddress.ip_address("169.254.170.2"): "the AWS ECS task-metadata service",
    ipaddress.ip_address("169.254.169.253"): "the AWS VPC DNS resolver",
    ipaddress.ip_address("fd00:ec2::254"): "the AWS instance-metadata service (IPv6)",
    ipaddress.ip_address("fd00:ec2::253"): "the AWS VPC DNS resolver (IPv6)",
    ipaddress.ip_address("100.100.100.200"): "the Alibaba Cloud metadata service",
    ipaddress.ip_address("192.0.0.192"): "the Oracle Cloud metadata service",
}
_BLOCKED_NAMES = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "ip6-localhost",
        "ip6-loopback",
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
_BLOCKED_SUFFIXES = (".localhost",)

_PRIVATE = "a private network address"
_SPECIAL_NETWORKS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), reason)
    for net, reason in (
        ("0.0.0.0/8", "a 'this network' address"),
        ("10.0.0.0/8", _PRIVATE),
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", _PRIVATE),
        ("192.0.0.0/24", "an IETF protocol-assignment address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a reserved (former 6to4 relay) address"),
        ("192.168.0.0/16", _PRIVATE),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("::/128", "the unspecified address"),
        ("::1/128", "a loopback address"),
        ("::/96", "a deprecated IPv4-compatible IPv6 address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("2001::/32", "a Teredo tunnel address"),
        ("2001:db8::/32", "a documentation address"),
        ("2001::/23", "an IETF protocol-assignment address"),
        ("3fff::/20", "a documentation address"),
        ("5f00::/16", "a segment-routing address"),
        ("fc00::/7", "a private (unique local) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIXTOFOUR = ipaddress.IPv6Network("2002::/16")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


def _unscoped(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return ipaddress.IPv6Address(int(ip))
    return ip


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address stands for, when it is one of the forms that reach it."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    if ip in _SIXTOFOUR:
        return ip.sixtofour, "6to4"  # type: ignore[return-value]  # not None inside 2002::/16
    return None


def _address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be reached (a phrase such as "a loopback address"), or None."""
    ip = _unscoped(ip)
    if ip in _METADATA_ADDRESSES:
        return f"a cloud metadata endpoint ({_METADATA_ADDRESSES[ip]})"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            v4, form = embedded
            problem = _address_problem(v4)
            return f"the {form} form of {v4}, {problem}" if problem else None
    for network, reason in _SPECIAL_NETWORKS:
        if ip.version == network.version and ip in network:
            return reason
    # Anything the tables above missed but Python's registry knows about.
    checks = (
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "a site-local address"),
        (ip.is_private, "a private or special-purpose address"),
        (ip.is_reserved, "a reserved address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED, "a shared address"),
        (not ip.is_global, "not a globally reachable address"),
    )
    return next((reason for failed, reason in checks if failed), None)


@dataclass(frozen=True)
class _Allowlist:
    names: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[IPNetwork, ...]

    def allows_name(self, host: str) -> bool:
        return host in self.names or any(host.endswith(s) for s in self.suffixes)

    def allows_address(self, ip: IPAddress) -> bool:
        ip = _unscoped(ip)
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        for candidate in candidates:
            for network in self.networks:
                if candidate.version != network.version or candidate not in network:
                    continue
                # Metadata endpoints need an entry naming them, not just a covering network.
                if candidate in _METADATA_ADDRESSES and network.num_addresses > 1:
                    continue
                return True
        return False


@lru_cache(maxsize=8)
def _parse_allowlist(entries: tuple[str, ...]) -> _Allowlist:
    names: set[str] = set()
    suffixes: list[str] = []
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = _normalise_host(str(raw))
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        if entry.startswith("."):
            suffixes.append(entry)
        else:
            names.add(entry)
    return _Allowlist(frozenset(names), tuple(suffixes), tuple(networks))


def _allowlist() -> _Allowlist:
    entries = getattr(settings, "OUTBOUND_HTTP_ALLOWLIST", None) or ()
    if isinstance(entries, str):
        entries = entries.split(",")
    return _parse_allowlist(tuple(str(e) for e in entries))


def _normalise_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".")


def _host(url: httpx.URL) -> str:
    """The host as the connection sees it: ASCII (IDNA-encoded), lower case, no trailing dot."""
    return _normalise_host(url.raw_host.decode("ascii"))


def _parse_inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``inet_aton`` would read ``host`` as (``2130706433``, ``0x7f.1``,
    ``0177.0.0.1``, ``127.1``), or None when it is not such a number."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        if re.fullmatch(r"0[xX][0-9a-fA-F]*", part):
            value = int(part[2:] or "0", 16)
        elif re.fullmatch(r"0[0-7]*", part):
            value = int(part, 8)
        elif re.fullmatch(r"[1-9][0-9]*", part):
            value = int(part)
        else:
            return None
        values.append(value)
    *head, last = values
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = last
    for index, value in enumerate(head):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _parse_ip_literal(host: str) -> IPAddress | None:
    host = _normalise_host(host)
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if "%" in host:  # httpx keeps an IPv6 zone percent-encoded: fe80::1%25eth0
        with contextlib.suppress(ValueError):
            return ipaddress.ip_address(host.replace("%25", "%", 1))
    return _parse_inet_aton(host)


def _refuse_address(ip: IPAddress, host: str | None, problem: str) -> OutboundRefused:
    subject = f"{ip} is" if host in (None, str(ip)) else f"{host} resolves to {ip}, which is"
    return OutboundRefused(
        f"refused: {subject} {problem}; only public internet addresses can be reached "
        "(operators can allow internal hosts with OUTBOUND_HTTP_ALLOWLIST)"
    )


def _check_address(ip: IPAddress, allowlist: _Allowlist, host: str | None = None) -> None:
    if allowlist.allows_address(ip):
        return
    problem = _address_problem(ip)
    if problem:
        raise _refuse_address(ip, host, problem)


def validate_address(ip: str | IPAddress) -> None:
    """Raise :class:`OutboundRefused` unless a connection to ``ip`` is allowed: it is globally
    reachable, or ``OUTBOUND_HTTP_ALLOWLIST`` covers it."""
    if isinstance(ip, str):
        parsed = _parse_ip_literal(ip)
        if parsed is None:
            raise OutboundRefused(f"refused: {ip!r} is not an IP address")
        ip = parsed
    _check_address(ip, _allowlist())


def _check_target(url: httpx.URL | str, allowlist: _Allowlist) -> httpx.URL:
    """Everything that can be judged without DNS: the scheme, the port, local and metadata host
    names, and hosts that are IP addresses in any notation."""
    if not isinstance(url, httpx.URL):
        try:
            url = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as e:
            raise OutboundRefused(f"refused: invalid URL ({e})") from e
    if not url.scheme:
        raise OutboundRefused("refused: the URL has no scheme; use http:// or https://")
    if url.scheme not in ALLOWED_SCHEMES:
        raise OutboundRefused(
            f"refused: the {url.scheme}: scheme is not allowed; only http and https URLs can be "
            "fetched"
        )
    if not url.host:
        raise OutboundRefused("refused: the URL has no host")
    if url.port is not None and not 1 <= url.port <= 65535:
        raise OutboundRefused(f"refused: invalid port {url.port}")
    host = _host(url)
    if allowlist.allows_name(host):
        return url
    if host in _BLOCKED_NAMES or host.endswith(_BLOCKED_SUFFIXES):
        raise OutboundRefused(
            f"refused: {host} is a local or cloud-metadata host name; only public internet "
            "addresses can be reached"
        )
    literal = _parse_ip_literal(host)
    if literal is not None:
        _check_address(literal, allowlist, host)
    return url


# --- resolution and the guarded connection ---------------------------------------------------


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
    host: str, port: int, allowlist: _Allowlist, timeout: float | None
) -> list[str]:
    """Resolve ``host`` once and return the addresses to connect to, all of them validated."""
    name = _normalise_host(host)
    exempt = allowlist.allows_name(name)
    if not exempt and (name in _BLOCKED_NAMES or name.endswith(_BLOCKED_SUFFIXES)):
        raise OutboundRefused(f"refused: {name} is a local or cloud-metadata host name")
    literal = _parse_ip_literal(name)
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
            _check_address(address, allowlist, name)
    # An IPv4-mapped address is dialled as the IPv4 address it is (what an IPv6 socket would
    # reach anyway), so the connection does not depend on the host's dual-stack settings.
    return [
        str(a.ipv4_mapped if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped else a)
        for a in addresses
    ]


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and validates in ``connect_tcp`` and connects to the validated IP string."""

    def __init__(self, allowlist: _Allowlist) -> None:
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


class _GuardedTransport(httpx.AsyncBaseTransport):
    """httpx's default transport, minus proxies, with :class:`_GuardedBackend` underneath."""

    def __init__(self, allowlist: _Allowlist) -> None:
        self._allowlist = allowlist
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(),
            network_backend=_GuardedBackend(allowlist),
            http1=True,
            http2=False,
            retries=0,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _check_target(request.url, self._allowlist)
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
    return httpx.AsyncClient(transport=_GuardedTransport(_allowlist()), trust_env=False, **kwargs)


# --- fetch -------------------------------------------------------------------------------------


class _Inflater:
    """gzip/deflate with bounded output: ``feed(data, limit)`` never returns more than
    ``limit`` bytes however well the input compresses."""

    def __init__(self, encoding: str) -> None:
        self._deflate = encoding == "deflate"
        self._first = True
        # MAX_WBITS | 32 reads a zlib or gzip header; "deflate" may also be raw (headerless).
        self._decompressor = zlib.decompressobj(zlib.MAX_WBITS | 32)

    def feed(self, data: bytes, limit: int) -> bytes:
        first, self._first = self._first, False
        try:
            return self._decompressor.decompress(data, limit)
        except zlib.error:
            if not (self._deflate and first):
                raise
            self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._decompressor.decompress(data, limit)


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    encodings = [
        e.strip()
        for e in response.headers.get("content-encoding", "").lower().split(",")
        if e.strip() and e.strip() != "identity"
    ]
    inflater = None
    if len(encodings) == 1 and encodings[0] in {"gzip", "x-gzip", "deflate"}:
        inflater = _Inflater(encodings[0])
    parts: list[bytes] = []
    size = 0

    async def chunks() -> AsyncIterator[bytes]:
        if inflater is None:  # identity, or an encoding httpx decodes itself
            async for chunk in response.aiter_bytes():
                yield chunk
            return
        async for raw in response.aiter_raw():
            try:
                # One byte more than fits tells a cut body from one that ends exactly at the cap.
                yield inflater.feed(raw, max_bytes - size + 1)
            except zlib.error as e:
                raise OutboundError(f"could not decode the {encodings[0]} response body") from e

    async with contextlib.aclosing(chunks()) as stream:
        async for chunk in stream:
            room = max_bytes - size
            if len(chunk) > room:
                parts.append(chunk[:room])
                return b"".join(parts), True
            parts.append(chunk)
            size += len(chunk)
    return b"".join(parts), False


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


def _same_origin(old: httpx.URL, new: httpx.URL) -> bool:
    if _origin(old) == _origin(new):
        return True
    # http -> https on the default ports of the same host, as httpx itself treats it.
    return (
        old.host == new.host
        and (old.scheme, new.scheme) == ("http", "https")
        and old.port in (None, 80)
        and new.port in (None, 443)
    )


def _without_userinfo(url: httpx.URL) -> str:
    return str(url.copy_with(userinfo=b"")) if url.userinfo else str(url)


def _redirect_method(status: int, method: str) -> str:
    """302/303 become GET (HEAD stays), 301 turns POST into GET, 307/308 keep the method."""
    if (status in (302, 303) and method != "HEAD") or (status == 301 and method == "POST"):
        return "GET"
    return method


def _redirect_headers(
    headers: httpx.Headers, old: httpx.URL, new: httpx.URL, *, keep_body: bool
) -> httpx.Headers:
    headers = httpx.Headers(headers)
    for name in list(headers.keys()):
        if (not _same_origin(old, new) and name not in CROSS_ORIGIN_SAFE_HEADERS) or (
            not keep_body and name in _BODY_HEADERS
        ):
            del headers[name]
    return headers


async def _fetch(
    method: str,
    url: httpx.URL,
    *,
    headers: Mapping[str, str] | None,
    json: Any,
    content: bytes | str | None,
    params: Any,
    timeout: float,
    max_bytes: int,
    max_redirects: int,
    allowlist: _Allowlist,
    started: float,
) -> OutboundResponse:
    caller_headers = httpx.Headers(headers or {})
    async with httpx.AsyncClient(
        transport=_GuardedTransport(allowlist),
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(timeout),
        # Only the encodings _read_capped inflates with a bound.
        headers={"Accept-Encoding": "gzip, deflate"},
    ) as client:
        try:
            request = client.build_request(
                method, url, params=params, headers=caller_headers, json=json, content=content
            )
        except (TypeError, ValueError, UnicodeError) as e:
            raise OutboundRefused(f"refused: the request cannot be built ({e})") from e
        redirects = 0
        while True:
            host = _host(request.url)
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as e:
                raise _transport_error(e, host, timeout) from e
            try:
                location = response.headers.get("location")
                if response.status_code in REDIRECT_STATUSES and location is not None:
                    if redirects >= max_redirects:
                        raise OutboundRefused(
                            f"refused: too many redirects (more than {max_redirects})"
                        )
                    redirects += 1
                    try:
                        target = _check_target(request.url.join(location), allowlist)
                    except httpx.InvalidURL as e:
                        raise OutboundRefused(
                            f"refused: {host} redirected to an invalid URL ({e})"
                        ) from e
                    next_method = _redirect_method(response.status_code, request.method)
                    keep_body = next_method == request.method
                    if not keep_body:
                        json = content = None  # and not brought back by a later 307
                    caller_headers = _redirect_headers(
                        caller_headers, request.url, target, keep_body=keep_body
                    )
                    request = client.build_request(
                        next_method, target, headers=caller_headers, json=json, content=content
                    )
                    continue
                try:
                    body, truncated = await _read_capped(response, max_bytes)
                except httpx.HTTPError as e:
                    raise _transport_error(e, host, timeout) from e
            finally:
                await response.aclose()
            total: int | None = len(body)
            if truncated:
                length = response.headers.get("content-length", "")
                encoded = response.headers.get("content-encoding", "identity") != "identity"
                total = int(length) if length.isdigit() and not encoded else None
            return OutboundResponse(
                status=response.status_code,
                headers=dict(response.headers.items()),
                body=body,
                truncated=truncated,
                total_bytes=total,
                final_url=_without_userinfo(request.url),
                elapsed_ms=int((time.monotonic() - started) * 1000),
            )


def _transport_error(error: httpx.HTTPError, host: str, timeout: float) -> OutboundError:
    if isinstance(error, httpx.TimeoutException):
        return OutboundError(f"request to {host} timed out (limit {timeout:g}s)")
    if isinstance(error, httpx.ConnectError):
        return OutboundError(f"could not connect to {host}: {error}")
    return OutboundError(f"request to {host} failed: {error}")


async def fetch(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    content: bytes | str | None = None,
    params: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
) -> OutboundResponse:
    """Make one HTTP request under the SSRF policy and return its (possibly truncated) response.

    ``timeout`` (seconds) bounds each connect/read/write and the whole call, redirects and DNS
    included. Redirects (301/302/303/307/308) are followed up to ``max_redirects``, each hop
    checked afresh; 302/303 (and 301 after POST) become GET without the body, as browsers do.
    Any HTTP status is a response, not an error. Raises :class:`OutboundRefused` for a policy
    refusal and :class:`OutboundError` (a subclass) when the request fails.
    """
    if json is not None and content is not None:
        raise ValueError("pass json or content, not both")
    if max_bytes < 0 or max_redirects < 0 or timeout <= 0:
        raise ValueError("max_bytes and max_redirects must be >= 0 and timeout > 0")
    started = time.monotonic()
    allowlist = _allowlist()
    target = _check_target(url, allowlist)
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(
                method.upper(),
                target,
                headers=headers,
                json=json,
                content=content,
                params=params,
                timeout=timeout,
                max_bytes=max_bytes,
                max_redirects=max_redirects,
                allowlist=allowlist,
                started=started,
            )
    except TimeoutError as e:  # the overall deadline
        host = _host(target)
        raise OutboundError(f"request to {host} timed out (limit {timeout:g}s)") from e


def fetch_sync(method: str, url: str, **kwargs: Any) -> OutboundResponse:
    """:func:`fetch` for synchronous code. Inside a running event loop it runs in a worker thread
    (and blocks this one), so async code should await :func:`fetch` instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fetch(method, url, **kwargs))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbound") as pool:
        return pool.submit(asyncio.run, fetch(method, url, **kwargs)).result()


def check_url(url: str, *, resolve: bool = True) -> None:
    """Raise :class:`OutboundRefused` unless ``url`` may be fetched: for validating an MCP
    server URL or an http tool's URL when it is saved. With ``resolve`` (the default) the host
    is looked up (blocking) and every address checked; a name that does not resolve is refused.
    Passing says nothing about later: :func:`fetch` checks again when it connects, so a name
    that changes its answer (DNS rebinding) is caught there."""
    allowlist = _allowlist()
    target = _check_target(url, allowlist)
    host = _host(target)
    if not resolve or allowlist.allows_name(host) or _parse_ip_literal(host) is not None:
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
        _check_address(address, allowlist, host)
