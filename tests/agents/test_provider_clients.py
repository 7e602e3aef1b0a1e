"""Provider clients are shared (agentdeck.agents.runtime.clients): the runs of one event loop
reuse one client per provider, and its connections, over the real HTTP path
(tests/support/openai_server.py); a changed or disabled provider gets a new client and the old
one is closed; a run on a loop of its own closes its clients before the loop ends; every client
of the process shares one SSL context."""

from __future__ import annotations

import asyncio
import gc
import json
import warnings
import weakref

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from agentdeck.agents.models import AgentRun
from agentdeck.agents.runtime import clients
from agentdeck.agents.runtime.clients import ClientPool, client_pool_scope
from agentdeck.agents.services.agents import agent_create
from agentdeck.agents.services.providers import provider_create, provider_update
from agentdeck.agents.services.runs import agent_run_start
from agentdeck.agents.tasks import execute_run
from agentdeck.analytics.models import RunSpan
from agentdeck.core.redaction import REDACTED
from tests.support.openai_server import FakeOpenAI

pytestmark = pytest.mark.django_db

API_KEY = "k3y-UNSHAPED-7f9c2a61d4e8"
HEADER_VALUE = "tenant-5e8a1b9c0d"


@pytest.fixture
def server():
    with FakeOpenAI(echo_credentials=True) as fake:
        yield fake


@pytest.fixture(params=["openai_compatible", "openai"])
def provider(request, user, server):
    return provider_create(
        actor=user,
        name=f"shared-{request.param}",
        kind=request.param,
        base_url=server.base_url,
        api_key=API_KEY,
        extra_headers={"X-Tenant-Key": HEADER_VALUE},
    )


@pytest.fixture
def agent(user, provider):
    return agent_create(
        owner=user, name="Helper", provider=provider, model="fake-model", instructions="x"
    )


@pytest.fixture(autouse=True)
def _no_retries(settings):
    settings.PROVIDER_MAX_RETRIES = 0


@pytest.fixture
def http_clients(monkeypatch):
    """Every HTTP client built under a provider client, in order, with the SSL context each got."""
    built: list = []

    class Recording(clients._HttpClient):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.verify = kwargs["verify"]
            built.append(self)

    monkeypatch.setattr(clients, "_HttpClient", Recording)
    return built


def start(user, agent) -> str:
    run, _ = agent_run_start(user=user, agent=agent, input="hello")
    return str(run.id)


def in_one_loop(steps, **pool_kwargs) -> ClientPool:
    """Each step (a run id to execute, or a callable) in turn, on ONE event loop holding one
    client pool, as a run worker holds them. ``execute_run`` called from ``sync_to_async``
    runs its coroutine on that loop (asgiref), inheriting the pool."""

    async def main() -> ClientPool:
        async with client_pool_scope(**pool_kwargs) as pool:
            for step in steps:
                if callable(step):
                    result = step(pool)
                    if asyncio.iscoroutine(result):
                        await result
                else:
                    await sync_to_async(execute_run)(step)
        return pool

    return async_to_sync(main)()


