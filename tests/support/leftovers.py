"""A test session leaves no process behind: a pytest plugin that fails the session if it does.

Every process a test starts (``manage.py serve`` and its daphne and qcluster, the embedded
PostgreSQL those start through ``pg_ctl``, extra workers, redis-server, model stubs run as
processes...) inherits the environment, so the plugin marks the environment with a token of its
own at the start of the session and, once the session's fixtures are torn down, looks for live
processes carrying it. Reparenting does not hide one (the postmaster is the child of no test:
``pg_ctl`` daemonises it), nor does a session or process group of its own.

The session's own embedded PostgreSQL, started by the settings before this plugin loads, is
released here (``agentdeck.core.embedded_postgres.release_all``) and must then be gone too,
unless another live process still holds it (a second test session sharing ``./var``).

What is found is listed, the session fails (exit status 1), and the processes are stopped so
that a failing run does not leave them either.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import uuid

import psutil
import pytest

MARK = "AGENTDECK_TEST_SESSION"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "leftover_grace_seconds",
        # Processes stopped by the last teardown may still be exiting (PostgreSQL backends, a
        # qcluster's workers).
        "How long processes still running at the end get to exit before they count as left.",
        default="10",
    )


def pytest_configure(config: pytest.Config) -> None:
    # A token per session: a nested session (pytester) marks its own processes.
    os.environ[MARK] = uuid.uuid4().hex


def marked_processes(token: str) -> list[psutil.Process]:
    """Live processes (not zombies) other than this one whose environment carries ``token``."""
    found = []
    for process in psutil.process_iter(["status"]):
        if process.pid == os.getpid() or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if process.environ().get(MARK) == token:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _own_postgres() -> list[str]:
    """Release the embedded PostgreSQL this process holds; describe it if it is still running
    with no other holder."""
    module = sys.modules.get("agentdeck.core.embedded_postgres")
    if module is None:
        return []
    problems = []
    for released in module.release_all():
        pid = module.postmaster_pid(released.pgdata)
        if pid is not None and not released.others:
            problems.append(f"postmaster {pid} of {released.pgdata} (the session's own server)")
    return problems


def _describe(process: psutil.Process) -> str:
    try:
        cmdline = " ".join(process.cmdline()) or process.name()
        age = time.time() - process.create_time()
    except psutil.Error:
        return f"pid {process.pid} (gone while listing)"
    if len(cmdline) > 160:
        cmdline = cmdline[:157] + "..."
    return f"pid {process.pid}, started {age:.0f} s ago: {cmdline}"


def _stop(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(processes, timeout=5)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int):
    # Innermost wrapper: the session's fixtures are torn down by now (the runner's
    # sessionfinish), and the terminal summary is still to come.
    result = yield
    problems = _own_postgres()
    token = os.environ.get(MARK, "")
    deadline = time.monotonic() + float(session.config.getini("leftover_grace_seconds"))
    left = marked_processes(token)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = marked_processes(token)
    problems += [_describe(process) for process in left]
    if not problems:
        return result
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [
        f"the test session left {len(problems)} process(es) running (stopping them now):",
        *(f"  {problem}" for problem in problems),
    ]
    if reporter is not None:
        reporter.write_sep("=", "processes left behind", red=True, bold=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines), file=sys.stderr)
    _stop(left)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
    return result
