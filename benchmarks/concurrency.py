"""Many runs at once: agentdeck end to end against the raw Agents SDK, over the same HTTP model.

The workload is a two-turn tool agent on an OpenAI-compatible model served over HTTP by
``model_stub.py`` (Chat Completions, streamed, usage in the last chunk), in a process of its own:
the input ``calculator {"expression": "2+2"}`` makes the model call the ``calculator`` function
tool (agentdeck's builtin, which runs in the worker's process: no network), and the tool's
result makes it answer ``calculator returned: 4``. Every model call waits ``--latency`` seconds.

* **raw SDK**: one process (a subprocess, so its CPU and peak memory are its own) runs
  ``asyncio.gather`` of N ``Runner.run_streamed`` (every stream event consumed) of that agent,
  over ``OpenAIChatCompletionsModel`` and one shared ``AsyncOpenAI`` pointed at the stub.
* **agentdeck**: the path users take. ``POST /api/v1/agents/{id}/runs/`` N times at once (an
  ``openai_compatible`` provider pointed at the stub, the builtin calculator attached through the
  Tools API), the workers execute them and persist every event, and the benchmark polls the run
  list until none is queued or running. Every run must have ``succeeded`` with the expected
  output, a gapless event log, and exactly one ``run.started`` event, of attempt 1 (no run
  executed twice). Wall time is first POST -> last ``finished_at``; runs in flight is the
  largest overlap of the runs' [started_at, finished_at] intervals (exact, no sampling).

Scenarios (``--scenario``, each against the issue's targets, one line each):

* ``latency``: N=500, 1 s per model call: wall time <= 1.25 x raw, >= 400 runs in flight
  (0.8 N for a smaller N), peak memory (RSS) of a worker <= 400 MB;
* ``cpu``: N=300, no latency: CPU per run of all agentdeck processes <= 2 x the raw SDK's;
* ``create``: 50 concurrent ``POST .../runs/``: p50 <= 100 ms (beside it, for reference, 50
  concurrent authenticated ``GET /api/v1/runs/<unknown id>/``: the web stack's floor);
* ``start``: 20 runs one after another on an idle worker: queue-to-start p50 < 50 ms;
* ``all`` (default): the four in one invocation, on one deployment.

What runs the runs (``--engine``): ``runs_worker`` (default) starts ``--workers`` K x ``manage.py
runs_worker`` (the asyncio run worker of issue #15) and one ``manage.py qcluster`` for the other
tasks; ``qcluster`` runs everything on one ``manage.py qcluster`` with ``Q_WORKERS=K``, the path
before the run worker (for a checkout from before it: since, runs are not put on the queue). Beside them: ``manage.py serve --no-worker`` (daphne), the embedded
PostgreSQL in a fresh temporary var dir (or ``--database-url``), the ORM broker (or ``--redis``:
a private ``redis-server`` for broker, channel layer and cache, as production does). CPU seconds
are counted per process group from /proc (web, worker, qcluster, postgres, redis; the stub
apart, for both sides). Everything is started here and stopped on every exit path.

    .venv/bin/python benchmarks/concurrency.py                            # all, runs_worker
    .venv/bin/python benchmarks/concurrency.py --engine qcluster --runs 30 --latency 0.2
    .venv/bin/python benchmarks/concurrency.py --scenario latency --workers 2 --redis
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from _support import (  # noqa: E402 (the scripts' own directory)
    _LIVE,
    HOST,
    Api,
    BenchError,
    BenchTimeout,
    Deployment,
    PrivateRedis,
    cpu_by_group,
    env_pair,
    free_port,
    log,
    machine,
    md_row,
    md_rule,
    medians_of,
    memory_by_group,
    parse_ts,
    percentile,
    run_bench,
    runs_worker_available,
    stop_process,
    verdict,
    wait_for_quiet,
)
from model_stub import MODEL, raise_open_files_limit  # noqa: E402
from run_overhead import (  # noqa: E402 (the same run, the same checks)
    EXPECTED_OUTPUT,
    INPUT,
    check_events,
    check_runs,
    fetch_runs,
    measure_idle_latency,
    wait_idle,
)

AGENT_NAME = "bench-concurrency"
SCENARIOS = ("latency", "cpu", "create", "start")
# Per scenario: N (runs or creations) and the model's latency in seconds, unless given.
DEFAULT_RUNS = {"latency": 500, "cpu": 300}
DEFAULT_LATENCY = {"latency": 1.0, "cpu": 0.0, "create": 0.0, "start": 0.0}
# The targets (issue #15, deliverable 6).
WALL_RATIO_MAX = 1.25
IN_FLIGHT_MIN = 400  # with N=500; 0.8 N for a smaller N
WORKER_RSS_MAX_MB = 400
CPU_RATIO_MAX = 2.0
CREATE_P50_MAX_MS = 100
START_P50_MAX_MS = 50
CHECK_CONCURRENCY = 16  # readers of the runs' event logs after a burst


# --- the model stub, in a process of its own ------------------------------------------------------


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
        script = Path(__file__).with_name("model_stub.py")
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


# --- the raw SDK, in a subprocess ----------------------------------------------------------------


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
        __file__,
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


# --- agentdeck -----------------------------------------------------------------------------------


@dataclass
class Bench:
    """What every measurement needs: the deployment, its API and agent, the stub."""

    args: argparse.Namespace
    deployment: Deployment
    stub: StubProcess
    api: Api
    agent_id: str
    redis: PrivateRedis | None = None

    def cpu_roots(self) -> dict[str, Any]:
        roots = dict(self.deployment.cpu_roots())
        if self.redis is not None and self.redis.process is not None:
            roots["redis"] = self.redis.process.pid
        roots["stub"] = self.stub.process.pid
        return roots

    def worker_roots(self) -> dict[str, int]:
        processes = self.deployment.processes
        return {name: processes[name].pid for name in self.deployment.run_worker_names}


async def create_agent(api: Api, stub: StubProcess) -> str:
    """An ``openai_compatible`` provider on the stub; the agent with the builtin calculator."""
    provider = await api(
        "POST",
        "/api/v1/providers/",
        {
            "name": "bench-stub",
            "kind": "openai_compatible",
            "base_url": stub.base_url,
            "api_key": "sk-bench",
        },
        expect=(201,),
    )
    tool = await api(
        "POST",
        "/api/v1/tools/",
        {"name": "calculator", "kind": "builtin", "config": {"builtin": "calculator"}},
        expect=(201,),
    )
    agent = await api(
        "POST",
        "/api/v1/agents/",
        {
            "name": AGENT_NAME,
            "provider": provider["id"],
            "model": MODEL,
            "tools": [{"tool": tool["id"]}],
        },
        expect=(201,),
    )
    return agent["id"]


async def open_connections(bench: Bench, n: int) -> None:
    """N keep-alive connections to daphne before a burst, as a load balancer in front of it
    holds: daphne listens with Twisted's default backlog of 50, and N clients connecting at the
    same instant overflow it (the kernel logs "Possible SYN flooding"), so that connections
    wait for SYN retransmits (1 s, 3 s...), which would be measured as POST latency."""
    import httpx

    async def one() -> None:
        with contextlib.suppress(httpx.HTTPError):
            await bench.api.client.get("/healthz")

    await asyncio.gather(*(one() for _ in range(n)))


async def post_runs(bench: Bench, n: int, at_once: int) -> tuple[list[str], list[float], float]:
    """N ``POST .../runs/``, at most ``at_once`` in progress: (ids, latencies ms, first POST)."""
    limit = asyncio.Semaphore(at_once)
    ids: list[str] = []
    post_ms: list[float] = []

    async def one() -> None:
        async with limit:
            t0 = time.perf_counter()
            run = await bench.api(
                "POST",
                f"/api/v1/agents/{bench.agent_id}/runs/",
                {"input": INPUT, "mode": "background"},
                expect=(202,),
            )
            post_ms.append((time.perf_counter() - t0) * 1000)
            ids.append(run["id"])

    first = time.time()
    await asyncio.gather(*(one() for _ in range(n)))
    return ids, post_ms, first


async def settle(bench: Bench, ids: list[str], since: float) -> list[dict]:
    """Wait until none of the agent's runs is active; check every run of the burst."""
    args = bench.args
    await wait_idle(bench.api, bench.agent_id, args.deadline, args.poll)
    runs = await fetch_runs(bench.api, bench.agent_id, set(ids), since)
    check_runs(runs)
    await check_events(bench.api, ids, CHECK_CONCURRENCY)
    return runs


