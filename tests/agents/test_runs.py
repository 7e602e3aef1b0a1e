"""The run lifecycle through the API and the worker entry point, on the offline mock model."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ

from agentdeck.agents.models import (
    AgentMetadata,
    AgentRun,
    AgentVersion,
    ConversationItem,
    RunEvent,
)
from agentdeck.agents.services.agents import agent_update
from agentdeck.agents.services.conversations import conversation_create
from agentdeck.agents.services.runs import agent_run_reap_stale, agent_run_start
from agentdeck.agents.tasks import execute_run

pytestmark = pytest.mark.django_db


def runs_url(agent) -> str:
    return f"/api/v1/agents/{agent.id}/runs/"


def start(client, agent, body=None, **headers):
    return client.post(
        runs_url(agent),
        body if body is not None else {"input": "hello world"},
        format="json",
        **headers,
    )


def test_background_run_is_queued_for_the_run_workers_and_a_worker_completes_it(
    user_client, mock_agent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = start(user_client, mock_agent)

    assert response.status_code == 202
    run = response.json()
    assert run["status"] == "queued"
    assert run["agent_version"] == 1
    # The run row is the unit of work: run workers claim it from agent_runs (woken by NOTIFY);
    # nothing goes through django-q2's broker.
    assert OrmQ.objects.count() == 0
    assert AgentMetadata.objects.get(agent=mock_agent).run_count == 1

    assert execute_run(run["id"]) == "succeeded"

    done = user_client.get(f"/api/v1/runs/{run['id']}/").json()
    assert done["status"] == "succeeded"
    assert done["output"] == "Echo: hello world"
    assert done["last_agent"] == "Echo"
    assert done["error"] is None
    assert done["usage"] == {
        "mock-echo": {
            "requests": 1,
            "input_tokens": 2,
            "cached_input_tokens": 0,
            "output_tokens": 3,
            "reasoning_tokens": 0,
            "total_tokens": 5,
        }
    }
    timings = done["timings"]
    assert (
        timings["queued_at"]
        <= timings["started_at"]
        <= timings["first_token_at"]
        <= timings["finished_at"]
    )


def test_events_are_gapless_ordered_and_end_with_the_terminal_event(user, user_client, mock_agent):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="one two three")
    execute_run(str(run.id))

    page = user_client.get(f"/api/v1/runs/{run.id}/events/").json()
    events = page["results"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types[0] == "run.started"
    assert types[-1] == "run.succeeded"
    assert {"agent.updated", "message.delta", "message.completed", "usage"} <= set(types)
    assert (
        "".join(e["data"]["delta"] for e in events if e["type"] == "message.delta")
        == "Echo: one two three"
    )
    assert page["finished"] is True

    tail = user_client.get(f"/api/v1/runs/{run.id}/events/?after=3").json()
    assert [e["seq"] for e in tail["results"]] == [e["seq"] for e in events[3:]]
    assert (
        user_client.get(f"/api/v1/runs/{run.id}/events/?after={len(events)}").json()["results"]
        == []
    )


@pytest.mark.parametrize("after", ["abc", "-1", "1.5"])
def test_non_numeric_after_cursor_is_400(user, user_client, mock_agent, after):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    response = user_client.get(f"/api/v1/runs/{run.id}/events/?after={after}")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert response.json()["errors"][0]["field"] == "after"


def test_a_task_delivered_twice_runs_once(user, mock_agent):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    assert execute_run(str(run.id)) == "succeeded"
    assert execute_run(str(run.id)) == "skipped"
    assert RunEvent.objects.filter(run=run, type="run.started").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_claim_the_run_exactly_once(user, mock_agent):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    results: list[str] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(execute_run(str(run.id)))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["skipped", "skipped", "skipped", "succeeded"]
    assert RunEvent.objects.filter(run=run, type="run.succeeded").count() == 1


def test_runs_pin_the_version_they_started_with(user, user_client, mock_agent):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    agent_update(agent=mock_agent, actor=user, instructions="Now different.")
    assert AgentVersion.objects.filter(agent=mock_agent).count() == 2

    execute_run(str(run.id))
    run.refresh_from_db()
    assert run.agent_version.number == 1
    assert user_client.get(f"/api/v1/runs/{run.id}/").json()["agent_version"] == 1


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [{"input": ""}, {"input": "   "}, {"input": []}, {}, {"input": 5}, {"input": ["not an item"]}],
)
def test_empty_or_malformed_input_is_400(user_client, mock_agent, body):
    response = start(user_client, mock_agent, body)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "input"
    assert AgentRun.objects.count() == 0


def test_input_over_the_limit_is_413(user_client, mock_agent, settings):
    settings.RUN_INPUT_MAX_BYTES = 1000
    response = start(user_client, mock_agent, {"input": "x" * 2000})
    assert response.status_code == 413
    assert response.json()["code"] == "input_too_large"
    assert response.json()["limit_bytes"] == 1000
    assert AgentRun.objects.count() == 0


def test_max_turns_over_the_limit_is_400(user_client, mock_agent):
    response = start(user_client, mock_agent, {"input": "x", "max_turns": 10_000})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "max_turns"


def test_another_users_private_agent_and_run_answer_404(user, other_user, mock_agent, client_for):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    stranger = client_for(other_user)
    for response in (
        start(stranger, mock_agent),
        stranger.get(f"/api/v1/runs/{run.id}/"),
        stranger.get(f"/api/v1/runs/{run.id}/events/"),
        stranger.post(f"/api/v1/runs/{run.id}/cancel/"),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert stranger.get("/api/v1/runs/").json()["results"] == []


def test_public_agents_are_runnable_by_everyone(user, other_user, mock_agent, client_for):
    agent_update(agent=mock_agent, actor=user, visibility="public")
    response = start(client_for(other_user), mock_agent)
    assert response.status_code == 202
    run = AgentRun.objects.get(pk=response.json()["id"])
    assert run.owner == other_user


# --- idempotency ---------------------------------------------------------------------------------


def test_same_idempotency_key_and_body_returns_the_same_run(user_client, mock_agent):
    first = start(user_client, mock_agent, HTTP_IDEMPOTENCY_KEY="k-1")
    again = start(user_client, mock_agent, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert AgentRun.objects.count() == 1


def test_same_idempotency_key_with_another_body_is_409(user_client, mock_agent):
    start(user_client, mock_agent, HTTP_IDEMPOTENCY_KEY="k-2")
    response = start(
        user_client, mock_agent, {"input": "something else"}, HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    assert AgentRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_idempotency_key_create_one_run(user, mock_agent):
    ids: list[str] = []
    barrier = threading.Barrier(6)

    def request() -> None:
        barrier.wait()
        try:
            run, _ = agent_run_start(
                user=user, agent=mock_agent, input="same", idempotency_key="race"
            )
            ids.append(str(run.id))
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 6
    assert len(set(ids)) == 1
    assert AgentRun.objects.count() == 1


# --- cancel --------------------------------------------------------------------------------------


def test_cancelling_a_queued_run_ends_it_cancelled_and_the_worker_skips_it(
    user, user_client, mock_agent
):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    response = user_client.post(f"/api/v1/runs/{run.id}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert execute_run(str(run.id)) == "skipped"
    assert list(RunEvent.objects.filter(run=run).values_list("type", flat=True)) == [
        "run.cancelled"
    ]


def test_cancelling_a_finished_run_is_409(user, user_client, mock_agent):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    execute_run(str(run.id))
    response = user_client.post(f"/api/v1/runs/{run.id}/cancel/")
    assert response.status_code == 409
    assert response.json()["code"] == "run_not_cancellable"


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_running_run_stops_it_between_events(user, client_for, mock_agent, settings):
    settings.MOCK_MODEL_DELAY_PER_TOKEN = 0.05  # ~100 words take ~5 s to stream
    run, _ = agent_run_start(user=user, agent=mock_agent, input=" ".join(["word"] * 100))
    outcome: list[str] = []
    worker = threading.Thread(
        target=lambda: (outcome.append(execute_run(str(run.id))), connection.close())
    )
    worker.start()
    try:
        deadline = timezone.now() + timedelta(seconds=10)
        while not RunEvent.objects.filter(run=run, type="message.delta").exists():
            assert timezone.now() < deadline, "run never started streaming"
        response = client_for(user).post(f"/api/v1/runs/{run.id}/cancel/")
        assert response.status_code == 200
        assert response.json()["cancel_requested"] is True
    finally:
        worker.join(timeout=20)
    assert outcome == ["cancelled"]
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert run.finished_at is not None
    types = list(RunEvent.objects.filter(run=run).values_list("type", flat=True))
    assert types[-1] == "run.cancelled"
    assert "run.succeeded" not in types


# --- conversations -------------------------------------------------------------------------------


def test_a_conversation_carries_history_between_runs(user, user_client, mock_agent):
    conversation = conversation_create(owner=user, agent=mock_agent)
    for text in ("first message", "second message"):
        run, _ = agent_run_start(user=user, agent=mock_agent, input=text, conversation=conversation)
        assert execute_run(str(run.id)) == "succeeded"

    items = user_client.get(f"/api/v1/conversations/{conversation.id}/items/").json()["results"]
    assert [i["position"] for i in items] == list(range(len(items)))
    texts = [str(i["data"]) for i in items]
    assert "first message" in texts[0]
    assert any("second message" in t for t in texts[2:])
    assert ConversationItem.objects.filter(conversation=conversation, run=run).exists()


def test_second_run_on_a_busy_conversation_is_409(user, user_client, mock_agent):
    conversation = conversation_create(owner=user, agent=mock_agent)
    body = {"input": "x", "conversation_id": str(conversation.id)}
    assert start(user_client, mock_agent, body).status_code == 202
    response = start(user_client, mock_agent, {**body, "input": "y"})
    assert response.status_code == 409
    assert response.json()["code"] == "conversation_busy"


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_on_one_conversation_let_exactly_one_through(user, mock_agent):
    from agentdeck.agents.exceptions import ConversationBusy

    conversation = conversation_create(owner=user, agent=mock_agent)
    outcomes: list[str] = []
    barrier = threading.Barrier(5)

    def request(i: int) -> None:
        barrier.wait()
        try:
            agent_run_start(user=user, agent=mock_agent, input=f"m{i}", conversation=conversation)
            outcomes.append("started")
        except ConversationBusy:
            outcomes.append("busy")
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["busy"] * 4 + ["started"]


def test_another_users_conversation_cannot_be_used(user, other_user, mock_agent, client_for):
    conversation = conversation_create(owner=user, agent=mock_agent)
    response = start(
        client_for(other_user), mock_agent, {"input": "x", "conversation_id": str(conversation.id)}
    )
    assert response.status_code == 404  # the private agent itself is invisible to them


# --- the reaper ----------------------------------------------------------------------------------


def test_reaper_fails_runs_whose_worker_stopped_heartbeating(user, mock_agent):
    stale, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    fresh, _ = agent_run_start(user=user, agent=mock_agent, input="y")
    old = timezone.now() - timedelta(minutes=5)
    AgentRun.objects.filter(pk=stale.pk).update(status="running", started_at=old, heartbeat_at=old)
    AgentRun.objects.filter(pk=fresh.pk).update(
        status="running", started_at=old, heartbeat_at=timezone.now()
    )

    assert agent_run_reap_stale() == [str(stale.id)]
    assert agent_run_reap_stale() == []  # idempotent

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, stale.error_code) == ("failed", "worker_lost")
    assert fresh.status == "running"
    assert RunEvent.objects.filter(run=stale).last().type == "run.failed"


def test_reaper_is_scheduled_on_the_queue():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="agents.reap_stale_runs")
    assert schedule.func == "agentdeck.agents.tasks.reap_stale_runs"
    assert schedule.schedule_type == Schedule.MINUTES


def test_run_list_filters(user, user_client, mock_agent):
    a, _ = agent_run_start(user=user, agent=mock_agent, input="a")
    b, _ = agent_run_start(user=user, agent=mock_agent, input="b")
    execute_run(str(a.id))
    assert [
        r["id"] for r in user_client.get("/api/v1/runs/?status=succeeded").json()["results"]
    ] == [str(a.id)]
    assert [r["id"] for r in user_client.get("/api/v1/runs/?status=queued").json()["results"]] == [
        str(b.id)
    ]
    assert len(user_client.get(f"/api/v1/runs/?agent={mock_agent.id}").json()["results"]) == 2
    future = (timezone.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert user_client.get(f"/api/v1/runs/?created_after={future}").json()["results"] == []
    assert user_client.get("/api/v1/runs/?status=bogus").status_code == 400


def test_nul_characters_in_input_do_not_break_the_run(user, mock_agent):
    # PostgreSQL's jsonb refuses \u0000; it is replaced, not allowed to crash the run.
    run, _ = agent_run_start(user=user, agent=mock_agent, input="binary\x00junk")
    assert execute_run(str(run.id)) == "succeeded"
    run.refresh_from_db()
    assert run.output == "Echo: binary\ufffdjunk"


def test_demo_seed_is_idempotent_and_runnable_by_anyone(staff_user, other_user, client_for):
    from agentdeck.agents.services.demo import demo_seed

    agent = demo_seed(owner=staff_user)
    assert demo_seed(owner=staff_user).pk == agent.pk
    response = start(client_for(other_user), agent, {"input": "hi demo"})
    assert response.status_code == 202
    assert execute_run(response.json()["id"]) == "succeeded"
    assert AgentRun.objects.get(pk=response.json()["id"]).output == "Echo: hi demo"


def test_a_litellm_agent_without_the_extra_installed_fails_cleanly(user, mock_agent):
    from agentdeck.agents.services.agents import agent_create
    from agentdeck.agents.services.providers import provider_create

    try:
        import litellm  # noqa: F401

        pytest.skip("the litellm extra is installed here")
    except ImportError:
        pass
    provider = provider_create(actor=user, name="lite", kind="litellm")
    agent = agent_create(owner=user, name="Lite", provider=provider, model="anthropic/claude-x")
    run, _ = agent_run_start(user=user, agent=agent, input="x")
    assert execute_run(str(run.id)) == "failed"
    run.refresh_from_db()
    assert run.error_code == "provider_unavailable"
    assert "LiteLLM" in run.error_message


def test_a_disabled_provider_fails_the_run_with_provider_unavailable(
    user, mock_agent, mock_provider
):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    mock_provider.enabled = False
    mock_provider.save()
    assert execute_run(str(run.id)) == "failed"
    run.refresh_from_db()
    assert run.error_code == "provider_unavailable"


def test_the_run_list_costs_the_same_queries_for_one_run_or_many(
    user, user_client, mock_agent, django_assert_max_num_queries
):
    agent_run_start(user=user, agent=mock_agent, input="one")
    user_client.get("/api/v1/runs/")  # warm: the user row exists now
    with django_assert_max_num_queries(8) as one:
        user_client.get("/api/v1/runs/")
    for i in range(10):
        agent_run_start(user=user, agent=mock_agent, input=f"more {i}")
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert len(user_client.get("/api/v1/runs/").json()["results"]) == 11


@pytest.mark.parametrize(("limit", "inline"), [(4000, False), (70_000, True)])
def test_big_events_are_published_whole_only_under_the_layers_limit(
    user, mock_agent, settings, monkeypatch, limit, inline
):
    """The Redis layer carries a run's final output whole (70,000 by default); PostgreSQL's
    NOTIFY (4,000) gets a wake-up and followers read the log."""
    from agentdeck.agents.services.runs import events

    published = []
    monkeypatch.setattr(
        events, "publish_on_commit", lambda group, message: published.append(message)
    )
    settings.RUN_EVENT_LIVE_MAX_CHARS = limit
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    events.run_event_append(run_id=run.id, type="message.completed", data={"text": "z" * 10_000})
    [message] = published
    assert message["seq"] == 1
    if inline:
        assert message["data"] == {"text": "z" * 10_000}
        assert "in_log" not in message
    else:
        assert message["data"] is None
        assert message["in_log"] is True


def test_starting_a_run_reads_only_what_it_needs(
    user_client, mock_agent, django_assert_max_num_queries
):
    """The agent row with its provider (not its tool, handoff and index links), the prices, the
    version, the run, the count, the NOTIFY that wakes the run workers (it replaced the broker's
    INSERT after commit, which this count did not see); the response's cost comes from the hold
    just written."""
    start(user_client, mock_agent)  # first request: caches, sessions, ...
    with django_assert_max_num_queries(9):
        response = start(user_client, mock_agent)
    assert response.status_code == 202
    assert response.json()["cost"] is None  # mock-echo has no price: no hold


@pytest.mark.django_db(transaction=True)
def test_events_written_together_take_consecutive_seqs_in_order(
    user, mock_agent, settings, monkeypatch
):
    """run_events_append: one statement for a burst of events, each its own seq, in order,
    with single appends and other bursts racing it on other connections: no gap, no duplicate,
    and each burst's events stay together and in their order."""
    from agentdeck.agents.models import RunEvent
    from agentdeck.agents.services.runs import events as event_log
    from agentdeck.core.jsonsafe import pg_json_safe
    from tests.support.threads import in_threads

    published = []
    monkeypatch.setattr(
        event_log, "publish_on_commit", lambda group, message: published.append(message)
    )
    settings.RUN_EVENT_LIVE_MAX_CHARS = 100
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    result = event_log.run_events_append(
        run_id=run.id,
        events=[
            ("usage", {"input_tokens": 3}, False),
            ("message.delta", {"delta": "he\x00llo"}, True),  # NUL: jsonb refuses it
            ("message.completed", {"text": "y" * 500}, False),
        ],
    )
    assert result.seq == 3
    assert result.status == "queued"
    assert not result.cancel_requested
    rows = list(RunEvent.objects.filter(run=run).order_by("seq"))
    assert [(e.seq, e.type) for e in rows] == [
        (1, "usage"),
        (2, "message.delta"),
        (3, "message.completed"),
    ]
    safe = pg_json_safe({"delta": "he\x00llo"})
    assert rows[1].data == safe
    assert rows[0].created_at <= rows[1].created_at <= rows[2].created_at
    assert [m["seq"] for m in published] == [1, 2, 3]
    assert published[1]["data"] == safe
    assert published[2]["data"] is None  # over the live limit: read from the log
    assert published[2]["in_log"] is True
    assert [m["created_at"] for m in published] == [e.created_at.isoformat() for e in rows]
    run.refresh_from_db()
    assert run.first_token_at is not None

    def writer(i: int):
        for j in range(5):
            if i % 2:
                event_log.run_event_append(run_id=run.id, type="one", data={"w": i, "j": j})
            else:
                event_log.run_events_append(
                    run_id=run.id,
                    events=[("burst", {"w": i, "j": j, "k": k}, False) for k in range(3)],
                )

    outcomes = in_threads(6, writer)
    assert not [o for o in outcomes if isinstance(o, Exception)]
    events = list(RunEvent.objects.filter(run=run, seq__gt=3).order_by("seq"))
    assert [e.seq for e in events] == list(range(4, 4 + 3 * 5 * 3 + 3 * 5))
    bursts = [e for e in events if e.type == "burst"]
    for first in range(0, len(bursts), 3):
        three = bursts[first : first + 3]
        assert [e.data["k"] for e in three] == [0, 1, 2]
        assert three[2].seq - three[0].seq == 2  # written together, numbered together


