"""The leftover-process check: a session that leaves a process running fails, and a session
that stops what it started passes. Each case runs a small pytest session of its own."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import psutil
import pytest

from tests.support.leftovers import MARK

pytest_plugins = ["pytester"]

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    def run(test_source: str) -> pytest.RunResult:
        pytester.makepyfile(test_inner=textwrap.dedent(test_source))
        # A bare session: only the plugin under test; no Django, settings or database.
        pytester.makeini(
            "[pytest]\n"
            "addopts = -p no:django -p no:cacheprovider -p no:cov\n"
            "leftover_grace_seconds = 1\n"
        )
        monkeypatch.setenv("PYTHONPATH", str(BASE_DIR))
        return pytester.runpytest_subprocess("-p", "tests.support.leftovers", timeout=120)

    return run


def test_a_session_that_leaves_a_process_running_fails_and_the_process_is_stopped(
    pytester, run_session
):
    result = run_session(
        """
        import pathlib, subprocess

        def test_starts_a_server_and_forgets_it():
            # Its own session, like serve's children and the postmaster: not our process group.
            process = subprocess.Popen(["sleep", "300"], start_new_session=True)
            pathlib.Path("leftover.pid").write_text(str(process.pid))
        """,
    )

    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(["*processes left behind*", "*left 1 process(es)*", "*sleep 300*"])
    pid = int((pytester.path / "leftover.pid").read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_session_that_stops_what_it_started_passes(run_session):
    result = run_session(
        """
        import subprocess

        def test_starts_and_stops_a_server():
            process = subprocess.Popen(["sleep", "300"], start_new_session=True)
            process.terminate()
            process.wait()
        """,
    )

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "left behind" not in result.stdout.str()


def test_the_session_marks_the_environment_its_processes_inherit():
    assert os.environ.get(MARK), "the plugin is not loaded in this session"
