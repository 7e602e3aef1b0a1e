"""The raw SDK side: N concurrent streamed runs in a subprocess of its own (``concurrency.py _raw``),
so that its CPU and peak memory are its own.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from _run_overhead.runs import (
    EXPECTED_OUTPUT,
    INPUT,
)
from _support import (
    BASE_DIR,
    BenchError,
    BenchTimeout,
    cpu_by_group,
)
from model_stub import MODEL

from .config import (
    AGENT_NAME,
)
from .stub import StubProcess

# The script, started again as ``concurrency.py _raw <base url> <runs> <warmup>``.
SCRIPT = Path(__file__).resolve().parent.parent / "concurrency.py"


async def raw_child_main(base_url: str, runs: int, warmup: int) -> dict[str, Any]:
    """Run in the subprocess: N concurrent streamed runs; what they cost this process."""
    import resource

    import agents
    from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner
    from openai import AsyncOpenAI

    from agentdeck.agents.runtime.tools import calculator

    agents.set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=base_url, api_key="sk-bench")
    agent = Agent(
        name=AGENT_NAME,
        model=OpenAIChatCompletionsModel(model=MODEL, openai_client=client),
        tools=[calculator],
        # Usage in the stream's last chunk, as agentdeck always asks (build_model_settings).
        model_settings=ModelSettings(include_usage=True),
    )
    in_flight = most = 0

    async def one() -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            result = Runner.run_streamed(agent, INPUT)
            async for _ in result.stream_events():
                pass
            return result.final_output
        finally:
            in_flight -= 1

    await asyncio.gather(*(one() for _ in range(warmup)))
    most = 0
    started, cpu = time.perf_counter(), time.process_time()
    outputs = await asyncio.gather(*(one() for _ in range(runs)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    await client.close()
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "in_flight": most,
        "failed": sum(1 for output in outputs if output != EXPECTED_OUTPUT),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


async def measure_raw(stub: StubProcess, runs: int, warmup: int, timeout: float) -> dict:
    """The raw SDK side in a fresh subprocess; the stub's CPU and concurrency beside it."""
    stub.reset()
    cpu_before = cpu_by_group({"stub": stub.process.pid})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        "_raw",
        stub.base_url,
        str(runs),
        str(warmup),
        cwd=BASE_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        raise BenchTimeout(f"the raw SDK side did not finish in {timeout:.0f}s") from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise BenchError(f"the raw SDK side failed:\n{err.decode()[-3000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    if result["failed"]:
        raise BenchError(f"{result['failed']} of {runs} raw SDK runs did not answer as expected")
    cpu_after = cpu_by_group({"stub": stub.process.pid})
    result["stub_cpu_s"] = cpu_after["stub"] - cpu_before["stub"]
    result["stub_calls_at_once"] = stub.stats()["max_in_flight"]
    return result
