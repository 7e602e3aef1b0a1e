"""The SSRF guard of agentdeck.core.outbound.

Nothing here reaches the internet: the only real connections are to servers on 127.0.0.1, and
an autouse fixture makes any other connection attempt fail (and records it) before a socket is
opened. "Public" addresses are only ever passed to validate_address or to a stubbed resolver.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from urllib.parse import parse_qs, urlsplit

import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agentdeck.core import outbound
from agentdeck.core.outbound import (
    OutboundError,
    OutboundRefused,
    check_url,
    fetch,
    fetch_sync,
    guarded_async_client,
    validate_address,
)

GZIP_BOMB = gzip.compress(b"\0" * (20 * 1024 * 1024))  # 20 MiB of zeros, ~20 KiB on the wire


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", headers=None, length=True):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self):
        self._route()

    def do_POST(self):
        self._route()

    def do_HEAD(self):
        self._route()

    def _route(self):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path == "/ok":
            self._send(200, b"hello", {"Content-Type": "text/plain; charset=utf-8"})
        elif url.path == "/latin1":
            self._send(
                200, "café".encode("latin-1"), {"Content-Type": "text/plain; charset=latin-1"}
            )
        elif url.path == "/echo":
            payload = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode(),
            }
            self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"})
        elif url.path == "/redirect":
            status = int(query.get("status", "302"))
            self._send(status, headers={"Location": query["to"]})
        elif url.path == "/loop":
            self._send(302, headers={"Location": "/loop"})
        elif url.path == "/big":
            self._send(200, b"a" * int(query["n"]))
        elif url.path == "/big-no-length":
            self._send(200, b"b" * int(query["n"]), length=False)
        elif url.path == "/bomb":
            self._send(200, GZIP_BOMB, {"Content-Encoding": "gzip"})
        elif url.path == "/slow":
            time.sleep(float(query.get("s", "2")))
            self._send(200, b"late")
        elif url.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
        else:
            self._send(404, b"no such page")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that stop reading (size cap, timeouts) are expected here


def _serve() -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    yield from _serve()


@pytest.fixture(scope="module")
def other_server() -> Iterator[str]:
    """A second origin (another port) for cross-origin redirects."""
    yield from _serve()


@pytest.fixture(autouse=True)
def connections(monkeypatch) -> list[tuple[str, int]]:
    """Every address the guard hands to the real backend. Anything but 127.0.0.1 fails here,
    before a socket exists, so a broken guard cannot reach the network from a test."""
    attempts: list[tuple[str, int]] = []
    real_connect = httpcore.AnyIOBackend.connect_tcp

    async def connect_tcp(self, host, port, *args, **kwargs):
        attempts.append((host, port))
        if host != "127.0.0.1":
            raise httpcore.ConnectError(f"test: connection to {host} blocked")
        return await real_connect(self, host, port, *args, **kwargs)

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", connect_tcp)
    return attempts


@pytest.fixture(autouse=True)
def no_dns(monkeypatch):
    """Name resolution never leaves the machine: unknown names fail as NXDOMAIN would."""

    def offline(host, port):
        if host.rstrip(".").lower() == "localhost":
            return [ip_address("127.0.0.1")]
        raise socket.gaierror(socket.EAI_NONAME, "test: no DNS")

    async def offline_async(host, port):
        return offline(host, port)

    monkeypatch.setattr(outbound.transport, "_resolve", offline_async)
    monkeypatch.setattr(outbound.transport, "_resolve_sync", offline)


@pytest.fixture
def allow_local(settings):
    settings.OUTBOUND_HTTP_ALLOWLIST = ["127.0.0.1"]


@pytest.fixture
def no_allowlist(settings):
    settings.OUTBOUND_HTTP_ALLOWLIST = []


def _get(url: str, **kwargs) -> outbound.OutboundResponse:
    return asyncio.run(fetch("GET", url, **kwargs))


def _refused(url: str, **kwargs) -> OutboundRefused:
    """The policy refusal for ``url`` (not a connection failure, which is an OutboundError)."""
    with pytest.raises(OutboundRefused) as info:
        _get(url, **kwargs)
    assert type(info.value) is OutboundRefused, info.value
    return info.value


# --- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "2606:4700:4700::1111",
        "::ffff:93.184.216.34",  # IPv4-mapped public address
        "64:ff9b::5db8:d822",  # DNS64/NAT64 form of 93.184.216.34
    ],
)
def test_public_addresses_pass(no_allowlist, address):
    validate_address(address)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "this network"),  # noqa: S104 (an address to refuse, not to bind)
        ("0.1.2.3", "this network"),
        ("::", "unspecified"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fec0::1", "site-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("100.64.0.1", "shared"),
        ("192.0.0.8", "IETF protocol-assignment"),
        ("198.18.0.1", "benchmarking"),
        ("192.0.2.1", "documentation"),
        ("2001:db8::1", "documentation"),
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("192.0.0.192", "metadata"),
        ("::ffff:127.0.0.1", "IPv4-mapped form of 127.0.0.1"),
        ("0:0:0:0:0:ffff:7f00:1", "IPv4-mapped form of 127.0.0.1"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::7f00:1", "NAT64 form of 127.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "metadata"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("2002:7f00:1::", "6to4 form of 127.0.0.1"),
        ("2002:a9fe:a9fe::", "metadata"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        # inet_aton notations of 127.0.0.1
        ("2130706433", "loopback"),
        ("0x7f000001", "loopback"),
        ("0x7f.0.0.1", "loopback"),
        ("0177.0.0.1", "loopback"),
        ("017700000001", "loopback"),
        ("127.1", "loopback"),
        ("0", "this network"),
    ],
)
def test_non_public_addresses_are_refused(no_allowlist, address, reason):
    with pytest.raises(OutboundRefused, match=reason):
        validate_address(address)


def test_validate_address_refuses_what_is_not_an_address(no_allowlist):
    with pytest.raises(OutboundRefused, match="not an IP address"):
        validate_address("example.com")


def test_allowlist_networks_exempt_addresses_but_metadata_needs_an_exact_entry(settings):
    settings.OUTBOUND_HTTP_ALLOWLIST = ["10.0.0.0/8", "169.254.0.0/16", "[::1]"]
    validate_address("10.1.2.3")
    validate_address("::ffff:10.1.2.3")
    validate_address("169.254.1.1")
    validate_address("::1")
    with pytest.raises(OutboundRefused, match="metadata"):
        validate_address("169.254.169.254")
    with pytest.raises(OutboundRefused, match="private"):
        validate_address("192.168.0.1")
    settings.OUTBOUND_HTTP_ALLOWLIST = ["169.254.169.254"]
    validate_address("169.254.169.254")


# --- URLs: every refused form, with the allowlist empty ----------------------------------------


REFUSED_URLS = [
    # loopback, by name and in every notation
    ("http://127.0.0.1:{port}/ok", "loopback"),
    ("http://localhost:{port}/ok", "local or cloud-metadata host name"),
    ("http://LOCALHOST:{port}/ok", "local or cloud-metadata host name"),
    ("http://localhost.:{port}/ok", "local or cloud-metadata host name"),
    ("http://app.localhost:{port}/ok", "local or cloud-metadata host name"),
    ("http://2130706433:{port}/ok", "loopback"),
    ("http://0x7f000001:{port}/ok", "loopback"),
    ("http://0x7f.0.0.1:{port}/ok", "loopback"),
    ("http://0x7F.0.0.1:{port}/ok", "loopback"),
    ("http://017700000001:{port}/ok", "loopback"),
    ("http://0177.0.0.1:{port}/ok", "invalid URL"),
    ("http://127.1:{port}/ok", "loopback"),
    ("http://127.0.0.1.:{port}/ok", "loopback"),
    ("http://[::1]:{port}/ok", "loopback"),
    ("http://[::ffff:127.0.0.1]:{port}/ok", "IPv4-mapped"),
    ("http://[::ffff:7f00:1]:{port}/ok", "IPv4-mapped"),
    ("http://[0:0:0:0:0:ffff:7f00:1]:{port}/ok", "IPv4-mapped"),
    ("http://[::127.0.0.1]:{port}/ok", "IPv4-compatible"),
    ("http://[64:ff9b::7f00:1]:{port}/ok", "NAT64"),
    ("http://[2002:7f00:1::]:{port}/ok", "6to4"),
    ("http://evil@127.0.0.1:{port}/ok", "loopback"),
    ("http://user:pass@127.0.0.1:{port}/ok", "loopback"),
    ("http://127.0.0.1:{port}#@example.com/", "loopback"),
    ("http://127.0.0.1:{port}?@example.com/", "loopback"),
    ("http://0.0.0.0:{port}/ok", "this network"),
    ("http://0:{port}/ok", "this network"),
    ("http://[::]:{port}/ok", "unspecified"),
    # cloud metadata
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[::ffff:169.254.169.254]/latest/meta-data/", "metadata"),
    ("http://2852039166/latest/meta-data/", "metadata"),  # 169.254.169.254 as one number
    ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", "cloud-metadata host name"),
    ("http://METADATA.GOOGLE.INTERNAL./computeMetadata/v1/", "cloud-metadata host name"),
    ("http://metadata.goog/", "cloud-metadata host name"),
    ("http://100.100.100.200/latest/meta-data/", "metadata"),
    ("http://192.0.0.192/opc/v2/instance/", "metadata"),
    # private, link-local, shared, multicast, reserved
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.0.1/", "private"),
    ("http://100.64.0.1/", "shared"),
    ("http://169.254.0.1/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    ("http://[fc00::1]/", "private"),
    ("http://[fec0::1]/", "site-local"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "broadcast"),
    ("https://10.0.0.1:8443/", "private"),
    # schemes and malformed URLs
    ("file:///etc/passwd", "file: scheme"),
    ("FILE:///etc/passwd", "file: scheme"),
    ("ftp://example.com/x", "ftp: scheme"),
    ("gopher://127.0.0.1:{port}/_GET", "gopher: scheme"),
    ("data:text/plain,hello", "data: scheme"),
    ("dict://127.0.0.1:11211/stat", "dict: scheme"),
    ("ldap://127.0.0.1/", "ldap: scheme"),
    ("javascript:alert(1)", "javascript: scheme"),
    ("//example.com/", "no scheme"),
    ("example.com/path", "no scheme"),
    ("http:///path", "no host"),
    ("http://127.0.0.1:99999/", "invalid port"),
    ("http://exa\tmple.com/", "invalid URL"),
]


@pytest.mark.parametrize(("template", "reason"), REFUSED_URLS)
def test_refused_urls(no_allowlist, server, connections, template, reason):
    port = server.rsplit(":", 1)[1]
    error = _refused(template.format(port=port))
    assert reason in str(error)
    assert connections == [], "a refused URL must not be connected to"


@pytest.mark.parametrize(("template", "reason"), REFUSED_URLS)
def test_check_url_refuses_the_same_forms(no_allowlist, template, reason):
    with pytest.raises(OutboundRefused, match=re.escape(reason)):
        check_url(template.format(port=8000))


def test_refusal_messages_name_the_host_not_the_secret_query(no_allowlist):
    error = _refused("http://10.0.0.1/api?token=s3cret")
    assert "s3cret" not in str(error)


def test_a_name_resolving_to_any_private_address_is_refused(no_allowlist, monkeypatch, connections):
    async def resolve(host, port):
        return [ip_address("93.184.216.34"), ip_address("10.0.0.7")]

    monkeypatch.setattr(outbound.transport, "_resolve", resolve)
    error = _refused("http://mixed.example/")
    assert "mixed.example resolves to 10.0.0.7" in str(error)
    assert connections == []


# --- the allowlist and a real local server -----------------------------------------------------


def test_local_server_is_unreachable_without_the_allowlist(no_allowlist, server, connections):
    _refused(f"{server}/ok")
    assert connections == []


def test_local_server_is_reachable_when_allowlisted(allow_local, server, connections):
    response = _get(f"{server}/ok")
    assert response.status == 200
    assert response.body == b"hello"
    assert response.text == "hello"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.truncated is False
    assert response.total_bytes == 5
    assert response.final_url == f"{server}/ok"
    assert response.elapsed_ms >= 0
    assert connections == [("127.0.0.1", int(server.rsplit(":", 1)[1]))]


def test_allowlisted_host_name(settings, server, connections):
    settings.OUTBOUND_HTTP_ALLOWLIST = ["localhost"]
    port = server.rsplit(":", 1)[1]
    assert _get(f"http://LocalHost.:{port}/ok").body == b"hello"
    check_url(f"http://localhost:{port}/")
    _refused(f"{server}/ok")  # the name is allowed, not the address


def test_allowlisted_network(settings, server):
    settings.OUTBOUND_HTTP_ALLOWLIST = ["127.0.0.0/8"]
    assert _get(f"{server}/ok").status == 200


def test_the_allowlist_does_not_lift_the_scheme_check(allow_local):
    _refused("ftp://127.0.0.1/")


def test_statuses_are_responses_not_errors(allow_local, server):
    response = _get(f"{server}/missing")
    assert response.status == 404
    assert response.text == "no such page"


def test_text_uses_the_declared_charset(allow_local, server):
    assert _get(f"{server}/latin1").text == "café"


def test_request_options_are_sent(allow_local, server):
    response = asyncio.run(
        fetch(
            "post",
            f"{server}/echo",
            headers={"X-Test": "1"},
            json={"a": 1},
            params={"q": "x y"},
        )
    )
    echoed = json.loads(response.body)
    assert echoed["method"] == "POST"
    assert echoed["path"] == "/echo?q=x+y"
    assert echoed["headers"]["x-test"] == "1"
    assert echoed["headers"]["content-type"] == "application/json"
    assert json.loads(echoed["body"]) == {"a": 1}


def test_fetch_sync(allow_local, server):
    assert fetch_sync("GET", f"{server}/ok").body == b"hello"


def test_fetch_sync_inside_a_running_loop(allow_local, server):
    async def call():
        return fetch_sync("GET", f"{server}/ok")

    assert asyncio.run(call()).body == b"hello"


def test_guarded_client(no_allowlist, settings, server):
    async def get():
        async with guarded_async_client() as client:
            return await client.get(f"{server}/ok")

    with pytest.raises(OutboundRefused, match="loopback"):
        asyncio.run(get())
    settings.OUTBOUND_HTTP_ALLOWLIST = ["127.0.0.1"]
    assert asyncio.run(get()).text == "hello"


def test_guarded_client_checks_the_redirects_httpx_follows(allow_local, server):
    async def get():
        async with guarded_async_client(follow_redirects=True) as client:
            return await client.get(f"{server}/redirect", params={"to": "http://169.254.169.254/"})

    with pytest.raises(OutboundRefused, match="metadata"):
        asyncio.run(get())


# --- redirects ---------------------------------------------------------------------------------


def _redirect(server: str, to: str, status: int = 302) -> str:
    return str(httpx.URL(f"{server}/redirect", params={"to": to, "status": status}))


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[::1]:{port}/ok", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),
        ("http://[0:0:0:0:0:ffff:a00:1]/", "IPv4-mapped form of 10.0.0.1"),
        ("http://localhost:{port}/ok", "local or cloud-metadata host name"),
        ("http://10.0.0.1/", "private"),
        ("//169.254.169.254/", "metadata"),
        ("file:///etc/passwd", "file: scheme"),
        ("gopher://127.0.0.1:{port}/", "gopher: scheme"),
    ],
)
def test_redirects_to_forbidden_places_are_refused(settings, server, connections, target, reason):
    # ::1 and names are not covered by this allowlist; 127.0.0.1 (the first hop) is.
    settings.OUTBOUND_HTTP_ALLOWLIST = ["127.0.0.1"]
    port = server.rsplit(":", 1)[1]
    error = _refused(_redirect(server, target.format(port=port)))
    assert reason in str(error)
    assert all(host == "127.0.0.1" for host, _ in connections)
    assert len(connections) == 1  # only the first hop was connected


def test_the_allowlist_covers_other_spellings_of_an_allowed_address(
    allow_local, server, connections
):
    port = int(server.rsplit(":", 1)[1])
    for spelling in ("2130706433", "0x7f.0.0.1", "127.1", "[::ffff:127.0.0.1]"):
        assert _get(_redirect(server, f"http://{spelling}:{port}/ok")).body == b"hello"
    assert {host for host, _ in connections} == {"127.0.0.1"}


def test_redirect_to_an_allowed_url_is_followed(allow_local, server, other_server):
    response = _get(_redirect(server, f"{other_server}/ok"))
    assert response.status == 200
    assert response.body == b"hello"
    assert response.final_url == f"{other_server}/ok"


def test_relative_redirect_is_followed(allow_local, server):
    assert _get(_redirect(server, "/ok")).final_url == f"{server}/ok"


def test_redirect_statuses_and_methods(allow_local, server):
    async def post(status: int):
        response = await fetch("POST", _redirect(server, "/echo", status), json={"k": "v"})
        return json.loads(response.body)

    for status in (302, 303):
        echoed = asyncio.run(post(status))
        assert (echoed["method"], echoed["body"]) == ("GET", "")
        assert "content-type" not in echoed["headers"]
    for status in (307, 308):
        echoed = asyncio.run(post(status))
        assert echoed["method"] == "POST"
        assert json.loads(echoed["body"]) == {"k": "v"}


def test_a_dropped_body_does_not_come_back_on_a_later_307(allow_local, server):
    chained = _redirect(server, _redirect(server, "/echo", 307), 303)
    echoed = json.loads(asyncio.run(fetch("POST", chained, json={"k": "v"})).body)
    assert (echoed["method"], echoed["body"]) == ("GET", "")


def test_cross_origin_redirect_drops_the_callers_secret_headers(allow_local, server, other_server):
    headers = {"Authorization": "Bearer t", "X-Api-Key": "k", "Accept": "application/json"}
    same = json.loads(_get(_redirect(server, "/echo"), headers=headers).body)["headers"]
    assert same["authorization"] == "Bearer t"
    assert same["x-api-key"] == "k"
    other = json.loads(_get(_redirect(server, f"{other_server}/echo"), headers=headers).body)
    assert "authorization" not in other["headers"]
    assert "x-api-key" not in other["headers"]
    assert other["headers"]["accept"] == "application/json"


def test_too_many_redirects(allow_local, server):
    error = _refused(f"{server}/loop", max_redirects=3)
    assert "too many redirects" in str(error)


def test_redirects_can_be_turned_off(allow_local, server):
    error = _refused(_redirect(server, "/ok"), max_redirects=0)
    assert "too many redirects (more than 0)" in str(error)


# --- DNS rebinding -----------------------------------------------------------------------------


def test_connection_goes_to_the_validated_address_not_the_name(
    no_allowlist, monkeypatch, connections
):
    """The name is resolved once, checked, and the socket opened to that IP string; the backend
    never sees the name, so there is no second lookup for a rebinding DNS server to answer."""
    lookups: list[str] = []

    async def resolve(host, port):
        lookups.append(host)
        return [ip_address("93.184.216.34")]  # public: allowed (the test backend won't connect)

    monkeypatch.setattr(outbound.transport, "_resolve", resolve)
    with pytest.raises(OutboundError, match=r"could not connect to rebind\.example"):
        _get("http://rebind.example:8080/")
    assert lookups == ["rebind.example"]
    assert connections == [("93.184.216.34", 8080)]


def test_every_connection_resolves_and_checks_again(
    settings, server, other_server, monkeypatch, connections
):
    """A name that first answers with an allowed address and then with a forbidden one (DNS
    rebinding) is refused on the connection that would use the forbidden answer. (The redirect
    goes to another port so that it needs a new connection rather than the pooled one.)"""
    settings.OUTBOUND_HTTP_ALLOWLIST = ["127.0.0.1"]
    port = int(server.rsplit(":", 1)[1])
    other_port = int(other_server.rsplit(":", 1)[1])
    answers = iter([[ip_address("127.0.0.1")], [ip_address("169.254.169.254")]])

    async def resolve(host, port):
        assert host == "rebind.example"
        return next(answers)

    monkeypatch.setattr(outbound.transport, "_resolve", resolve)
    first = f"http://rebind.example:{port}"
    error = _refused(_redirect(first, f"http://rebind.example:{other_port}/ok"))
    assert "rebind.example resolves to 169.254.169.254" in str(error)
    assert connections == [("127.0.0.1", port)]


def test_save_time_check_grants_nothing_at_fetch_time(no_allowlist, monkeypatch, connections):
    monkeypatch.setattr(
        outbound.transport, "_resolve_sync", lambda host, port: [ip_address("93.184.216.34")]
    )
    check_url("https://rebind.example/hook")

    async def resolve(host, port):
        return [ip_address("127.0.0.1")]

    monkeypatch.setattr(outbound.transport, "_resolve", resolve)
    error = _refused("https://rebind.example/hook")
    assert "rebind.example resolves to 127.0.0.1" in str(error)
    assert connections == []


# --- TLS on a pinned connection ----------------------------------------------------------------


def _tls_files(tmp_path, name: str) -> tuple[str, str, str]:
    """A throwaway CA and a server certificate for ``name`` signed by it (PEM file paths)."""
    now = datetime.datetime.now(datetime.UTC)

    def build(subject, issuer, public_key, signing_key, *, ca: bool, san: str | None = None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            ).add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("test CA", "test CA", ca_key.public_key(), ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build(name, "test CA", key.public_key(), ca_key, ca=False, san=name)
    pem = serialization.Encoding.PEM
    paths = [tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"]
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tuple(str(p) for p in paths)


@pytest.fixture
def tls_server(tmp_path) -> Iterator[tuple[str, int, list[str]]]:
    """An https server on 127.0.0.1 with a certificate for secure.example; records SNI names."""
    ca, cert, key = _tls_files(tmp_path, "secure.example")
    server_names: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ca, server.server_address[1], server_names
    finally:
        server.shutdown()
        server.server_close()


def test_https_to_the_pinned_address_verifies_the_host_name(
    allow_local, tls_server, monkeypatch, connections
):
    """The socket goes to the validated IP, but TLS still sends the URL's host name as SNI and
    verifies the certificate against it (and against trusted CAs only)."""
    ca, port, server_names = tls_server

    async def resolve(host, port):
        return [ip_address("127.0.0.1")]

    monkeypatch.setattr(outbound.transport, "_resolve", resolve)
    # The default trust store does not know the test CA: verification is on.
    with pytest.raises(OutboundError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(f"https://secure.example:{port}/ok")
    trusting = ssl.create_default_context(cafile=ca)
    monkeypatch.setattr(outbound.transport, "_ssl_context", lambda: trusting)
    response = _get(f"https://secure.example:{port}/ok")
    assert (response.status, response.body) == (200, b"hello")
    assert server_names[-1] == "secure.example"
    assert set(connections) == {("127.0.0.1", port)}
    # A certificate for secure.example is no good for another name on the same address.
    with pytest.raises(OutboundError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(f"https://other.example:{port}/ok")


# --- check_url ---------------------------------------------------------------------------------


def test_check_url_accepts_public_urls(no_allowlist, monkeypatch):
    monkeypatch.setattr(
        outbound.transport,
        "_resolve_sync",
        lambda host, port: [ip_address("93.184.216.34"), ip_address("2606:2800:220:1::")],
    )
    check_url("https://mcp.example.com/mcp")
    check_url("http://api.example.com:8080/v1/items/{item_id}")
    check_url("https://93.184.216.34/")


def test_check_url_refuses_names_that_do_not_resolve(no_allowlist):
    with pytest.raises(OutboundRefused, match="could not be resolved"):
        check_url("https://no-such-host.invalid/")


def test_check_url_without_resolving(no_allowlist):
    check_url("https://no-such-host.invalid/", resolve=False)
    with pytest.raises(OutboundRefused, match="loopback"):
        check_url("http://0x7f.1/", resolve=False)


def test_check_url_refuses_names_resolving_to_private_addresses(no_allowlist, monkeypatch):
    monkeypatch.setattr(
        outbound.transport, "_resolve_sync", lambda host, port: [ip_address("10.1.2.3")]
    )
    with pytest.raises(OutboundRefused, match=r"intranet.example resolves to 10\.1\.2\.3"):
        check_url("https://intranet.example/")


def test_check_url_honours_the_allowlist(settings, monkeypatch):
    settings.OUTBOUND_HTTP_ALLOWLIST = ["internal.example.com", ".corp.example", "10.0.0.0/8"]
    check_url("http://internal.example.com/")  # exempt by name, not even resolved
    check_url("http://wiki.corp.example/")
    check_url("http://10.9.8.7:9000/")
    monkeypatch.setattr(
        outbound.transport, "_resolve_sync", lambda host, port: [ip_address("10.1.2.3")]
    )
    check_url("http://db.example/")
    with pytest.raises(OutboundRefused, match="private"):
        check_url("http://192.168.1.1/")


# --- limits ------------------------------------------------------------------------------------


def test_size_cap_truncates_and_reports_the_full_size(allow_local, server):
    response = _get(f"{server}/big?n=5000", max_bytes=1000)
    assert response.body == b"a" * 1000
    assert response.truncated is True
    assert response.total_bytes == 5000


def test_size_cap_without_content_length(allow_local, server):
    response = _get(f"{server}/big-no-length?n=300000", max_bytes=1000)
    assert response.body == b"b" * 1000
    assert response.truncated is True
    assert response.total_bytes is None


def test_a_body_exactly_at_the_cap_is_not_truncated(allow_local, server):
    response = _get(f"{server}/big?n=1000", max_bytes=1000)
    assert (len(response.body), response.truncated, response.total_bytes) == (1000, False, 1000)


def test_gzip_bomb_is_inflated_only_up_to_the_cap(allow_local, server):
    response = _get(f"{server}/bomb", max_bytes=1000)
    assert response.body == b"\0" * 1000
    assert response.truncated is True
    assert response.total_bytes is None  # Content-Length is the compressed size


def test_timeout_is_an_outbound_error_with_a_clear_message(allow_local, server):
    started = time.monotonic()
    with pytest.raises(OutboundError, match=r"request to 127\.0\.0\.1 timed out \(limit 0\.3s\)"):
        _get(f"{server}/slow?s=2", timeout=0.3)
    assert time.monotonic() - started < 1.5


def test_the_timeout_is_also_a_deadline_for_the_whole_call(allow_local, server):
    # Each byte arrives well within the read timeout; the call as a whole still ends on time.
    started = time.monotonic()
    with pytest.raises(OutboundError, match="timed out"):
        _get(f"{server}/drip", timeout=1.0)
    assert time.monotonic() - started < 2.5


def test_connection_failures_are_outbound_errors(allow_local):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(OutboundError, match=r"could not connect to 127\.0\.0\.1"):
        _get(f"http://127.0.0.1:{port}/")


def test_outbound_error_is_caught_by_tools_that_catch_outbound_refused():
    assert issubclass(OutboundError, OutboundRefused)