def test_the_event_writer_writes_a_burst_together_and_stops_at_a_failed_write(
    user, mock_agent, monkeypatch
):
    """The worker's EventWriter: events appended while a write is in flight go together in
    the next one, in order; a write that fails is raised by drain and by the next append, and
    nothing queued after it is written."""
    from asgiref.sync import async_to_sync

    from agentdeck.agents.models import RunEvent
    from agentdeck.agents.runtime.event_writer import EventWriter
    from agentdeck.agents.services.run_sink import ServiceRunSink

    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    writes, seen = [], []
    sink = ServiceRunSink()
    real = sink.append

    def counting(run_id, batch):
        writes.append([event_type for event_type, *_ in batch])
        return real(run_id, batch)

    monkeypatch.setattr(sink, "append", counting)

    async def burst():
        writer = EventWriter(run.id, sink, seen.append)
        await writer.append("e0", {"i": 0})  # returns at once: nothing awaits the write
        await asyncio.sleep(0)  # the write of e0 starts
        for i in range(1, 6):
            await writer.append(f"e{i}", {"i": i})
        await writer.drain()

    async_to_sync(burst)()
    assert [e.type for e in RunEvent.objects.filter(run=run).order_by("seq")] == [
        f"e{i}" for i in range(6)
    ]
    assert writes == [["e0"], ["e1", "e2", "e3", "e4", "e5"]]
    assert [o.seq for o in seen] == [1, 6]

    def failing(run_id, batch):
        raise RuntimeError("database gone")

    monkeypatch.setattr(sink, "append", failing)

    async def broken():
        writer = EventWriter(run.id, sink, seen.append)
        await writer.append("lost", {})
        with pytest.raises(RuntimeError, match="database gone"):
            await writer.drain()
        with pytest.raises(RuntimeError, match="database gone"):
            await writer.append("after", {})

    async_to_sync(broken)()
    assert RunEvent.objects.filter(run=run).count() == 6