def most_in_flight(runs: list[dict]) -> int:
    """The largest number of runs between their started_at and finished_at at one moment."""
    edges = []
    for run in runs:
        timings = run["timings"]
        edges.append((parse_ts(timings["started_at"]), 1))
        edges.append((parse_ts(timings["finished_at"]), -1))
    edges.sort()  # at the same instant an end (-1) sorts before a start: not counted as overlap
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


async def sample_memory(roots: dict[str, int], peaks: dict[str, int], interval: float) -> None:
    """Until cancelled: the peak resident memory of each worker (a run worker's RSS, or a
    qcluster's processes' PSS summed: see ``memory_by_group``)."""
    while True:
        for name, size in memory_by_group(roots).items():
            peaks[name] = max(peaks.get(name, 0), size)
        await asyncio.sleep(interval)


async def measure_agentdeck(bench: Bench, n: int) -> dict[str, Any]:
    """N runs submitted at once (``--submitters`` in progress at most), end to end."""
    at_once = bench.args.submitters or n
    await open_connections(bench, at_once)
    bench.stub.reset()
    roots = bench.cpu_roots()
    peaks: dict[str, int] = {}
    sampler = asyncio.create_task(sample_memory(bench.worker_roots(), peaks, 0.1))
    cpu_before = cpu_by_group(roots)
    try:
        ids, post_ms, first = await post_runs(bench, n, at_once)
        await wait_idle(bench.api, bench.agent_id, bench.args.deadline, bench.args.poll)
        cpu_after = cpu_by_group(roots)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    stub_stats = bench.stub.stats()
    runs = await settle(bench, ids, first)
    last_finished = max(parse_ts(r["timings"]["finished_at"]) for r in runs)
    q2s = [
        (parse_ts(r["timings"]["started_at"]) - parse_ts(r["timings"]["queued_at"])) * 1000
        for r in runs
    ]
    cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_after if k in cpu_before}
    stub_cpu = cpu.pop("stub", float("nan"))
    return {
        "wall_s": last_finished - first,
        "in_flight": most_in_flight(runs),
        "stub_calls_at_once": stub_stats["max_in_flight"],
        "cpu": cpu,
        "cpu_s": sum(cpu.values()),
        "stub_cpu_s": stub_cpu,
        "worker_memory_peak_bytes": max(peaks.values(), default=0),
        "workers_memory_peak_bytes": sum(peaks.values()),
        "post_p50_ms": percentile(post_ms, 50),
        "post_p95_ms": percentile(post_ms, 95),
        "q2s_p50_ms": percentile(q2s, 50),
        "q2s_p95_ms": percentile(q2s, 95),
    }


