"""Django in the benchmark's own process (the scripts that call services or SQL directly): the
settings pointed at a database of the benchmark's, set up and migrated."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from pathlib import Path


def removed_at_exit(work_dir: Path) -> Path:
    """Remove ``work_dir`` when the process exits. Register it before :func:`setup_django`:
    atexit runs last-in first-out, so the embedded PostgreSQL (whose handler is registered when
    the settings start it) stops before its directory goes."""
    atexit.register(shutil.rmtree, work_dir, ignore_errors=True)
    return work_dir


def temporary_work_dir(prefix: str, keep: bool, parent: Path | None = None) -> Path:
    """A new temporary directory, removed at exit unless ``keep``."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    return work_dir if keep else removed_at_exit(work_dir)


def setup_django(env: dict[str, str | None], *, migrate: bool = True) -> None:
    """Set ``env`` in this process's environment (None removes a variable) over
    ``config.settings`` with DEBUG off (DEBUG keeps every query in memory: not a production
    setting), set Django up (which starts the embedded PostgreSQL of ``AGENTDECK_VAR_DIR``
    unless ``DATABASE_URL`` is set) and migrate."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DEBUG"] = "false"
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def local_postmaster() -> int | None:
    """The pid of the PostgreSQL server behind Django's connection when it runs on this machine
    (the parent of our backend), else None."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    try:
        ppid = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return ppid if Path(f"/proc/{ppid}").exists() else None
