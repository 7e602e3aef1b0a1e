"""``make run`` from the outside: a fresh data directory, real daphne and qcluster processes,
the embedded PostgreSQL, curl-like requests, Ctrl-C."""

from __future__ import annotations

import os
import signal
import time

import jwt
import pytest

from config.settings import DEV_JWT_SIGNING_KEY
from tests.e2e.conftest import http

pytestmark = pytest.mark.e2e


def dev_token(sub: str, **claims) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + 300, **claims}, DEV_JWT_SIGNING_KEY)


def postmaster_pid(var_dir) -> int | None:
    pid_file = var_dir / "pgdata" / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def test_serve_starts_everything_stops_on_ctrl_c_and_keeps_data(server_factory):
    server = server_factory().start()
    try:
        status, ready = http("GET", f"{server.url}/readyz")
        assert status == 200, ready
        # The embedded default shape: PostgreSQL for data, queue and channel layer alike.
        assert ready["checks"]["channel_layer"]["info"] == "PostgresChannelLayer"
        assert ready["checks"]["queue"]["info"].startswith("ORM")

        token = dev_token("user_e2e", email="e2e@example.com", name="E2E")
        status, me = http(
            "GET", f"{server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert status == 200, me
        assert me["id"] == "user_e2e"

        status, problem = http("GET", f"{server.url}/api/v1/me")
        assert status == 401
        assert problem["code"] == "not_authenticated"
    finally:
        assert server.stop() == 0, server.log()
    first_log = server.log()
    assert "created staff user admin@agentdeck.local with password:" in first_log
    assert "stopped" in first_log
    assert postmaster_pid(server.var_dir) is None, "embedded PostgreSQL left running"

    # A second `make run` on the same ./var finds the same data.
    again = server_factory(server.var_dir).start()
    try:
        token = dev_token("user_e2e")
        status, me = http(
            "GET", f"{again.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert status == 200
        assert me["email"] == "e2e@example.com"
    finally:
        assert again.stop() == 0
    assert "staff user: admin@agentdeck.local" in again.log()
    assert "with password" not in again.log()


def test_readyz_names_the_database_when_it_goes_down(server_factory):
    server = server_factory().start()
    try:
        # Again and again: each check must find the channel layer usable (it once broke on the
        # second check, a loop-bound pool in channels-postgres and a NOTIFY sent before LISTEN).
        for _ in range(4):
            status, body = http("GET", f"{server.url}/readyz")
            assert status == 200, body
        pid = postmaster_pid(server.var_dir)
        assert pid
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast shutdown"
        deadline = time.monotonic() + 20
        while postmaster_pid(server.var_dir) is not None and time.monotonic() < deadline:
            time.sleep(0.2)

        status, body = http("GET", f"{server.url}/readyz")

        assert status == 503, body
        assert "database" in body["failing"]
        assert http("GET", f"{server.url}/healthz")[0] == 200  # alive, just not ready
    finally:
        server.stop(sig=signal.SIGTERM)