# --- the scenarios -------------------------------------------------------------------------------
# Each returns the flat figures of one repetition; the report takes the median of each.


def scenario_n(args: argparse.Namespace, scenario: str) -> int:
    if scenario == "create":
        return args.creates
    if scenario == "start":
        return args.start_runs
    return args.runs or DEFAULT_RUNS[scenario]


def scenario_latency(args: argparse.Namespace, scenario: str) -> float:
    return DEFAULT_LATENCY[scenario] if args.latency is None else args.latency


async def run_burst_scenario(bench: Bench, scenario: str) -> dict[str, float]:
    """latency and cpu: the raw SDK, then agentdeck, the same N runs at the same latency."""
    args = bench.args
    n = scenario_n(args, scenario)
    bench.stub.configure(scenario_latency(args, scenario))
    raw = await measure_raw(bench.stub, n, args.raw_warmup, args.deadline - time.monotonic())
    ours = await measure_agentdeck(bench, n)
    figures = {
        "runs": n,
        "raw_wall_s": raw["wall_s"],
        "raw_runs_per_s": n / raw["wall_s"],
        "raw_in_flight": raw["in_flight"],
        "raw_stub_calls_at_once": raw["stub_calls_at_once"],
        "raw_cpu_ms_per_run": raw["cpu_s"] / n * 1000,
        "raw_stub_cpu_ms_per_run": raw["stub_cpu_s"] / n * 1000,
        "raw_peak_rss_mb": raw["peak_rss_bytes"] / 2**20,
        "wall_s": ours["wall_s"],
        "runs_per_s": n / ours["wall_s"],
        "wall_ratio": ours["wall_s"] / raw["wall_s"],
        "in_flight": ours["in_flight"],
        "stub_calls_at_once": ours["stub_calls_at_once"],
        "cpu_ms_per_run": ours["cpu_s"] / n * 1000,
        "cpu_ratio": ours["cpu_s"] / raw["cpu_s"],
        "stub_cpu_ms_per_run": ours["stub_cpu_s"] / n * 1000,
        "worker_memory_peak_mb": ours["worker_memory_peak_bytes"] / 2**20,
        "workers_memory_peak_mb": ours["workers_memory_peak_bytes"] / 2**20,
        "post_p50_ms": ours["post_p50_ms"],
        "post_p95_ms": ours["post_p95_ms"],
        "q2s_p50_ms": ours["q2s_p50_ms"],
        "q2s_p95_ms": ours["q2s_p95_ms"],
    }
    for group, seconds in ours["cpu"].items():
        figures[f"cpu_ms_per_run_{group}"] = seconds / n * 1000
    log(
        f"[{scenario}] N={n}: raw {raw['wall_s']:.2f} s, agentdeck {ours['wall_s']:.2f} s "
        f"(x{figures['wall_ratio']:.2f}), in flight {ours['in_flight']}, CPU/run raw "
        f"{figures['raw_cpu_ms_per_run']:.1f} ms, agentdeck {figures['cpu_ms_per_run']:.1f} ms"
    )
    return figures


