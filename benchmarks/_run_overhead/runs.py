"""The workload (a two-turn calculator run), its raw SDK baseline, and how agentdeck's runs of it
are submitted, awaited and checked; ``concurrency.py`` and ``run_floor.py`` use them too.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from _support import (
    Api,
    BenchError,
    BenchTimeout,
    Deployment,
)

INPUT = 'calculator {"expression": "2+2"}'
EXPECTED_OUTPUT = "calculator returned: 4"
AGENT_NAME = "bench-calculator"
TERMINAL = {"succeeded", "failed", "cancelled"}


def make_raw_agent():
    """The same agent the server builds from the version snapshot: no instructions, the mock
    model, the builtin calculator. Importing these two modules needs no Django."""
    import agents

    from agentdeck.agents.runtime.mock_model import MockModel
    from agentdeck.agents.runtime.tools import calculator

    agents.set_tracing_disabled(True)
    return agents.Agent(name=AGENT_NAME, model=MockModel(), tools=[calculator])


async def measure_raw(
    agent, n: int, concurrency: int, *, streamed: bool = False
) -> tuple[float, float]:
    """(runs/s, CPU ms per run of this process)."""
    from agents import Runner

    limit = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with limit:
            if streamed:
                result = Runner.run_streamed(agent, INPUT)
                async for _ in result.stream_events():
                    pass
            else:
                result = await Runner.run(agent, INPUT)
            if result.final_output != EXPECTED_OUTPUT:
                raise BenchError(f"raw SDK run answered {result.final_output!r}")

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - started), (time.process_time() - cpu) / n * 1000


async def create_agent(api: Api, deployment: Deployment) -> tuple[str, str]:
    """The benchmark agent: mock provider, ``mock-echo``, the builtin calculator attached.
    Returns (agent id, how the tool was attached)."""
    provider = await api(
        "POST", "/api/v1/providers/", {"name": "bench-mock", "kind": "mock"}, expect=(201,)
    )
    body = {"name": AGENT_NAME, "provider": provider["id"], "model": "mock-echo"}
    response = await api.client.post(
        "/api/v1/tools/",
        json={"name": "calculator", "kind": "builtin", "config": {"builtin": "calculator"}},
    )
    if response.status_code == 201:  # the Tools API: attach the tool record to the agent
        body["tools"] = [{"tool": response.json()["id"]}]
        agent = await api("POST", "/api/v1/agents/", body, expect=(201,))
        return agent["id"], "Tools API"
    if response.status_code != 404:
        raise BenchError(f"POST /api/v1/tools/ -> {response.status_code}: {response.text[:500]}")
    agent = await api("POST", "/api/v1/agents/", body, expect=(201,))
    agent_id = str(uuid.UUID(agent["id"]))  # validated: it is interpolated into code below
    # A server without Tool records in its API (before the Tools API landed): the runtime already
    # builds tools from the version snapshot's `tools` list, so put the builtin calculator there,
    # directly in this deployment's database, as the API now does.
    deployment.manage(
        "shell",
        "-c",
        "from agentdeck.agents.models import Agent, AgentVersion; "
        f"a = Agent.objects.get(pk='{agent_id}'); "
        "v = AgentVersion.objects.get(agent=a, number=a.current_version); "
        "v.snapshot = {**v.snapshot, 'tools': [{'kind': 'builtin', 'name': 'calculator'}]}; "
        "v.save(update_fields=['snapshot']); print('calculator attached')",
    )
    return agent_id, "snapshot edit (no Tools API)"


async def submit(api: Api, agent_id: str) -> dict[str, Any]:
    return await api(
        "POST", f"/api/v1/agents/{agent_id}/runs/", {"input": INPUT, "mode": "background"}, (202,)
    )


async def wait_idle(api: Api, agent_id: str, deadline: float, interval: float) -> float:
    """Poll until none of the agent's runs is queued or running; returns that moment (wall
    clock). A run never goes back to queued, so an empty `queued` page followed by an empty
    `running` page means everything submitted before the first query has settled."""
    while True:
        if time.monotonic() > deadline:
            raise BenchTimeout("runs did not all finish before the deadline")
        page = await api("GET", f"/api/v1/runs/?agent={agent_id}&status=queued&page_size=1")
        if not page["results"]:
            page = await api("GET", f"/api/v1/runs/?agent={agent_id}&status=running&page_size=1")
            if not page["results"]:
                return time.time()
        await asyncio.sleep(interval)


async def fetch_runs(api: Api, agent_id: str, ids: set[str], since: float) -> list[dict]:
    """The runs with these ids, from the list endpoint (200 a page, newest first)."""
    after = datetime.fromtimestamp(since - 1, tz=UTC).isoformat().replace("+00:00", "Z")
    path: str | None = f"/api/v1/runs/?agent={agent_id}&created_after={after}&page_size=200"
    found: dict[str, dict] = {}
    for _ in range(len(ids) // 200 + 5):  # bounded: a few pages more than needed
        if path is None:
            break
        page = await api("GET", path)
        for run in page["results"]:
            if run["id"] in ids:
                found[run["id"]] = run
        path = page.get("next")
    if len(found) != len(ids):
        raise BenchError(f"found {len(found)} of {len(ids)} runs in the list endpoint")
    return list(found.values())


def check_runs(runs: list[dict]) -> None:
    bad = [r for r in runs if r["status"] != "succeeded" or r["output"] != EXPECTED_OUTPUT]
    if bad:
        sample = {k: bad[0].get(k) for k in ("id", "status", "output", "error")}
        raise BenchError(f"{len(bad)} of {len(runs)} runs did not succeed as expected: {sample}")


async def check_events(api: Api, run_ids: list[str], concurrency: int) -> None:
    """Every run's log: seq 1..n without gaps, a tool call and its result, run.succeeded last,
    and executed once: one ``run.started`` event, of the run's first attempt."""
    limit = asyncio.Semaphore(concurrency)
    problems: list[str] = []

    async def one(run_id: str) -> None:
        async with limit:
            page = await api("GET", f"/api/v1/runs/{run_id}/events/?limit=1000")
        events = page["results"]
        seqs = [e["seq"] for e in events]
        types = [e["type"] for e in events]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"{run_id}: seqs {seqs}")
        elif not types or types[-1] != "run.succeeded" or not page["finished"]:
            problems.append(f"{run_id}: ends with {types[-1:]} finished={page['finished']}")
        elif "tool_call.started" not in types or "tool_call.completed" not in types:
            problems.append(f"{run_id}: no tool call in {types}")
        else:
            attempts = [e["data"].get("attempt") for e in events if e["type"] == "run.started"]
            if attempts != [1]:
                problems.append(f"{run_id}: executed more than once (run.started {attempts})")

    await asyncio.gather(*(one(run_id) for run_id in run_ids))
    if problems:
        raise BenchError(f"{len(problems)} run logs are wrong, e.g. {problems[0]}")