async def closed(http_client, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not http_client.is_closed:
            await asyncio.sleep(0.01)


def statuses(*run_ids: str) -> list[str]:
    return [AgentRun.objects.get(pk=r).status for r in run_ids]


def test_runs_on_one_loop_share_one_client_and_its_connection(user, agent, server, http_clients):
    first, second = start(user, agent), start(user, agent)

    pool = in_one_loop([first, second])

    assert statuses(first, second) == ["succeeded", "succeeded"]
    assert pool.built == 1
    assert len(http_clients) == 1
    requests = server.model_requests()
    assert len(requests) == 2
    # The second run's call went over the first one's TCP connection (kept alive in the pool).
    assert requests[0].client_port == requests[1].client_port
    assert http_clients[0].is_closed  # the pool closed it with itself


def test_a_changed_provider_gets_a_new_client_and_the_old_one_is_closed(
    user, agent, provider, server, http_clients
):
    first, second = start(user, agent), start(user, agent)
    seen: dict = {}

    def rotate(pool):
        provider_update(provider=provider, actor=user, api_key="k3y-ROTATED-0a1b2c3d4e")

    async def after_grace(pool):
        await closed(http_clients[0])  # retire_after=0: on the loop's next turns
        seen["new open"] = not http_clients[1].is_closed

    pool = in_one_loop([first, sync_to_async(rotate), second, after_grace], retire_after=0)

    assert statuses(first, second) == ["succeeded", "succeeded"]
    assert pool.built == 2
    assert seen == {"new open": True}
    assert [r.api_key for r in server.model_requests()] == [API_KEY, "k3y-ROTATED-0a1b2c3d4e"]
    assert all(c.is_closed for c in http_clients)


def test_a_replaced_client_stays_open_for_the_runs_using_it_until_its_grace_ends(
    user, agent, provider, server, http_clients
):
    first, second = start(user, agent), start(user, agent)
    seen: dict = {}

    def move(pool):
        # Another base URL (the same server under another name): a new client.
        provider_update(
            provider=provider, actor=user, base_url=f"http://localhost:{server.port}/v1"
        )

    def check(pool):
        seen["old open"] = not http_clients[0].is_closed
        seen["clients"] = pool.size

    pool = in_one_loop([first, sync_to_async(move), second, check])

    assert statuses(first, second) == ["succeeded", "succeeded"]
    assert pool.built == 2
    assert seen == {"old open": True, "clients": 1}
    assert all(c.is_closed for c in http_clients)  # closed with the pool, grace or not


def test_a_disabled_provider_has_its_client_retired(user, agent, provider, http_clients):
    first, second = start(user, agent), start(user, agent)

    def disable(pool):
        provider_update(provider=provider, actor=user, enabled=False)

    async def after_grace(pool):
        await closed(http_clients[0])
        assert pool.size == 0

    pool = in_one_loop([first, sync_to_async(disable), second, after_grace], retire_after=0)

    assert statuses(first, second) == ["succeeded", "failed"]
    assert AgentRun.objects.get(pk=second).error_code == "provider_unavailable"
    assert pool.built == 1


def test_a_run_on_a_loop_of_its_own_closes_its_clients(user, agent, monkeypatch):
    # The django-q2 path: execute() runs the run under async_to_sync, a new loop per run. A
    # client left open there would warn of its sockets and transports once collected.
    built: list = []

    class Recording(clients._HttpClient):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            built.append(weakref.ref(self))  # no reference that would keep it from collection

    monkeypatch.setattr(clients, "_HttpClient", Recording)
    run_ids = [start(user, agent), start(user, agent)]
    gc.collect()  # what earlier tests left
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for run_id in run_ids:
            execute_run(run_id)
        gc.collect()

    assert statuses(*run_ids) == ["succeeded", "succeeded"]
    assert len(built) == 2  # a pool, and so a client, per call
    assert all(ref() is None for ref in built)
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not unclosed, unclosed


def test_every_client_shares_one_ssl_context(user, agent, monkeypatch, http_clients):
    import httpx2

    made = []
    real = httpx2.create_ssl_context

    def counting(*args, **kwargs):
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(clients, "_ssl_context", None)
    monkeypatch.setattr(httpx2, "create_ssl_context", counting)
    run_ids = [start(user, agent) for _ in range(3)]
    for run_id in run_ids:
        execute_run(run_id)  # a pool, and so a client, per run

    assert statuses(*run_ids) == ["succeeded"] * 3
    assert len(http_clients) == 3
    assert len(made) == 1
    assert http_clients[0].verify is http_clients[1].verify is http_clients[2].verify


@pytest.fixture
def _spans_recorded(settings):
    from agents import set_tracing_disabled

    settings.OPENAI_TRACING_EXPORT = False
    set_tracing_disabled(False)
    yield
    set_tracing_disabled(True)


@pytest.mark.usefixtures("_spans_recorded")
def test_a_run_reusing_a_client_still_redacts_its_providers_secrets(user, agent, server):
    # The header value is shaped like no credential: only the run's redaction scope, which the
    # provider's secrets join when its client is taken from the pool, can redact it.
    first, second = start(user, agent), start(user, agent)

    def fail_next(pool):
        server.add_error(status=401, message="upstream says no")

    pool = in_one_loop([first, fail_next, second])

    assert pool.built == 1
    assert statuses(first, second) == ["succeeded", "failed"]
    assert any(HEADER_VALUE in json.dumps(r.headers) for r in server.requests)
    errors = json.dumps([s.error for s in RunSpan.objects.filter(run_id=second) if s.error])
    assert "upstream says no" in errors
    assert REDACTED in errors
    assert HEADER_VALUE not in errors
    assert API_KEY not in errors


def test_listing_models_inside_a_pool_uses_a_client_of_its_own(user, provider, server):
    from agentdeck.agents.services.providers import provider_list_models

    def listing(pool):
        models, known = provider_list_models(provider=provider)
        assert known
        assert "fake-model" in models
        assert pool.size == 0  # nothing taken from (nor closed in) the pool

    in_one_loop([sync_to_async(listing)])


def test_clients_no_run_takes_are_retired_after_a_while():
    async def main():
        pool = ClientPool(retire_after=0, idle_after=0.01)
        closed_clients = []

        class Client:
            async def close(self):
                closed_clients.append(self)

        build = Client
        a = pool.get("p1", timeout=1, max_retries=0, fingerprint="x", build=build)
        assert pool.get("p1", timeout=1, max_retries=0, fingerprint="x", build=build) is a
        await asyncio.sleep(0.05)
        b = pool.get("p2", timeout=1, max_retries=0, fingerprint="y", build=build)
        async with asyncio.timeout(5):
            while not closed_clients:
                await asyncio.sleep(0.01)
        assert closed_clients == [a]
        await pool.aclose()
        assert closed_clients == [a, b]
        with pytest.raises(RuntimeError):
            pool.get("p2", timeout=1, max_retries=0, fingerprint="y", build=build)

    asyncio.run(main())