async def run_create_scenario(bench: Bench) -> dict[str, float]:
    """N concurrent creations (after an unmeasured round of the same), then the web floor."""
    args = bench.args
    n = scenario_n(args, "create")
    bench.stub.configure(scenario_latency(args, "create"))
    for measured in (False, True):
        await open_connections(bench, n)
        ids, post_ms, first = await post_runs(bench, n, n)
        await settle(bench, ids, first)
        if not measured:
            log(f"[create] warm-up round: POST p50 {percentile(post_ms, 50):.0f} ms")
    floor_ms: list[float] = []

    async def floor_one() -> None:
        t0 = time.perf_counter()
        await bench.api("GET", f"/api/v1/runs/{uuid.uuid4()}/", expect=(404,))
        floor_ms.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(floor_one() for _ in range(n)))
    floor_ms.clear()
    await asyncio.gather(*(floor_one() for _ in range(n)))
    log(
        f"[create] {n} at once: POST p50 {percentile(post_ms, 50):.0f} ms, "
        f"p95 {percentile(post_ms, 95):.0f} ms; GET 404 p50 {percentile(floor_ms, 50):.0f} ms"
    )
    return {
        "runs": n,
        "post_p50_ms": percentile(post_ms, 50),
        "post_p95_ms": percentile(post_ms, 95),
        "floor_p50_ms": percentile(floor_ms, 50),
        "floor_p95_ms": percentile(floor_ms, 95),
    }


async def run_start_scenario(bench: Bench) -> dict[str, float]:
    args = bench.args
    n = scenario_n(args, "start")
    bench.stub.configure(scenario_latency(args, "start"))
    latencies = await measure_idle_latency(bench.api, n, bench.agent_id, args.deadline)
    log(f"[start] {n} sequential runs: queue-to-start p50 {percentile(latencies, 50):.1f} ms")
    return {
        "runs": n,
        "q2s_p50_ms": percentile(latencies, 50),
        "q2s_p95_ms": percentile(latencies, 95),
    }


