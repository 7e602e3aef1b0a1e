"""The harness the benchmark scripts share. Imported as ``_support`` (the scripts run from
``benchmarks/``, which Python puts first on ``sys.path``).

* :mod:`.basics`: errors, :func:`log`, figures (:func:`percentile`, :func:`medians`,
  :func:`verdict`), :func:`machine`, Markdown tables, command-line helpers;
* :mod:`.procs`: what processes cost (:func:`cpu_by_group`, :class:`CpuMeter`,
  :func:`memory_by_group`), :func:`wait_for_quiet` (a shared machine), stopping processes;
* :mod:`.server`: :class:`Server` (``manage.py serve``), :func:`run_bench`, the embedded
  PostgreSQL's stop; :mod:`.deployment`: :class:`Deployment` (server + workers);
* :mod:`.clients`: :class:`Api`, :class:`KeepAlive`, :class:`PrivateRedis`;
* :mod:`.django_setup`: Django in the benchmark's own process (:func:`setup_django`).
"""

from .basics import (
    HOST,
    BenchError,
    BenchTimeout,
    add_server_env,
    env_pair,
    free_port,
    interrupt_on_signal,
    loadavg_text,
    log,
    log_as,
    machine,
    md_row,
    md_rule,
    md_table,
    median_or_nan,
    median_or_none,
    medians_of,
    parse_ts,
    percentile,
    verdict,
)
from .clients import Api, KeepAlive, PrivateRedis, redis_answers, redis_flushed
from .deployment import Deployment
from .django_setup import local_postmaster, removed_at_exit, setup_django, temporary_work_dir
from .procs import (
    CpuMeter,
    Roots,
    cpu_busy,
    cpu_by_group,
    interrupt_group,
    kill_group,
    memory_by_group,
    proc_children,
    proc_cmdline,
    stop_process,
    wait_for_quiet,
)
from .server import (
    _LIVE,
    BASE_DIR,
    Server,
    postmaster_pid,
    run_bench,
    run_sync,
    runs_worker_available,
    stop_embedded_postgres,
    stop_live,
    temporary_var_dir,
)

__all__ = [
    "BASE_DIR",
    "HOST",
    "_LIVE",
    "Api",
    "BenchError",
    "BenchTimeout",
    "CpuMeter",
    "Deployment",
    "KeepAlive",
    "PrivateRedis",
    "Roots",
    "Server",
    "add_server_env",
    "cpu_busy",
    "cpu_by_group",
    "env_pair",
    "free_port",
    "interrupt_group",
    "interrupt_on_signal",
    "kill_group",
    "loadavg_text",
    "local_postmaster",
    "log",
    "log_as",
    "machine",
    "md_row",
    "md_rule",
    "md_table",
    "median_or_nan",
    "median_or_none",
    "medians_of",
    "memory_by_group",
    "parse_ts",
    "percentile",
    "postmaster_pid",
    "proc_children",
    "proc_cmdline",
    "redis_answers",
    "redis_flushed",
    "removed_at_exit",
    "run_bench",
    "run_sync",
    "runs_worker_available",
    "setup_django",
    "stop_embedded_postgres",
    "stop_live",
    "stop_process",
    "temporary_var_dir",
    "temporary_work_dir",
    "verdict",
    "wait_for_quiet",
]
