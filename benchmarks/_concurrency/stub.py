"""``model_stub.py`` (the OpenAI-compatible model both sides call) in a process of its own."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _support import (
    _LIVE,
    HOST,
    BenchError,
    free_port,
    stop_process,
)


@dataclass(eq=False)
class StubProcess:
    """``model_stub.py`` on a free port; its latency is set between measurements."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path = field(
        default_factory=lambda: Path(tempfile.mkstemp(prefix="agentdeck-bench-stub-")[1])
    )

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def start(self, timeout: float = 20) -> None:
        import httpx

        _LIVE.append(self)
        script = Path(__file__).resolve().parent.parent / "model_stub.py"
        with self.log_path.open("w") as log_file:
            self.process = subprocess.Popen(  # noqa: S603 (our own argv)
                [sys.executable, str(script), "--port", str(self.port)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the terminal's Ctrl-C reaches only us; we stop it
            )
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{HOST}:{self.port}/healthz", trust_env=False).is_success:
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the model stub did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        import httpx

        response = httpx.request(
            method, f"http://{HOST}:{self.port}{path}", json=body, trust_env=False, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def configure(self, latency: float) -> None:
        self._call("POST", "/_stub/config", {"latency": latency})

    def reset(self) -> None:
        self._call("POST", "/_stub/reset")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_stub/stats")

    def stop(self) -> None:
        stop_process(self.process)
        self.log_path.unlink(missing_ok=True)
        if self in _LIVE:
            _LIVE.remove(self)