async def run_scenario(bench: Bench, scenario: str) -> dict[str, float]:
    if scenario in ("latency", "cpu"):
        return await run_burst_scenario(bench, scenario)
    if scenario == "create":
        return await run_create_scenario(bench)
    return await run_start_scenario(bench)


# --- the report ----------------------------------------------------------------------------------


def targets(scenario: str, m: dict[str, float]) -> dict[str, tuple[str, bool]]:
    """{what: (the target in words, met)} for one scenario's medians."""
    if scenario == "latency":
        in_flight_min = min(IN_FLIGHT_MIN, int(0.8 * m["runs"]))
        return {
            "wall": (f"<= {WALL_RATIO_MAX} x raw", m["wall_ratio"] <= WALL_RATIO_MAX),
            "in_flight": (f">= {in_flight_min}", m["in_flight"] >= in_flight_min),
            "memory": (
                f"<= {WORKER_RSS_MAX_MB} MB",
                m["worker_memory_peak_mb"] <= WORKER_RSS_MAX_MB,
            ),
        }
    if scenario == "cpu":
        return {"cpu": (f"<= {CPU_RATIO_MAX} x raw", m["cpu_ratio"] <= CPU_RATIO_MAX)}
    if scenario == "create":
        return {"post": (f"p50 <= {CREATE_P50_MAX_MS} ms", m["post_p50_ms"] <= CREATE_P50_MAX_MS)}
    return {"start": (f"p50 < {START_P50_MAX_MS} ms", m["q2s_p50_ms"] < START_P50_MAX_MS)}


def _cpu_cell(ms_per_run: float, runs: float) -> str:
    return f"{ms_per_run:.1f} ({ms_per_run * runs / 1000:.2f} s)"


def _target_cells(t: dict[str, tuple[str, bool]], key: str) -> tuple[str, str]:
    if key not in t:
        return "", ""
    words, ok = t[key]
    return words, verdict(ok)


