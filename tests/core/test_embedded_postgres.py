"""The embedded PostgreSQL stops when its last live holder is gone, however the holders went.

Each test runs a server of its own in a temporary directory; holders are real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import pytest

from agentdeck.core import embedded_postgres
from agentdeck.core.embedded_postgres import (
    HOLDER_STARTS_FILE,
    HOLDERS_FILE,
    WATCHDOG_FILE,
    embedded_database_url,
    postmaster_pid,
    release,
)
from tests.support.waiting import wait_for

BASE_DIR = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from pathlib import Path
from agentdeck.core.embedded_postgres import embedded_database_url
print(embedded_database_url(Path(sys.argv[1])), flush=True)
time.sleep(600)
"""


@pytest.fixture
def var_dir(tmp_path):
    var = tmp_path / "var"
    yield var
    # Whatever a test left: stop it the way release() would, so nothing outlives the test.
    release(var)


@pytest.fixture
def start_holder(var_dir):
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(var_dir)],
            cwd=BASE_DIR,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(process)
        assert process.stdout.readline().startswith("postgres://"), "the holder did not start"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()


def pgdata(var_dir: Path) -> Path:
    return (var_dir / "pgdata").resolve()


def test_a_killed_last_holder_does_not_keep_the_server_running(var_dir, start_holder):
    holder = start_holder()
    assert postmaster_pid(pgdata(var_dir)) is not None

    holder.send_signal(signal.SIGKILL)  # no exit hook runs
    holder.wait()

    # The watchdog notices within its interval and stops the server, then itself.
    wait_for(lambda: postmaster_pid(pgdata(var_dir)) is None, 30, "the server to stop")
    wait_for(lambda: not (pgdata(var_dir) / WATCHDOG_FILE).exists(), 10, "the watchdog to exit")


def test_release_stops_the_server_when_the_other_holders_are_dead(var_dir, start_holder):
    killed = start_holder()
    embedded_database_url(var_dir)  # this process holds it too
    killed.send_signal(signal.SIGKILL)
    killed.wait()

    released = release(var_dir)

    assert released.stopped
    assert released.others == []
    assert postmaster_pid(pgdata(var_dir)) is None


def test_release_leaves_the_server_to_a_live_holder_and_names_it(var_dir, start_holder):
    holder = start_holder()
    embedded_database_url(var_dir)

    released = release(var_dir)

    assert not released.stopped
    assert released.others == [holder.pid]
    assert postmaster_pid(pgdata(var_dir)) is not None
    # Once that holder exits normally, the server goes with it.
    holder.send_signal(signal.SIGTERM)  # the default action: no exit hook either
    holder.wait()
    wait_for(lambda: postmaster_pid(pgdata(var_dir)) is None, 30, "the server to stop")


def test_a_pid_reused_by_another_process_is_not_a_holder(tmp_path):
    data = tmp_path / "pgdata"
    data.mkdir()
    me = os.getpid()
    started = embedded_postgres._start_time(me)
    # This live process's pid, recorded with the start time of the process that registered it.
    (data / HOLDERS_FILE).write_text(json.dumps([me]))
    (data / HOLDER_STARTS_FILE).write_text(json.dumps({str(me): started - 60}))

    assert embedded_postgres._live_holders(data) == []

    (data / HOLDER_STARTS_FILE).write_text(json.dumps({str(me): started}))
    assert embedded_postgres._live_holders(data) == [me]


def test_a_holder_stays_a_holder_when_the_wall_clock_is_stepped(tmp_path, monkeypatch):
    """A VM resumed from a snapshot, or NTP stepping the clock after boot, moves the boot time
    read through the wall clock: the watchdog, reading it later than the holder, must still see
    the holder (it stopped a server under a migrating ``serve`` in CI when it did not)."""
    data = tmp_path / "pgdata"
    data.mkdir()
    me = os.getpid()
    (data / HOLDERS_FILE).write_text(json.dumps([me]))
    embedded_postgres._starts_record(data, me)

    stepped = psutil.boot_time() + 1.0
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: stepped)
    monkeypatch.setattr(psutil, "boot_time", lambda: stepped)

    assert embedded_postgres._live_holders(data) == [me]


def test_asking_again_after_the_server_stopped_starts_it_again(var_dir):
    url = embedded_database_url(var_dir)
    embedded_postgres._stop_postmaster(pgdata(var_dir))  # as a test taking PostgreSQL down does
    assert postmaster_pid(pgdata(var_dir)) is None

    assert embedded_database_url(var_dir) == url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert release(var_dir).stopped


def test_the_holder_list_keeps_pgservers_format(var_dir):
    # pgserver itself (another checkout, a pixeltable user) reads and writes the same list.
    embedded_database_url(var_dir)
    try:
        holders = json.loads((pgdata(var_dir) / HOLDERS_FILE).read_text())
        assert holders == [os.getpid()]
    finally:
        release(var_dir)
    assert json.loads((pgdata(var_dir) / HOLDERS_FILE).read_text()) == []
