"""What processes cost and how to stop them, from /proc (Linux; zeros or empty elsewhere):
CPU seconds of process groups (:func:`cpu_by_group`, :class:`CpuMeter`), resident memory
(:func:`memory_by_group`), how busy the shared machine is (:func:`wait_for_quiet`), and stopping
a process or its whole group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from .basics import log

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_fields() -> tuple[int, int]:
    """(total, idle + iowait) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)


def cpu_busy(interval: float = 1.0) -> float:
    """Fraction of all CPUs busy over ``interval`` (from /proc/stat; 0 where unavailable)."""
    try:
        total0, idle0 = _cpu_fields()
        time.sleep(interval)
        total1, idle1 = _cpu_fields()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def wait_for_quiet(limit: float, threshold: float = 0.25, window: float = 1.0) -> float:
    """On a shared machine, wait up to ``limit`` seconds for other work to calm down (CPU busy
    under ``threshold`` for ``window`` seconds); returns the last busy fraction seen."""
    deadline = time.monotonic() + limit
    busy = cpu_busy(window)
    if busy >= threshold:
        log(f"the machine is {busy:.0%} busy (others' work); waiting for < {threshold:.0%}")
    while busy >= threshold and time.monotonic() < deadline:
        busy = cpu_busy(window)
    if busy >= threshold:
        log(f"the machine is still {busy:.0%} busy with other work; measuring anyway")
    return busy


def _process_table() -> dict[int, tuple[int, float]]:
    """{pid: (parent pid, CPU seconds of itself and its reaped children)} from /proc (Linux)."""
    stats: dict[int, tuple[int, float]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        # after the command: state ppid ... utime(12) stime(13) cutime(14) cstime(15), 1-based
        cpu = sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK
        stats[int(entry)] = (int(fields[1]), cpu)
    return stats


Roots = dict[str, int | list[int]]


def _trees(roots: Roots, stats: dict[int, tuple[int, float]]) -> dict[str, list[int]]:
    """Each group's pids: its root process(es) and all their descendants."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    trees = {}
    for name, root in roots.items():
        pids, stack = [], list(root) if isinstance(root, list) else [root]
        while stack:
            pid = stack.pop()
            if pid in stats:
                pids.append(pid)
            stack.extend(children.get(pid, []))
        trees[name] = pids
    return trees


def cpu_by_group(roots: Roots) -> dict[str, float]:
    """CPU seconds used so far by each group of root processes (a pid or a list of pids) and
    all their descendants, including children that already exited and were reaped
    (``cutime``/``cstime``), so the difference of two calls is what the group used in between,
    even with short-lived PostgreSQL backends. Linux /proc; empty where unavailable."""
    stats = _process_table()
    if not stats:
        return {}
    return {name: sum(stats[pid][1] for pid in pids) for name, pids in _trees(roots, stats).items()}


def _memory_fields(path: str, names: tuple[str, ...]) -> dict[str, int]:
    """``Name:   123 kB`` lines of a /proc file, in bytes (those present)."""
    found = {}
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name in names:
                found[name] = int(value.split()[0]) * 1024
    return found


def memory_by_group(roots: Roots) -> dict[str, int]:
    """The resident memory of each group now, in bytes (Linux /proc; empty where unavailable):
    a group of one process, its RSS; of several (a forking server such as qcluster, whose
    children share most of their pages), the sum of their PSS, which counts a shared page once
    (each process's RSS counts it again)."""
    result = {}
    for name, pids in _trees(roots, _process_table()).items():
        if len(pids) == 1:
            result[name] = _memory_fields(f"/proc/{pids[0]}/status", ("VmRSS",)).get("VmRSS", 0)
        else:
            result[name] = sum(
                _memory_fields(f"/proc/{pid}/smaps_rollup", ("Pss",)).get("Pss", 0) for pid in pids
            )
    return result


def stop_process(process: subprocess.Popen | None, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def kill_group(pid: int, grace: float = 5.0) -> None:
    """SIGTERM the process group of a child started with ``start_new_session``, SIGKILL it after
    ``grace`` seconds, and reap the child."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def interrupt_group(process: subprocess.Popen, sig: int, grace: float, label: str) -> None:
    """Send ``sig`` (SIGINT: what Ctrl-C sends a server), wait ``grace`` seconds, then SIGKILL
    the process's whole group (it was started with ``start_new_session``)."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log(f"{label} did not stop within {grace:.0f}s; killing its group")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# --- fixed sets of processes (live processes only, no reaped children) ---------------------------


def proc_cpu_seconds(pid: int) -> float:
    """The CPU seconds (utime + stime) of one live process itself, 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class CpuMeter:
    """CPU seconds used by named groups of processes (lists of pids fixed at construction, each
    process's own time) between start() and stop(), with the machine's busy % and the wall time.
    Unlike :func:`cpu_by_group`, processes that start or exit in between are not counted."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.before: dict[int, float] = {}
        self.machine_before = (0, 0)
        self.wall_before = 0.0

    @staticmethod
    def _machine() -> tuple[int, int]:
        try:
            return _cpu_fields()
        except (OSError, ValueError, IndexError):
            return 0, 0

    def start(self) -> None:
        self.before = {pid: proc_cpu_seconds(pid) for pids in self.groups.values() for pid in pids}
        self.machine_before = self._machine()
        self.wall_before = time.monotonic()

    def stop(self) -> dict[str, float]:
        out = {
            name: round(
                sum(max(proc_cpu_seconds(pid) - self.before.get(pid, 0.0), 0.0) for pid in pids),
                2,
            )
            for name, pids in self.groups.items()
        }
        total, idle = self._machine()
        total0, idle0 = self.machine_before
        if total > total0:
            out["machine_busy_pct"] = round(100 * (1 - (idle - idle0) / (total - total0)), 1)
        out["wall_s"] = round(time.monotonic() - self.wall_before, 2)
        return out
