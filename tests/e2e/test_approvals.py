"""Human approval across a worker restart: the run waits in requires_action with its SDK state
in the database, the worker process dies, another one resumes it after the approval."""

from __future__ import annotations

import os
import signal

import pytest

from tests.e2e.test_run_engine import Api
from tests.support.openai_server import FakeOpenAI

pytestmark = pytest.mark.e2e


def test_a_run_waiting_for_approval_survives_a_worker_restart(server_factory):
    with FakeOpenAI() as model:
        server = server_factory(RUN_HEARTBEAT_SECONDS="0.5").start("--no-worker")
        first_worker = server.manage("runs_worker", background=True)
        api = Api(server.url, "approver")
        status, provider = api(
            "POST",
            "/api/v1/providers/",
            {"name": "local", "kind": "openai_compatible", "base_url": model.base_url},
        )
        assert status == 201, provider
        status, tool = api(
            "POST",
            "/api/v1/tools/",
            {"name": "calc", "kind": "builtin", "config": {"builtin": "calculator"}},
        )
        assert status == 201, tool
        status, agent = api(
            "POST",
            "/api/v1/agents/",
            {
                "name": "Careful",
                "provider": provider["id"],
                "model": "fake-model",
                "tools": [{"tool": tool["id"], "requires_approval": True}],
            },
        )
        assert status == 201, agent
        assert agent["tools"] == [{"tool": tool["id"], "requires_approval": True}]

        model.add_tool_call("calc", {"expression": "6*7"})
        model.add_text("The answer is 42.")
        status, run = api("POST", f"/api/v1/agents/{agent['id']}/runs/", {"input": "what is 6*7?"})
        assert status == 202
        waiting = api.wait_for(run["id"], {"requires_action", "failed"})
        assert waiting["status"] == "requires_action", waiting
        [pending] = waiting["pending_approvals"]

        os.killpg(first_worker.pid, signal.SIGKILL)  # the worker goes away while the run waits
        first_worker.wait()
        server.manage("runs_worker", background=True)  # a fresh worker process

        status, queued = api(
            "POST",
            f"/api/v1/runs/{run['id']}/approvals/",
            {"decisions": [{"call_id": pending["call_id"], "approved": True}]},
        )
        assert status == 200, queued
        done = api.wait_for(run["id"], {"succeeded", "failed"})
        assert done["status"] == "succeeded", done
        assert done["output"] == "The answer is 42."
        status, calls = api("GET", f"/api/v1/runs/{run['id']}/tool-calls/")
        assert [(c["tool_name"], c["output"], c["status"]) for c in calls] == [
            ("calc", "42", "succeeded")
        ]
        status, page = api("GET", f"/api/v1/runs/{run['id']}/events/")
        types = [e["type"] for e in page["results"]]
        assert (
            types.index("approval.required")
            < types.index("run.resumed")
            < types.index("run.succeeded")
        )
