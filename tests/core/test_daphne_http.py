"""What daphne's HTTP layer refuses before the application sees a request is problem+json within
the configured limits (agentdeck.core.daphne_http), seen from a raw socket against a real daphne
process on the test database."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import jwt
import pytest
from django.conf import settings

BASE_DIR = Path(__file__).resolve().parents[2]
LIMITS = {
    "HTTP_MAX_URL_BYTES": "4096",
    "HTTP_MAX_HEADER_BYTES": "8192",
    "HTTP_MAX_HEADERS": "50",
    "HTTP_IDLE_TIMEOUT_SECONDS": "2",
}


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict:
        assert self.headers.get("content-type") == "application/problem+json", self
        return json.loads(self.body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_response(sock: socket.socket) -> Response:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed with no complete response: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Response(int(status_line.split()[1]), headers, rest[:length])


def exchange(port: int, *parts: bytes, pause: float = 0.0) -> Response:
    """Send ``parts`` (``pause`` seconds apart) on a new connection and read one response. The
    server may stop reading once it has refused: what it did not read is not an error here."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        for part in parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(pause)
        return read_response(sock)


@dataclass
class Daphne:
    port: int
    log: Path
    process: subprocess.Popen


@pytest.fixture(scope="module")
def daphne(django_db_setup, django_db_blocker, tmp_path_factory):
    """``daphne config.asgi:application`` on a free port, on the test database, with small
    limits from the environment."""
    from django.db import connection

    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{quote(str(db['HOST']), safe='')}:{db['PORT']}/{db['NAME']}"
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"TEST_DATABASE_NAME", "REDIS_URL"}},
        "DATABASE_URL": url,
        "ENVIRONMENT": "test",
        "CHANNEL_LAYER": "memory",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **LIMITS,
    }
    port = free_port()
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"daphne exited:\n{log.read_text()}"
            try:
                if (
                    exchange(port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").status
                    == 200
                ):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"daphne did not come up:\n{log.read_text()}"
            time.sleep(0.2)
        yield Daphne(port, log, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def request(target: str = "/api/v1/me", *headers: str, method: str = "GET", body: bytes = b""):
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def token(sub: str = "user_daphne_http") -> str:
    now = int(time.time())
    claims = {"sub": sub, "email": f"{sub}@example.com", "iat": now, "exp": now + 300}
    return jwt.encode(claims, settings.DEV_JWT_SIGNING_KEY)


@pytest.mark.parametrize("size", [9_000, 17_000, 100_000])
def test_a_long_authorization_header_is_a_431(daphne, size):
    """17 KB was the issue's case: longer than Twisted's 16 KiB line, so the connection was
    closed without a word; 9 KB is under Twisted's limit but over the configured one."""
    response = exchange(daphne.port, request("/api/v1/me", "Authorization: Bearer " + "a" * size))
    assert response.status == 431
    assert response.headers["connection"] == "close"
    problem = response.problem()
    assert problem["code"] == "request_header_fields_too_large"
    assert problem["max_bytes"] == 8192


def test_too_many_header_lines_is_a_431(daphne):
    headers = [f"X-Filler-{n}: {n}" for n in range(60)]
    response = exchange(daphne.port, request("/api/v1/me", *headers))
    assert response.status == 431
    assert response.problem()["max_headers"] == 50


@pytest.mark.parametrize("size", [5_000, 20_000, 100_000])
def test_a_long_url_is_a_414(daphne, size):
    """100 KB was the issue's case; the refusal is read in full although the server stopped
    reading the request a long way before its end (lingering close, not a reset)."""
    response = exchange(daphne.port, request("/api/v1/agents/?search=" + "a" * size))
    assert response.status == 414
    problem = response.problem()
    assert problem["code"] == "uri_too_long"
    assert problem["max_bytes"] == 4096


@pytest.mark.django_db(transaction=True)
def test_requests_within_the_limits_are_served_on_one_connection(daphne):
    auth = f"Authorization: Bearer {token()}"
    with socket.create_connection(("127.0.0.1", daphne.port), timeout=15) as sock:
        sock.sendall(
            request(
                "/api/v1/agents/?search=" + "a" * 200 + "&pad=" + "a" * 3000,
                auth,
                "X-Pad: " + "b" * 3000,
            )
        )
        assert read_response(sock).status == 200
        body = json.dumps({"name": "k"}).encode()
        sock.sendall(
            request(
                "/api/v1/api-keys/",
                auth,
                "Content-Type: application/json",
                method="POST",
                body=body,
            )
        )
        assert read_response(sock).status == 201


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=x"],
)
def test_a_multipart_body_without_a_usable_boundary_is_problem_json(daphne, content_type):
    """Twisted parsed every form POST into arguments daphne never reads, and answered a bare
    400 with no body when it could not; the body now reaches DRF, whose parse error is
    problem+json."""
    body = b"--y\r\nContent-Disposition: form-data; name=file\r\n\r\nx\r\n--y--\r\n"
    response = exchange(
        daphne.port,
        request(
            "/api/v1/files/",
            f"Authorization: Bearer {token()}",
            f"Content-Type: {content_type}",
            method="POST",
            body=body,
        ),
    )
    assert response.status == 400
    problem = response.problem()
    assert problem["code"] in ("parse_error", "validation_error")


@pytest.mark.parametrize(
    "raw",
    [
        # Content-Length that is not a number, or given twice.
        b"POST /api/v1/me HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /api/v1/me HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        # A chunked body that is not.
        b"POST /api/v1/me HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        # NUL in a header value, a header line without a colon, a broken request line.
        b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x00b\r\n\r\n",
        b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"GET /api/v1/me\r\nHost: x\r\n\r\n",
        # daphne's own: a path or query string that is not ASCII, a forbidden header byte.
        b"GET /api/v1/\xff/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/v1/me?q=\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nX-A: a\x0bb\r\n\r\n",
    ],
)
def test_malformed_http_is_a_400_problem(daphne, raw):
    response = exchange(daphne.port, raw)
    assert response.status == 400, response
    assert response.problem()["code"] == "bad_request"


def test_a_body_that_stops_short_is_a_408_after_the_idle_timeout(daphne):
    head = b"POST /api/v1/api-keys/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    started = time.monotonic()
    response = exchange(daphne.port, head + b'{"name":', pause=0)
    assert response.status == 408
    assert response.problem()["code"] == "request_timeout"
    assert 1.5 < time.monotonic() - started < 10


def test_headers_that_stop_short_are_a_408_too(daphne):
    response = exchange(daphne.port, b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\n")
    assert response.status == 408


def test_an_idle_keep_alive_connection_is_closed_without_a_response(daphne):
    with socket.create_connection(("127.0.0.1", daphne.port), timeout=15) as sock:
        sock.sendall(request("/healthz"))
        assert read_response(sock).status == 200
        assert sock.recv(1024) == b""  # after the idle timeout: closed, no 408 for nothing


@pytest.mark.django_db(transaction=True)
def test_websockets_upgrade_and_outlive_the_http_idle_timeout(daphne):
    """The WebSocket handshake goes through the same channel; once upgraded, the HTTP idle
    timeout (2 s here) does not apply to it."""
    import asyncio

    from websockets.asyncio.client import connect

    async def main() -> None:
        url = f"ws://127.0.0.1:{daphne.port}/ws/notifications/?token={token()}"
        async with connect(url, ping_interval=None) as ws:
            await asyncio.sleep(3)
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5)

    asyncio.run(main())