def report(scenario: str, m: dict[str, float], args: argparse.Namespace) -> str:
    t = targets(scenario, m)
    lat = scenario_latency(args, scenario)
    lines = [md_row("metric", "raw SDK", "agentdeck", "ratio", "target", "verdict")]
    lines.append(md_rule(6))
    if scenario in ("latency", "cpu"):
        title = f"{scenario}: {m['runs']:.0f} runs, {lat:g} s per model call"
        lines += [
            md_row(
                "wall time, s",
                f"{m['raw_wall_s']:.2f}",
                f"{m['wall_s']:.2f}",
                f"{m['wall_ratio']:.2f}",
                *_target_cells(t, "wall"),
            ),
            md_row("runs/s", f"{m['raw_runs_per_s']:.1f}", f"{m['runs_per_s']:.1f}", "", "", ""),
            md_row(
                "most runs in flight",
                f"{m['raw_in_flight']:.0f}",
                f"{m['in_flight']:.0f}",
                "",
                *_target_cells(t, "in_flight"),
            ),
            md_row(
                "most model calls at once (stub)",
                f"{m['raw_stub_calls_at_once']:.0f}",
                f"{m['stub_calls_at_once']:.0f}",
                "",
                "",
                "",
            ),
            md_row(
                "CPU ms per run, all processes (CPU s)",
                _cpu_cell(m["raw_cpu_ms_per_run"], m["runs"]),
                _cpu_cell(m["cpu_ms_per_run"], m["runs"]),
                f"{m['cpu_ratio']:.2f}",
                *_target_cells(t, "cpu"),
            ),
        ]
        groups = sorted(
            k.removeprefix("cpu_ms_per_run_") for k in m if k.startswith("cpu_ms_per_run_")
        )
        lines += [
            md_row(f"  {g}", "", _cpu_cell(m["cpu_ms_per_run_" + g], m["runs"]), "", "", "")
            for g in groups
        ]
        lines += [
            md_row(
                "  model stub (apart, not in the above)",
                _cpu_cell(m["raw_stub_cpu_ms_per_run"], m["runs"]),
                _cpu_cell(m["stub_cpu_ms_per_run"], m["runs"]),
                "",
                "",
                "",
            ),
            md_row(
                "peak memory MB, the process / the largest worker (1)",
                f"{m['raw_peak_rss_mb']:.0f}",
                f"{m['worker_memory_peak_mb']:.0f}",
                "",
                *_target_cells(t, "memory"),
            ),
            md_row(
                "  peak memory MB, all workers (1)",
                "",
                f"{m['workers_memory_peak_mb']:.0f}",
                "",
                "",
                "",
            ),
            md_row(
                "POST p50 / p95 ms",
                "",
                f"{m['post_p50_ms']:.0f} / {m['post_p95_ms']:.0f}",
                "",
                "",
                "",
            ),
            md_row(
                "queue-to-start p50 / p95 ms",
                "",
                f"{m['q2s_p50_ms']:.0f} / {m['q2s_p95_ms']:.0f}",
                "",
                "",
                "",
            ),
        ]
    elif scenario == "create":
        title = f"create: {m['runs']:.0f} concurrent POST .../runs/, {lat:g} s per model call"
        lines += [
            md_row(
                "POST .../runs/ p50 / p95 ms",
                "",
                f"{m['post_p50_ms']:.0f} / {m['post_p95_ms']:.0f}",
                "",
                *_target_cells(t, "post"),
            ),
            md_row(
                "(floor) GET /api/v1/runs/<unknown>/ p50 / p95 ms",
                "",
                f"{m['floor_p50_ms']:.0f} / {m['floor_p95_ms']:.0f}",
                f"{m['post_p50_ms'] / m['floor_p50_ms']:.2f}",
                "",
                "",
            ),
        ]
    else:
        title = f"start: {m['runs']:.0f} runs one after another on an idle worker"
        lines.append(
            md_row(
                "queue-to-start p50 / p95 ms",
                "",
                f"{m['q2s_p50_ms']:.1f} / {m['q2s_p95_ms']:.1f}",
                "",
                *_target_cells(t, "start"),
            )
        )
    if scenario in ("latency", "cpu"):
        lines.append(
            "\n(1) RSS of a process; of a qcluster (a forking server), its processes' PSS summed, "
            "which counts each shared page once"
        )
    title += f"; load average at the start {m['load_1min']:.2f}"
    return title + "\n" + "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument(
        "--runs", type=int, help="N runs of the latency and cpu scenarios (default 500 and 300)"
    )
    parser.add_argument(
        "--latency",
        type=float,
        help="seconds per model call in every scenario (default: latency 1.0, the others 0)",
    )
    parser.add_argument("--creates", type=int, default=50, help="concurrent POSTs (create)")
    parser.add_argument("--start-runs", type=int, default=20, help="sequential runs (start)")
    parser.add_argument("--engine", choices=["runs_worker", "qcluster"], default="runs_worker")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="runs_worker: K run worker processes; qcluster: Q_WORKERS (default 1)",
    )
    parser.add_argument(
        "--redis", action="store_true", help="the Redis settings (a private redis-server)"
    )
    parser.add_argument("--database-url", default="", help="default: the embedded PostgreSQL")
    parser.add_argument("--repeat", type=int, default=1, help="R repetitions; medians reported")
    parser.add_argument(
        "--submitters",
        type=int,
        default=0,
        help="POSTs in progress at once in the latency and cpu bursts (default 0: all N)",
    )
    parser.add_argument("--warmup", type=int, default=10, help="uncounted agentdeck runs first")
    parser.add_argument("--raw-warmup", type=int, default=5, help="uncounted raw runs first")
    parser.add_argument("--poll", type=float, default=0.5, help="completion poll interval, s")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        type=env_pair,
        metavar="KEY=VALUE",
        help="another setting for every server process (repeatable), e.g. RUN_CONCURRENCY=500",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0,
        help="before each measurement wait up to this many seconds for the machine's CPU to be "
        "under 25%% busy (shared machines); 0: do not wait",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="global limit, s")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    parser.add_argument("--keep-var", action="store_true", help="keep the temporary var dir")
    args = parser.parse_args(argv)
    if min(args.workers, args.repeat, args.creates, args.start_runs) < 1 or (args.runs or 1) < 1:
        parser.error("--runs, --creates, --start-runs, --workers and --repeat must be >= 1")
    args.scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    return args


