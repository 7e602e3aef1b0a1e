"""Loopback only: imported at start-up by every Python process of the server under test
(``PYTHONPATH`` names this folder), so nothing the fuzzer writes can reach another host.

Schemathesis creates providers, tools and MCP servers with whatever URLs it likes
(``https://0.com``), and the server then calls them: listing a provider's models, refreshing an
MCP tool, running an agent. Tests must never reach the internet, and a name lookup is already
traffic, so names other than ``localhost`` do not resolve and connections go to loopback
addresses only. What the server sees is what it would see on a machine with no network.
"""

from __future__ import annotations

import ipaddress
import socket

_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _getaddrinfo(host, *args, **kwargs):
    if not _is_loopback(host):
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: no network in this test")
    return _real_getaddrinfo(host, *args, **kwargs)


def _checked(address) -> None:
    # AF_UNIX addresses are paths (PostgreSQL's socket); only IP addresses are checked.
    if isinstance(address, tuple) and not _is_loopback(address[0]):
        raise ConnectionRefusedError(f"{address[0]}: no network in this test")


def _connect(self, address):
    _checked(address)
    return _real_connect(self, address)


def _connect_ex(self, address):
    _checked(address)
    return _real_connect_ex(self, address)


socket.getaddrinfo = _getaddrinfo
socket.socket.connect = _connect
socket.socket.connect_ex = _connect_ex
