"""What is preloaded where: heavy libraries in the web process and the queue workers only
(tests/e2e/test_serve.py watches them load under serve); commands that need none of it load
none of it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from agentdeck.core import preload

BASE_DIR = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "sentence_transformers", "transformers", "agents", "openai", "litellm")


def modules_loaded_by(*argv: str) -> set[str]:
    """Which of HEAVY a ``manage.py`` command has imported by the time it exits."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['manage.py', *{list(argv)!r}]\n"
        "try:\n"
        "    runpy.run_path('manage.py', run_name='__main__')\n"
        "finally:\n"
        f"    print('LOADED', *sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [line] = [line for line in done.stderr.splitlines() if line.startswith("LOADED")]
    return set(line.split()[1:])


def test_dev_token_loads_no_heavy_library():
    assert modules_loaded_by("dev_token", "--sub", "user_1") == set()


def test_check_loads_no_heavy_library():
    assert modules_loaded_by("check") == set()


def test_a_preload_that_fails_is_logged_and_left_to_first_use(caplog):
    def broken() -> None:
        raise ImportError("no such library")

    with caplog.at_level(logging.INFO, logger="agentdeck.core.preload"):
        assert preload._timed("worker", "something heavy", broken) is False

    assert "worker: loading something heavy..." in caplog.messages
    assert "worker: could not load something heavy; it will be loaded on first use" in (
        caplog.messages
    )


def test_a_process_reports_ready_on_the_pipe_serve_gave_it(monkeypatch):
    read, write = os.pipe()
    monkeypatch.setenv(preload.READY_FD_ENV, str(write))
    try:
        preload.report_ready("worker")
        assert os.read(read, 100) == f"worker {os.getpid()}\n".encode()
        # A worker django-q2 starts after serve stopped reading finds the pipe closed: no error.
        os.close(read)
        preload.report_ready("worker")
    finally:
        os.close(write)


def test_a_queue_worker_inherits_the_validators_of_a_models_streamed_answer():
    # Built on first use otherwise: ~0.5 s of each worker's first run (openai defers them).
    code = (
        "import django, os\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')\n"
        "django.setup()\n"
        "from agentdeck.core import preload\n"
        "preload.qcluster_main()\n"
        "from openai.types.chat import ChatCompletionChunk\n"
        "from openai.types.responses import Response, ResponseTextDeltaEvent\n"
        "print('BUILT', *(m.__pydantic_complete__ for m in "
        "(Response, ResponseTextDeltaEvent, ChatCompletionChunk)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**os.environ, "EMBEDDING_PRELOAD": "false"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "BUILT True True True" in done.stdout, done.stderr