async def warm_up(bench: Bench, n: int) -> None:
    """Uncounted runs: they wait for the workers to come up and warm every cache and pool."""
    bench.stub.configure(0)
    await open_connections(bench, n)
    ids, _, first = await post_runs(bench, n, n)
    await settle(bench, ids, first)


async def bench_all(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    redis = None
    if args.redis:
        redis = PrivateRedis()
        redis.start()
    stub = StubProcess()
    stub.start()
    deployment = Deployment(
        broker="redis" if redis else "orm",
        workers=args.workers,
        redis_url=redis.url(0) if redis else "",
        keep=args.keep_var,
        extra_env=dict(args.server_env),
        engine=args.engine,
        database_url=args.database_url,
    )
    api = None
    try:
        deployment.start()
        token = deployment.manage("dev_token", "--sub", "bench-user", "--ttl", "86400").strip()
        most = max([scenario_n(args, s) for s in args.scenarios] + [args.warmup])
        api = Api(deployment.url, token, connections=most + CHECK_CONCURRENCY)
        agent_id = await create_agent(api, stub)
        bench = Bench(args, deployment, stub, api, agent_id, redis)
        log(f"[{deployment.label}] warm-up: {args.warmup} runs (waits for the workers)")
        await warm_up(bench, args.warmup)
        results: dict[str, list[dict[str, float]]] = {s: [] for s in args.scenarios}
        for index in range(args.repeat):
            for scenario in args.scenarios:
                log(f"[{scenario}] repetition {index + 1}/{args.repeat}")
                if args.quiet_wait:
                    await asyncio.to_thread(wait_for_quiet, args.quiet_wait)
                figures = {"load_1min": os.getloadavg()[0]}
                figures.update(await run_scenario(bench, scenario))
                results[scenario].append(figures)
        return results
    except BenchError:
        for name in deployment.processes:
            log(f"{name} log:\n{deployment.log_tail(name)}")
        raise
    finally:
        if api is not None:
            await api.close()
        log(f"[{deployment.label}] stopping agentdeck")
        deployment.stop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_raw"]:  # the raw SDK side, started by measure_raw
        base_url, runs, warmup = argv[1], int(argv[2]), int(argv[3])
        raise_open_files_limit()
        print(json.dumps(asyncio.run(raw_child_main(base_url, runs, warmup))))
        return 0
    args = parse_args(argv)
    if args.engine == "runs_worker" and not runs_worker_available():
        log(
            "--engine runs_worker needs `manage.py runs_worker` (the asyncio run worker of issue "
            "#15), which this checkout does not have; use --engine qcluster for the path before it"
        )
        return 1
    # 1,000 connections at once (the benchmark's to daphne, the workers' to the stub) need more
    # descriptors than the usual soft limit; the processes started here inherit it.
    raise_open_files_limit()
    args.deadline = time.monotonic() + args.timeout  # every wait loop gives up at this point
    status, results = run_bench(lambda: bench_all(args), args.timeout)
    if results is None:
        return status

    info = machine()
    print()
    print(
        f"concurrency: engine {args.engine}, {args.workers} worker(s), "
        f"{'Redis' if args.redis else 'ORM broker, PostgreSQL channel layer'}, "
        f"{'external database' if args.database_url else 'embedded PostgreSQL'}; medians of "
        f"{args.repeat}; {info['date']}, nproc {info['nproc']}, Python {info['python']}"
        + "".join(f", {k}={v}" for k, v in args.server_env)
    )
    ok = True
    for scenario, repetitions in results.items():
        m = medians_of(repetitions)
        ok = ok and all(met for _, met in targets(scenario, m).values())
        print()
        print(report(scenario, m, args))
    if args.json:
        payload = {
            "machine": info,
            "argv": sys.argv,
            "results": {
                s: {"repetitions": r, "medians": medians_of(r)} for s, r in results.items()
            },
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
