"""The SSRF policy: which schemes, host names and addresses outbound requests may reach, and
the operator allowlist (``OUTBOUND_HTTP_ALLOWLIST``) that exempts some. Everything here is judged
without DNS; ``transport`` applies the address checks to what a name resolves to."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

import httpx
from django.conf import settings

ALLOWED_SCHEMES = frozenset({"http", "https"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutboundRefused(Exception):
    """The request was refused by the SSRF policy; ``str(e)`` is the reason, fit for the model."""


class OutboundError(OutboundRefused):
    """The request was allowed but failed (DNS, connect, TLS, timeout, protocol). A subclass of
    :class:`OutboundRefused` so that tools catching that one exception handle every failure."""


_METADATA_ADDRESSES: dict[IPAddress, str] = {
    ipaddress.ip_address("169.254.169.254"): "the cloud instance-metadata service",
    ipaddress.ip_address("169.254.170.2"): "the AWS ECS task-metadata service",
    ipaddress.ip_address("169.254.169.253"): "the AWS VPC DNS resolver",
    ipaddress.ip_address("fd00:ec2::254"): "the AWS instance-metadata service (IPv6)",
    ipaddress.ip_address("fd00:ec2::253"): "the AWS VPC DNS resolver (IPv6)",
    ipaddress.ip_address("100.100.100.200"): "the Alibaba Cloud metadata service",
    ipaddress.ip_address("192.0.0.192"): "the Oracle Cloud metadata service",
}
BLOCKED_NAMES = frozenset(
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
BLOCKED_SUFFIXES = (".localhost",)

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
class Allowlist:
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
def _parse_allowlist(entries: tuple[str, ...]) -> Allowlist:
    names: set[str] = set()
    suffixes: list[str] = []
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = normalise_host(str(raw))
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
    return Allowlist(frozenset(names), tuple(suffixes), tuple(networks))


def current_allowlist() -> Allowlist:
    entries = getattr(settings, "OUTBOUND_HTTP_ALLOWLIST", None) or ()
    if isinstance(entries, str):
        entries = entries.split(",")
    return _parse_allowlist(tuple(str(e) for e in entries))


def normalise_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".")


def url_host(url: httpx.URL) -> str:
    """The host as the connection sees it: ASCII (IDNA-encoded), lower case, no trailing dot."""
    return normalise_host(url.raw_host.decode("ascii"))


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


def parse_ip_literal(host: str) -> IPAddress | None:
    host = normalise_host(host)
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


def check_address(ip: IPAddress, allowlist: Allowlist, host: str | None = None) -> None:
    if allowlist.allows_address(ip):
        return
    problem = _address_problem(ip)
    if problem:
        raise _refuse_address(ip, host, problem)


def validate_address(ip: str | IPAddress) -> None:
    """Raise :class:`OutboundRefused` unless a connection to ``ip`` is allowed: it is globally
    reachable, or ``OUTBOUND_HTTP_ALLOWLIST`` covers it."""
    if isinstance(ip, str):
        parsed = parse_ip_literal(ip)
        if parsed is None:
            raise OutboundRefused(f"refused: {ip!r} is not an IP address")
        ip = parsed
    check_address(ip, current_allowlist())


def check_target(url: httpx.URL | str, allowlist: Allowlist) -> httpx.URL:
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
    host = url_host(url)
    if allowlist.allows_name(host):
        return url
    if host in BLOCKED_NAMES or host.endswith(BLOCKED_SUFFIXES):
        raise OutboundRefused(
            f"refused: {host} is a local or cloud-metadata host name; only public internet "
            "addresses can be reached"
        )
    literal = parse_ip_literal(host)
    if literal is not None:
        check_address(literal, allowlist, host)
    return url
