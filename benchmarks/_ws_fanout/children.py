"""The role processes: which function each runs, and the orchestrator's handle on one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from _support import BASE_DIR, BenchError, kill_group

from .baseline import role_baseline_receiver, role_baseline_sender
from .clients import role_clients
from .producer import role_producer

SCRIPT = BASE_DIR / "benchmarks" / "ws_fanout.py"  # what a role process runs


ROLES = {
    "producer": role_producer,
    "clients": role_clients,
    "baseline-receiver": role_baseline_receiver,
    "baseline-sender": role_baseline_sender,
}


CHILD_PIDS: set[int] = set()  # started and not yet reaped: stopped whatever happens


class Child:
    """One role process: a line protocol on stdin/stdout, stderr to a log file."""

    def __init__(self, name: str, role: str, spec: dict[str, Any], work_dir: Path, env=None):
        self.name, self.role = name, role
        self.spec_path = work_dir / f"{name}.spec.json"
        self.log_path = work_dir / f"{name}.log"
        self.spec = {**spec, "result_path": str(self.spec_path) + ".result"}
        self.env = env
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Child:
        self.spec_path.write_text(json.dumps(self.spec))
        with self.log_path.open("w") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(SCRIPT),
                "--role",
                self.role,
                "--spec",
                str(self.spec_path),
                cwd=BASE_DIR,
                env=self.env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                start_new_session=True,
            )
        CHILD_PIDS.add(self.process.pid)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text() if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def expect(self, word: str, timeout: float) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                line = (await self.process.stdout.readline()).decode().strip()
        except TimeoutError:
            raise BenchError(
                f"{self.name}: no '{word}' within {timeout:.0f}s\n{self.log_tail()}"
            ) from None
        if line != word:
            raise BenchError(f"{self.name}: expected '{word}', got {line!r}\n{self.log_tail()}")

    def send(self, line: str) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        if self.process.returncode is None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.process.stdin.write((line + "\n").encode())

    async def result(self, timeout: float) -> dict[str, Any]:
        await self.expect("done", timeout)
        return json.loads(Path(self.spec["result_path"]).read_text())

    async def finish(self, grace: float = 10) -> None:
        """Wait up to ``grace`` s for a clean exit, then stop the process group."""
        if self.process is None:
            return
        if self.process.stdin is not None and self.process.returncode is None:
            self.process.stdin.close()  # end of input: a role still waiting for a line exits
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self.process.wait()
        if self.process.returncode is None:
            await asyncio.to_thread(kill_group, self.pid)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self.process.wait()
        CHILD_PIDS.discard(self.pid)
