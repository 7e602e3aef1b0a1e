"""Schemathesis over every operation of the OpenAPI document, against the live server.

``manage.py serve`` runs as ``make run`` starts it (daphne, a django-q2 worker, an embedded
PostgreSQL of its own), confined to loopback (``offline/sitecustomize.py``). A user with data
(providers, agents with a tool and a vector index, runs finished and waiting for approval, a
conversation, a processed file, an API key) is made through the API, then the Schemathesis CLI
tests every operation of ``/api/schema/`` as that user, in all four phases (examples, coverage,
fuzzing, and stateful chains along the document's OpenAPI links), with the checks and bounds in
``schemathesis.toml``.

The bar: no 5xx, and every response (status, content type, headers, body) as documented. The
session's terminal summary lists the operations and the examples tried on each; a failure lists
each problem with its operation, check and a curl command that reproduces it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.conftest import SUMMARY
from tests.e2e.conftest import Server
from tests.e2e.test_serve import dev_token

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
SUB = "schemathesis-user"
# ~2-3 minutes on a 2-core machine; a run that takes this long has hung somewhere.
TIMEOUT_SECONDS = 600


# --- the server and its data ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    var_dir = tmp_path_factory.mktemp("schemathesis") / "var"
    server = Server(
        var_dir=var_dir,
        extra_env={
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(HERE / "offline"), os.environ.get("PYTHONPATH")])
            ),
            # One user sends thousands of requests in a few minutes; the limits are not what
            # is under test here (tests/core and tests/accounts test them).
            "THROTTLE_USER_RATE": "100000/min",
            "THROTTLE_ANON_RATE": "100000/min",
            # Its ignored_auth check sends a bad credential to every operation.
            "AUTH_FAILURE_RATE": "100000/min",
            "AUTH_FAILURE_KEY_RATE": "100000/min",
            # Indices the fuzzer creates embed with the dependency-free embedder.
            "EMBEDDER_DEFAULT": "hash",
            # mode=wait runs answer within seconds even when the worker has a queue.
            "RUN_WAIT_TIMEOUT_SECONDS": "5",
        },
    )
    server.start()
    try:
        yield server
    finally:
        if server.process and server.process.poll() is None:
            server.stop(sig=signal.SIGTERM)


class Api:
    def __init__(self, server: Server, token: str) -> None:
        self.client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def __call__(self, method: str, path: str, *expect: int, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        assert response.status_code in (expect or (200,)), (method, path, response.text)
        return response.json()

    def until(self, path: str, done: Callable[[dict], bool], timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            body = self("GET", path)
            if done(body):
                return body
            assert time.monotonic() < deadline, f"{path} never got there: {body}"
            time.sleep(0.2)


def make_user_with_data(api: Api) -> str:
    """One of everything a user owns, so operations on ids reach their real code paths.
    Returns the id of the user's agent."""
    api("GET", "/api/v1/me")  # the user row is created from the token's claims
    shared = next(p for p in api("GET", "/api/v1/providers/")["results"] if p["kind"] == "mock")
    provider = api("POST", "/api/v1/providers/", 201, json={"name": "Own mock", "kind": "mock"})
    tool = api(
        "POST",
        "/api/v1/tools/",
        201,
        json={"name": "calculator", "kind": "builtin", "config": {"builtin": "calculator"}},
    )
    index = api("POST", "/api/v1/vector-indices/", 201, json={"name": "Handbook"})
    file = api(
        "POST",
        "/api/v1/files/",
        201,
        files={"file": ("handbook.txt", b"Expenses are reimbursed within 14 days.\n")},
        data={"vector_index_ids": index["id"], "attributes": '{"team": "finance"}'},
    )
    agent = api(
        "POST",
        "/api/v1/agents/",
        201,
        json={
            "name": "Contract agent",
            "provider": provider["id"],
            "model": "mock-echo",
            "tools": [{"tool": tool["id"]}],
            "vector_index_ids": [index["id"]],
        },
    )
    careful = api(
        "POST",
        "/api/v1/agents/",
        201,
        json={
            "name": "Careful agent",
            "provider": shared["id"],
            "model": "mock-echo",
            "tools": [{"tool": tool["id"], "requires_approval": True}],
        },
    )
    conversation = api(
        "POST", "/api/v1/conversations/", 201, json={"agent": agent["id"], "title": "First"}
    )
    finished = api(
        "POST",
        f"/api/v1/agents/{agent['id']}/runs/",
        200,
        202,  # still running after RUN_WAIT_TIMEOUT_SECONDS: the worker's first run is slow
        json={
            "input": 'calculator {"expression": "6*7"}',
            "mode": "wait",
            "conversation_id": conversation["id"],
        },
    )
    waiting = api(
        "POST",
        f"/api/v1/agents/{careful['id']}/runs/",
        202,
        json={"input": 'calculator {"expression": "1+1"}'},
    )
    api("POST", "/api/v1/api-keys/", 201, json={"name": "nightly", "scopes": ["read"]})
    api.until(f"/api/v1/files/{file['id']}/", lambda f: f["status"] == "ready")
    api.until(f"/api/v1/runs/{waiting['id']}/", lambda r: r["status"] == "requires_action")
    finished = api.until(
        f"/api/v1/runs/{finished['id']}/", lambda r: r["status"] not in {"queued", "running"}
    )
    assert finished["status"] == "succeeded", finished
    return agent["id"]


