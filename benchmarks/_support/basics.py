"""Small things every benchmark uses: its errors, its log line, figures (percentile, medians,
verdicts), the machine it ran on, Markdown tables, and command-line helpers."""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from typing import Any

HOST = "127.0.0.1"


class BenchError(RuntimeError):
    """The benchmark could not measure what it promised (a run failed, a timeout...)."""


class BenchTimeout(BenchError):
    pass


_log_name = ""


def log_as(name: str) -> None:
    """Prefix every later :func:`log` line with ``name`` (a script whose lines mix with others')."""
    global _log_name
    _log_name = f"{name} "


def log(message: str) -> None:
    print(f"[{_log_name}{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def interrupt_on_signal(signum: int, frame: Any) -> None:
    """A SIGTERM handler: unwind like Ctrl-C, so ``finally`` blocks and atexit clean up."""
    raise KeyboardInterrupt(f"signal {signum}")


# --- figures -------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, linear interpolation between closest ranks (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median_or_nan(values: Iterable[float | None]) -> float:
    """The median of the values that are there (nan when none is)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else float("nan")


def median_or_none(values: list[float | None]) -> float | None:
    """The median, or None when any value is missing (a figure that could not be measured)."""
    return None if None in values else statistics.median(values)  # type: ignore[type-var]


def medians_of(items: list[Any], keys: Iterable[str] | None = None) -> dict[str, float]:
    """Per key, the median over the items that have it. Items are dicts, or dataclasses (then
    ``keys`` defaults to their fields); ``keys`` defaults to every key seen."""
    if keys is None:
        first = items[0]
        if is_dataclass(first):
            keys = [f.name for f in fields(first)]
        else:
            keys = list(dict.fromkeys(k for item in items for k in item))

    def get(item: Any, key: str) -> Any:
        return item.get(key) if isinstance(item, dict) else getattr(item, key, None)

    return {
        key: statistics.median(get(i, key) for i in items if get(i, key) is not None)
        for key in keys
    }


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def loadavg_text(values: Iterable[float] | None = None) -> str:
    """``0.52 0.61 0.70``: the load averages (now, unless given)."""
    return " ".join(f"{x:.2f}" for x in (os.getloadavg() if values is None else values))


# --- Markdown tables (what RESULTS.md quotes) -----------------------------------------------------


def md_row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def md_rule(columns: int) -> str:
    return "|" + "---|" * columns


def md_table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    return "\n".join([md_row(*header), md_rule(len(header)), *(md_row(*row) for row in rows)])


# --- command line and network --------------------------------------------------------------------


def env_pair(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` from the command line (argparse ``type=``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key, value


def add_server_env(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--server-env KEY=VALUE`` (repeatable): another setting for the server processes."""
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        type=env_pair,
        metavar="KEY=VALUE",
        help=help_text,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def parse_ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()
