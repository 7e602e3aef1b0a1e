"""``make run`` from the outside: a fresh data directory, real daphne and qcluster processes,
the embedded PostgreSQL, curl-like requests, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import jwt
import psutil
import pytest

from config.settings import DEV_JWT_SIGNING_KEY
from tests.e2e.conftest import UP_LINE, http
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


def dev_token(sub: str, **claims) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + 300, **claims}, DEV_JWT_SIGNING_KEY)


def postmaster_pid(var_dir) -> int | None:
    pid_file = var_dir / "pgdata" / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def running_postmaster(var_dir) -> int | None:
    """The postmaster serving ``var_dir``, if one is alive (a stale pid file does not count)."""
    pid = postmaster_pid(var_dir)
    try:
        return pid if pid and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE else None
    except psutil.NoSuchProcess:
        return None


def holders(var_dir) -> list[int]:
    """The processes registered as using the embedded server (pgserver's list)."""
    path = var_dir / "pgdata" / ".handle_pids.json"
    return json.loads(path.read_text() or "[]") if path.exists() else []


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


def test_ctrl_c_stops_postgres_although_a_worker_holding_it_was_killed(server_factory):
    server = server_factory().start("--no-worker")
    # One more worker, started as an operator would: it joins the embedded server as a holder.
    helper = server.manage("qcluster", background=True)
    wait_for(lambda: helper.pid in holders(server.var_dir), 90, "the extra worker to join")
    os.killpg(helper.pid, signal.SIGKILL)  # no exit hook: its pid stays in the holder list
    helper.wait()

    assert server.stop() == 0, server.log()

    assert server.log().rstrip().endswith("stopped"), server.log()
    assert running_postmaster(server.var_dir) is None, "embedded PostgreSQL left running"


def test_a_killed_serve_leaves_nothing_running(server_factory):
    server = server_factory().start()
    serve = psutil.Process(server.process.pid)
    # daphne, the run worker, the qcluster (and its workers), the embedded PostgreSQL (and its
    # watchdog).
    started = [*serve.children(recursive=True), psutil.Process(running_postmaster(server.var_dir))]
    commands = [" ".join(process.cmdline()) for process in started]
    assert any("daphne" in command for command in commands), commands
    assert any("qcluster" in command for command in commands), commands
    assert any("runs_worker" in command for command in commands), commands

    serve.send_signal(signal.SIGKILL)
    server.process.wait()

    _, alive = psutil.wait_procs(started, timeout=60)
    assert alive == [], f"still running after serve was killed: {alive}"


def test_a_child_killed_after_start_up_is_named_and_stops_everything(server_factory):
    server = server_factory().start("--no-worker")
    [daphne] = [
        child
        for child in psutil.Process(server.process.pid).children()
        if "daphne" in child.cmdline()
    ]

    daphne.send_signal(signal.SIGKILL)

    # The shell's status for a child killed by SIGKILL, not sys.exit(-9)'s 247.
    assert server.process.wait(timeout=60) == 128 + signal.SIGKILL, server.log()
    assert "web (daphne) was killed by SIGKILL; stopping" in server.log()
    assert running_postmaster(server.var_dir) is None, "embedded PostgreSQL left running"


def test_serve_says_stopped_only_when_it_stopped_postgres_and_names_who_keeps_it(server_factory):
    server = server_factory().start("--no-worker")
    shell = server.manage("shell", "-c", "import time; time.sleep(600)", background=True)
    wait_for(lambda: shell.pid in holders(server.var_dir), 90, "the shell to join")

    assert server.stop() == 0, server.log()

    last_line = server.log().rstrip().splitlines()[-1]
    assert last_line != "stopped"
    assert "the embedded PostgreSQL keeps running" in last_line
    assert f"pid {shell.pid}" in last_line
    assert running_postmaster(server.var_dir) is not None  # the shell still uses it
    # When that last holder dies (even unable to run its exit hook), the server goes too.
    os.killpg(shell.pid, signal.SIGKILL)
    shell.wait()
    wait_for(lambda: running_postmaster(server.var_dir) is None, 30, "PostgreSQL to stop")


def test_up_is_said_once_daphne_answers_and_every_process_has_loaded_the_model(server_factory):
    server = server_factory(EMBEDDING_PRELOAD="true")
    server.launch()
    wait_for(lambda: UP_LINE in server.log() or server.process.poll() is not None, 300, "up")

    # At once, no retry: "up" means it answers.
    status, body = http("GET", f"{server.url}/healthz", timeout=5)

    assert status == 200, body
    before_up = server.log().split(UP_LINE)[0]
    # The workers import the libraries before django-q2 forks them, then each loads the model.
    assert "worker: the agents runtime ready in" in before_up
    assert "worker: torch and sentence-transformers ready in" in before_up
    # web + 2 queue workers + the run worker (file_search queries embed there)
    assert before_up.count("the embedding model all-MiniLM-L6-v2 ready in") == 4
    assert "web: the embedding model all-MiniLM-L6-v2 ready in" in before_up
    assert "runs: the embedding model all-MiniLM-L6-v2 ready in" in before_up
    assert "ready, up to" in before_up  # the run worker's
    assert server.stop() == 0, server.log()


def test_a_process_that_dies_during_start_up_is_named_and_serve_exits_non_zero(server_factory):
    server = server_factory()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server.port = taken.getsockname()[1]  # daphne cannot listen there

        process = server.launch()
        assert process.wait(timeout=180) != 0, server.log()

    log = server.log()
    assert "web (daphne) exited during start-up with status" in log
    assert UP_LINE not in log
    assert running_postmaster(server.var_dir) is None


def test_daphne_listens_with_a_backlog_for_bursts(server_factory):
    """The kernel queues up to 1,024 connections for daphne while its loop is busy (Twisted's
    default of 50 reset connections of a 500-run burst: benchmarks/HISTORY.md, 2026-12-08)."""
    import shutil
    import subprocess

    if shutil.which("ss") is None:
        pytest.skip("needs ss (iproute2) to read the listen queue")
    server = server_factory().start("--no-worker")
    listing = subprocess.run(
        ["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    # State, Recv-Q, Send-Q (a listening socket's backlog), local address, peer address.
    assert listing[0] == "LISTEN", listing
    assert int(listing[2]) >= 1024, listing