# --- reading the run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    operation: str
    check: str
    title: str
    message: str
    status: int | None
    request: dict[str, Any]
    response_body: str

    @property
    def body(self) -> str:
        return _decode(self.request.get("body"))

    def curl(self) -> str:
        parts = [f"curl -X {self.request['method']}"]
        for name, values in self.request.get("headers", {}).items():
            for value in values if isinstance(values, list) else [values]:
                if name.lower() == "authorization":  # the token is filtered out of the report
                    parts.append('-H "Authorization: Bearer $TOKEN"')
                else:
                    parts.append(f"-H {shlex.quote(f'{name}: {value}')}")
        if "body" in self.request:
            parts.append(f"--data-binary {shlex.quote(self.body)}")
        parts.append(shlex.quote(self.request["uri"]))
        return " ".join(parts)

    def describe(self) -> str:
        lines = [
            f"{self.operation}: {self.check} ({self.title}), answered {self.status}",
            *(f"    {line}" for line in self.message.strip().splitlines()[:6]),
            f"    response: {self.response_body[:300]}",
            f"    {self.curl()}",
        ]
        return "\n".join(lines)


def _decode(payload: Any) -> str:
    if isinstance(payload, dict) and "$base64" in payload:
        return base64.b64decode(payload["$base64"]).decode("utf-8", "backslashreplace")
    return "" if payload is None else str(payload)


@dataclass
class RunResult:
    report: dict[str, Any]
    examples: dict[str, Counter]
    statuses: Counter
    failures: list[Failure]


def read_run(report_dir: Path, operations: set[str]) -> RunResult:
    """The JSON report for the totals, the NDJSON event stream for each case and check.
    Cases sent with a method the path does not document (probes for a 405) count together."""
    (json_report,) = report_dir.glob("json-*.json")
    (events,) = report_dir.glob("ndjson-*.ndjson")
    examples: dict[str, Counter] = defaultdict(Counter)
    statuses: Counter = Counter()
    failures: dict[tuple, Failure] = {}
    for line in events.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if finished is None:
            continue
        recorder = finished["recorder"]
        for case in recorder.get("cases", {}).values():
            value = case["value"]
            label = f"{value['method']} {value['path']}"
            label = label if label in operations else "(undocumented methods)"
            examples[label][finished["phase"]] += 1
        for interaction in recorder.get("interactions", {}).values():
            statuses[(interaction.get("response") or {}).get("status_code")] += 1
        for case_id, checks in recorder.get("checks", {}).items():
            for check in checks:
                if check["status"] != "failure":
                    continue
                info = check["failure_info"]["failure"]
                interaction = recorder.get("interactions", {}).get(case_id, {})
                response = interaction.get("response") or {}
                failure = Failure(
                    operation=info["operation"],
                    check=check["name"],
                    title=info["title"],
                    message=info.get("message", ""),
                    status=response.get("status_code"),
                    request=interaction.get("request", {}),
                    response_body=_decode(response.get("content")),
                )
                key = (failure.operation, failure.check, failure.status, failure.message)
                failures.setdefault(key, failure)
    return RunResult(
        report=json.loads(json_report.read_text()),
        examples=examples,
        statuses=statuses,
        failures=list(failures.values()),
    )


