"""The run engine as deployed: daphne serving the API, separate run worker processes (and the
queue's broker for the rest) on the
ORM broker, and a model server reached over real HTTP."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.e2e.conftest import http
from tests.e2e.test_serve import dev_token
from tests.support.openai_server import FakeOpenAI
from tests.support.redis import redis_url

pytestmark = pytest.mark.e2e


E2E_REDIS_DB = 11


@pytest.fixture(params=["orm", "redis"])
def broker_env(request) -> dict[str, str]:
    """The two production shapes of the queue: django-q2's ORM broker on PostgreSQL (the embedded
    default) and its Redis broker (with the Redis channel layer and cache), on the Redis server
    running on this machine."""
    if request.param == "orm":
        return {}
    import redis

    url = redis_url(E2E_REDIS_DB)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).flushdb()
    except redis.ConnectionError:
        pytest.skip(f"no Redis on {url} (start it: see the env notes in README)")
    return {"REDIS_URL": url}


@pytest.fixture
def model_server():
    with FakeOpenAI() as server:
        yield server


class Api:
    def __init__(self, base_url: str, sub: str = "e2e-user") -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {dev_token(sub, email=f'{sub}@example.com')}"}

    def __call__(self, method: str, path: str, body=None, **headers):
        return http(
            method, f"{self.base_url}{path}", headers={**self.headers, **headers}, json_body=body
        )

    def wait_for(self, run_id: str, statuses: set[str], timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, run = self("GET", f"/api/v1/runs/{run_id}/")
            assert status == 200, run
            if run["status"] in statuses:
                return run
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} never reached {statuses}: {run}")


def make_agent(api: Api, model_server: FakeOpenAI) -> str:
    status, provider = api(
        "POST",
        "/api/v1/providers/",
        {
            "name": "local",
            "kind": "openai_compatible",
            "base_url": model_server.base_url,
            "api_key": "sk-local",
        },
    )
    assert status == 201, provider
    status, agent = api(
        "POST",
        "/api/v1/agents/",
        {
            "name": "Remote",
            "provider": provider["id"],
            "model": "fake-model",
            "instructions": "Answer.",
        },
    )
    assert status == 201, agent
    return agent["id"]


def test_a_run_executes_on_a_worker_process_against_a_real_http_model(
    server_factory, model_server, broker_env
):
    # A waiting request is woken by the run's terminal event, not by a look at the row: make the
    # fallback look (RUN_STREAM_RECHECK_SECONDS) too late to be what answers.
    server = server_factory(
        RUN_HEARTBEAT_SECONDS="0.5", RUN_STREAM_RECHECK_SECONDS="60", **broker_env
    ).start("--no-worker")
    status, ready = http("GET", f"{server.url}/readyz")
    assert status == 200, ready
    assert ready["checks"]["queue"]["info"].startswith("Redis" if broker_env else "ORM")
    server.manage("runs_worker", background=True)
    api = Api(server.url)
    agent_id = make_agent(api, model_server)

    model_server.add_text("Hello from the worker", usage={"input_tokens": 7, "output_tokens": 4})
    model_server.latency = 1.0
    started = time.monotonic()
    status, run = api("POST", f"/api/v1/agents/{agent_id}/runs/", {"input": "hi", "mode": "wait"})
    assert time.monotonic() - started < 30
    model_server.latency = 0.0
    assert status == 200, run
    assert run["status"] == "succeeded"
    assert run["output"] == "Hello from the worker"
    assert run["usage"]["fake-model"]["total_tokens"] == 11

    model_server.add_text("in the background")
    status, queued = api(
        "POST",
        f"/api/v1/agents/{agent_id}/runs/",
        {"input": "again"},
        **{"Idempotency-Key": "bg-1"},
    )
    assert status == 202
    done = api.wait_for(queued["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    status, page = api("GET", f"/api/v1/runs/{queued['id']}/events/")
    seqs = [e["seq"] for e in page["results"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert page["results"][-1]["type"] == "run.succeeded"
    assert page["finished"] is True

    # The same Idempotency-Key returns the same run instead of running again.
    status, replay = api(
        "POST",
        f"/api/v1/agents/{agent_id}/runs/",
        {"input": "again"},
        **{"Idempotency-Key": "bg-1"},
    )
    assert (status, replay["id"]) == (200, queued["id"])


def test_a_killed_workers_run_ends_failed_with_worker_lost(server_factory, model_server):
    server = server_factory(RUN_HEARTBEAT_SECONDS="0.5", RUN_STALE_AFTER_SECONDS="3").start(
        "--no-worker"
    )
    worker = server.manage("runs_worker", background=True)
    api = Api(server.url)
    agent_id = make_agent(api, model_server)

    model_server.add_delay(60)  # the model hangs: the worker is mid-run when it dies
    status, run = api("POST", f"/api/v1/agents/{agent_id}/runs/", {"input": "slow"})
    assert status == 202
    api.wait_for(run["id"], {"running"})

    os.killpg(worker.pid, signal.SIGKILL)  # as an OOM kill or a lost host would
    worker.wait()
    time.sleep(4)  # longer than RUN_STALE_AFTER_SECONDS

    reaped = server.manage("runs_reap")
    assert f"reaped {run['id']}" in reaped.stdout

    final = api.wait_for(run["id"], {"failed"}, timeout=5)
    assert final["error"]["code"] == "worker_lost"
    status, page = api("GET", f"/api/v1/runs/{run['id']}/events/")
    assert page["results"][-1]["type"] == "run.failed"
    assert page["results"][-1]["data"]["code"] == "worker_lost"

    # A second worker that picks up a redelivery of the task must not run it again.
    again = server.manage(
        "shell",
        "-c",
        f"from agentdeck.agents.tasks import execute_run; print(execute_run('{run['id']}'))",
    )
    assert again.stdout.strip().endswith("skipped")


def test_sigterm_drains_the_run_worker_and_a_second_worker_takes_what_was_left(
    server_factory, model_server
):
    """A worker told to stop (SIGTERM, as a deploy or `docker stop` sends) lets the runs it holds
    finish, claims nothing new, and exits 0; runs queued meanwhile wait for another worker."""
    server = server_factory(RUN_HEARTBEAT_SECONDS="0.5", WORKER_DRAIN_SECONDS="30").start(
        "--no-worker"
    )
    worker = server.manage("runs_worker", background=True)
    api = Api(server.url)
    agent_id = make_agent(api, model_server)
    model_server.latency = 3.0  # every model call takes 3 s

    held = [
        api("POST", f"/api/v1/agents/{agent_id}/runs/", {"input": f"r{i}"})[1] for i in range(3)
    ]
    for run in held:
        api.wait_for(run["id"], {"running"})
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    status, later = api("POST", f"/api/v1/agents/{agent_id}/runs/", {"input": "after"})
    assert status == 202

    assert worker.wait(timeout=30) == 0
    for run in held:
        assert api("GET", f"/api/v1/runs/{run['id']}/")[1]["status"] == "succeeded"
    assert api("GET", f"/api/v1/runs/{later['id']}/")[1]["status"] == "queued"

    model_server.latency = 0.0
    server.manage("runs_worker", background=True)
    assert api.wait_for(later["id"], {"succeeded", "failed"})["status"] == "succeeded"


def test_past_the_drain_deadline_runs_end_worker_shutdown_with_their_credits_released(
    server_factory, model_server
):
    server = server_factory(RUN_HEARTBEAT_SECONDS="0.5", WORKER_DRAIN_SECONDS="1").start(
        "--no-worker"
    )
    worker = server.manage("runs_worker", background=True)
    api = Api(server.url)
    agent_id = make_agent(api, model_server)
    model_server.latency = 60.0  # the model hangs

    status, run = api("POST", f"/api/v1/agents/{agent_id}/runs/", {"input": "slow"})
    assert status == 202
    api.wait_for(run["id"], {"running"})
    stopped_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    assert time.monotonic() - stopped_at < 15

    final = api("GET", f"/api/v1/runs/{run['id']}/")[1]
    assert final["status"] == "failed"
    assert final["error"]["code"] == "worker_shutdown"
    status, page = api("GET", f"/api/v1/runs/{run['id']}/events/")
    assert page["results"][-1]["type"] == "run.failed"


def test_two_workers_share_the_queue_and_no_run_executes_twice(server_factory, model_server):
    server = server_factory(RUN_HEARTBEAT_SECONDS="0.5").start("--no-worker")
    workers = [server.manage("runs_worker", background=True) for _ in range(2)]
    api = Api(server.url)
    agent_id = make_agent(api, model_server)
    model_server.latency = 0.3
    server.wait_for_run_workers(2)

    runs = [
        api("POST", f"/api/v1/agents/{agent_id}/runs/", {"input": f"r{i}"})[1] for i in range(40)
    ]
    for run in runs:
        done = api.wait_for(run["id"], {"succeeded", "failed"})
        assert done["status"] == "succeeded", done
        _, page = api("GET", f"/api/v1/runs/{run['id']}/events/")
        types = [e["type"] for e in page["results"]]
        assert types.count("run.started") == 1, types
    code = (
        "from agentdeck.agents.models import AgentRun;"
        f"rows = AgentRun.objects.filter(pk__in={[r['id'] for r in runs]!r});"
        "print(sorted(set(rows.values_list('attempts', flat=True))));"
        "print(len(set(rows.values_list('worker', flat=True))))"
    )
    attempts, worker_count = server.manage("shell", "-v", "0", "-c", code).stdout.split("\n")[:2]
    assert attempts == "[1]"
    assert worker_count == "2"  # both took runs
    assert all(w.poll() is None for w in workers)