def summary_lines(result: RunResult, seconds: float, output: str) -> list[str]:
    operations = result.report["operations"]
    cases = result.report["test_cases"]
    # The CLI's own line, e.g. "API Links: 40 covered / 61 selected / 61 total (61 inferred)".
    links = re.search(r"API Links:\s*(.+)", output)
    lines = [
        f"{operations['tested']} of {operations['total']} operations tested, "
        f"{cases['generated']} test cases in {seconds:.0f} s "
        f"(seed {result.report['seed']}, stop: {result.report['stop_reason']})",
        f"stateful links: {links.group(1).strip() if links else 'none followed'}",
        "responses: "
        + ", ".join(f"{n} x {status}" for status, n in sorted(result.statuses.items(), key=str)),
        "examples tried per operation (coverage + fuzzing + stateful):",
    ]
    width = max((len(label) for label in result.examples), default=0)
    for label in sorted(result.examples, key=lambda label: label.split(" ", 1)[::-1]):
        counts = result.examples[label]
        lines.append(
            f"  {label:<{width}}  {sum(counts.values()):>4}  "
            f"({counts['coverage']} + {counts['fuzzing']} + {counts['stateful']})"
        )
    return lines


# --- the test ------------------------------------------------------------------------------------


def test_every_operation_answers_as_documented_with_no_server_error(
    server: Server, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    token = dev_token(
        SUB, email=f"{SUB}@example.com", name="Schemathesis", exp=int(time.time()) + 3600
    )
    agent_id = make_user_with_data(Api(server, token))

    reports = tmp_path / "reports"
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "--no-color",
            "run",
            f"{server.url}/api/schema/",
            "--report",
            "json,ndjson",
            "--report-dir",
            str(reports),
        ],
        # The CLI keeps a cache and an example database in its working directory.
        cwd=tmp_path,
        env={
            **os.environ,
            "AGENTDECK_TOKEN": token,
            "AGENTDECK_AGENT_ID": agent_id,
            "SCHEMATHESIS_HOOKS": str(HERE / "hooks.py"),
        },
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )
    seconds = time.monotonic() - started
    print(run.stdout[-20000:], run.stderr[-5000:], sep="\n")  # shown with the failure below
    assert list(reports.glob("json-*.json")), f"the CLI wrote no report:\n{run.stderr}"
    document = httpx.get(f"{server.url}/api/schema/", params={"format": "json"}).json()
    operations = {
        f"{method.upper()} {path}"
        for path, methods in document["paths"].items()
        for method in methods
        if method in {"get", "post", "put", "patch", "delete"}
    }
    result = read_run(reports, operations)

    summary = request.config.stash.setdefault(SUMMARY, [])
    summary += summary_lines(result, seconds, run.stdout)
    unexpected = list(result.failures)
    if unexpected:
        summary.append(f"{len(unexpected)} failure(s):")
        summary += [f"  {f.operation}: {f.check}, answered {f.status}" for f in unexpected]

    tested = result.report["operations"]
    assert result.report["stop_reason"] == "completed", result.report["stop_reason"]
    assert tested["tested"] == tested["total"] == len(operations), tested
    assert not result.report["errors"], result.report["errors"]
    # A 429 is documented, so the checks pass it; but a limit that bites turns the rest of the
    # run into 429s and tests nothing. The server fixture raises the limits it knows of.
    assert not result.statuses[429], (
        f"{result.statuses[429]} responses were 429: a rate limit the server fixture does not "
        "raise (see its extra_env) cut the run short"
    )
    assert not unexpected, "\n\n".join(f.describe() for f in unexpected)
