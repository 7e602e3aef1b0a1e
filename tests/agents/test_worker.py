"""The run worker (agentdeck.agents.worker) in this process: many runs on one loop over a real
HTTP model, claims that keep the per-user cap under races, heartbeats that stop cancelled and
reaped runs mid model call, and the drain."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection

from agentdeck.agents.models import AgentRun, RunEvent
from agentdeck.agents.runtime import events as ev
from agentdeck.agents.services.agents import agent_create
from agentdeck.agents.services.providers import provider_create
from agentdeck.agents.services.runs import (
    agent_run_cancel,
    agent_run_reap_stale,
    agent_run_start,
    agent_runs_claim,
)
from agentdeck.agents.worker import RunWorker, WorkerConfig
from agentdeck.core.preload import run_worker_process
from agentdeck.credits.models import UserCredits
from agentdeck.credits.services import credits_grant
from tests.factories import ModelPriceFactory, UserFactory
from tests.support.openai_server import FakeOpenAI

pytestmark = pytest.mark.django_db(transaction=True)

Status = AgentRun.Status


@pytest.fixture
def model():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def agent(user, model):
    # Priced, with credits to pay: every run holds credits, and what it leaves must be released.
    ModelPriceFactory()
    credits_grant(user=user, amount=1_000_000_000, idempotency_key="worker-tests")
    provider = provider_create(
        actor=user, name="local", kind="openai_compatible", base_url=model.base_url
    )
    return agent_create(owner=user, name="Helper", provider=provider, model="fake-model")


@contextlib.contextmanager
def running_worker(*, debug: bool = False, **overrides) -> Iterator[RunWorker]:
    """A RunWorker serving on a loop in a thread of its own, stopped (drained) on exit."""
    values = {
        "concurrency": 200,
        "per_user_cap": 0,
        "db_threads": 4,
        "poll_seconds": 0.2,
        "heartbeat_seconds": 0.2,
        "drain_seconds": 10.0,
        **overrides,
    }
    worker = RunWorker(WorkerConfig(**values), name="test-worker:1")
    loop = asyncio.new_event_loop()
    if debug:
        loop.set_debug(True)
        loop.slow_callback_duration = 0.2
    ready = threading.Event()
    failure: list[BaseException] = []

    def main() -> None:
        try:
            loop.run_until_complete(worker.serve(ready=ready.set))
        except BaseException as exc:  # surfaced by the test below
            failure.append(exc)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="run-worker")
    thread.start()
    assert ready.wait(30), "the worker did not start"
    try:
        yield worker
    finally:
        if not loop.is_closed():
            worker.stop_threadsafe()
        thread.join(60)
        assert not thread.is_alive(), "the worker did not stop"
        assert not failure, failure


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def statuses(runs) -> list[str]:
    return list(
        AgentRun.objects.filter(pk__in=[r.id for r in runs]).values_list("status", flat=True)
    )


def terminal(runs) -> bool:
    return all(s in ("succeeded", "failed", "cancelled") for s in statuses(runs))


def connections_to_test_database() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_one_worker_holds_many_runs_at_once_on_a_few_connections(user, agent, model):
    n = 40
    model.latency = 1.0  # each model call takes a second
    runs = [agent_run_start(user=user, agent=agent, input=f"q{i}")[0] for i in range(n)]
    most_connections = 0
    started = time.monotonic()
    with running_worker(db_threads=4) as worker:
        while not terminal(runs) and time.monotonic() - started < 30:
            most_connections = max(most_connections, connections_to_test_database())
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        assert statuses(runs) == ["succeeded"] * n
        # One at a time this is 40 s; all at once a little over one model call.
        assert elapsed < 15, elapsed
    assert worker.peak_in_flight == n
    assert worker.executed == n  # counted once settled, so read after the drain
    # Its database threads, its LISTEN connection and the channel layer's, not one per run.
    assert most_connections <= 4 + 2, most_connections
    for run in runs:
        types = list(RunEvent.objects.filter(run=run).values_list("type", flat=True))
        assert types.count(ev.RUN_STARTED) == 1
        assert types[-1] == ev.RUN_SUCCEEDED
    assert set(
        AgentRun.objects.filter(pk__in=[r.id for r in runs]).values_list("attempts", flat=True)
    ) == {1}


def test_a_run_queued_later_is_picked_up_at_once_by_notify(user, agent):
    with running_worker(poll_seconds=30) as worker:  # no poll would find it in time
        time.sleep(0.3)  # the worker is idle, listening
        queued_at = time.monotonic()
        run, _ = agent_run_start(user=user, agent=agent, input="hi")
        wait_until(lambda: terminal([run]), 10, "the run to finish")
        assert time.monotonic() - queued_at < 5
        # Counted once settle returns, a moment after its commit made the status terminal.
        wait_until(lambda: worker.executed == 1, 5, "the worker to count the run")
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    assert (run.started_at - run.created_at).total_seconds() < 1


def funded_user():
    user = UserFactory()
    credits_grant(user=user, amount=1_000_000_000, idempotency_key=f"grant-{user.pk}")
    return user


def test_claims_keep_the_per_user_cap_and_let_other_users_through(agent):
    a, b = funded_user(), funded_user()
    a_runs = [agent_run_start(user=a, agent=agent, input=str(i))[0] for i in range(5)]
    b_run, _ = agent_run_start(user=b, agent=agent, input="b")

    first = agent_runs_claim(limit=10, worker="w:1", per_user_cap=2)
    # a's two oldest (a's runs were queued first, all of them before b's), and b's one.
    assert set(first) == {a_runs[0].id, a_runs[1].id, b_run.id}
    assert agent_runs_claim(limit=10, worker="w:1", per_user_cap=2) == []

    AgentRun.objects.filter(pk=a_runs[0].id).update(status=Status.SUCCEEDED)
    assert agent_runs_claim(limit=10, worker="w:1", per_user_cap=2) == [a_runs[2].id]
    # Without a cap, the rest.
    assert set(agent_runs_claim(limit=10, worker="w:1", per_user_cap=0)) == {
        a_runs[3].id,
        a_runs[4].id,
    }


def test_concurrent_claims_take_each_run_once_and_never_exceed_the_cap(agent):
    users = [funded_user() for _ in range(3)]
    for user in users:
        for i in range(10):
            agent_run_start(user=user, agent=agent, input=str(i))

    def claim(worker: int) -> list:
        taken = []
        for _ in range(5):
            taken += agent_runs_claim(limit=3, worker=f"w:{worker}", per_user_cap=4)
        connection.close()
        return taken

    with ThreadPoolExecutor(8) as pool:
        claimed = [run_id for taken in pool.map(claim, range(8)) for run_id in taken]

    assert len(claimed) == len(set(claimed)) == 12  # each run once; 4 per user
    for user in users:
        assert AgentRun.objects.filter(owner=user, status=Status.RUNNING).count() == 4


def test_a_cancel_stops_a_run_in_the_middle_of_a_model_call(user, agent, model):
    model.latency = 30
    before = UserCredits.objects.get(user=user)
    run, _ = agent_run_start(user=user, agent=agent, input="slow")
    with running_worker() as worker:
        wait_until(lambda: statuses([run]) == ["running"], 10, "the run to start")
        time.sleep(0.3)  # inside the model call
        asked = time.monotonic()
        agent_run_cancel(run=AgentRun.objects.get(pk=run.pk))
        wait_until(lambda: terminal([run]), 10, "the run to stop")
        assert time.monotonic() - asked < 3  # the next heartbeat, not the end of the call
        wait_until(lambda: not worker.in_flight, 5, "the worker to let go")
    run.refresh_from_db()
    assert run.status == Status.CANCELLED
    after = UserCredits.objects.get(user=user)  # the hold released, nothing captured
    assert (after.balance, after.reserved) == (before.balance, before.reserved)


def test_a_run_reaped_under_the_worker_is_stopped_and_keeps_the_verdict(user, agent, model):
    model.latency = 30
    run, _ = agent_run_start(user=user, agent=agent, input="slow")
    with running_worker() as worker:
        wait_until(lambda: statuses([run]) == ["running"], 10, "the run to start")
        assert agent_run_reap_stale(stale_after=timedelta(seconds=-1)) == [str(run.id)]
        wait_until(lambda: not worker.in_flight, 5, "the worker to drop the run")
    run.refresh_from_db()
    assert (run.status, run.error_code) == (Status.FAILED, "worker_lost")
    types = list(RunEvent.objects.filter(run=run).values_list("type", flat=True))
    assert types.count(ev.RUN_FAILED) == 1
    assert ev.RUN_CANCELLED not in types


def test_a_draining_worker_lets_its_runs_finish(user, agent, model):
    model.latency = 1.5
    runs = [agent_run_start(user=user, agent=agent, input=str(i))[0] for i in range(3)]
    with running_worker(drain_seconds=20) as worker:
        wait_until(lambda: statuses(runs) == ["running"] * 3, 10, "the runs to start")
        worker.stop_threadsafe()
        time.sleep(0.2)
        later, _ = agent_run_start(user=user, agent=agent, input="after the stop")
    assert statuses(runs) == ["succeeded"] * 3
    later.refresh_from_db()
    assert later.status == Status.QUEUED  # left for another worker


def test_runs_still_going_after_the_drain_end_worker_shutdown_with_credits_released(
    user, agent, model
):
    model.latency = 60
    before = UserCredits.objects.get(user=user)
    runs = [agent_run_start(user=user, agent=agent, input=str(i))[0] for i in range(2)]
    with running_worker(drain_seconds=0.5) as worker:
        wait_until(lambda: statuses(runs) == ["running"] * 2, 10, "the runs to start")
        stopped_at = time.monotonic()
        worker.stop_threadsafe()
    assert time.monotonic() - stopped_at < 10
    for run in AgentRun.objects.filter(pk__in=[r.id for r in runs]):
        assert (run.status, run.error_code) == (Status.FAILED, "worker_shutdown")
        assert RunEvent.objects.filter(run=run).order_by("-seq").first().type == ev.RUN_FAILED
    after = UserCredits.objects.get(user=user)
    assert (after.balance, after.reserved) == (before.balance, before.reserved)


def test_the_worker_never_blocks_its_event_loop(user, agent, model, caplog):
    """asyncio's debug mode logs every callback that holds the loop longer than
    slow_callback_duration (0.2 s here): ORM work, TLS set-up or JSON of a big event done on the
    loop would show up."""
    model.latency = 0.3
    runs = [agent_run_start(user=user, agent=agent, input=str(i))[0] for i in range(20)]
    run_worker_process()  # what manage.py runs_worker loads before its first claim
    # A full collection of the test session's heap (a thousand tests' garbage) stops every
    # thread for half a second: not the worker's doing, and a worker process's heap is small.
    # Collected and frozen first, the collector sees only what the runs allocate.
    gc.collect()
    gc.freeze()
    try:
        with caplog.at_level(logging.WARNING, logger="asyncio"), running_worker(debug=True):
            wait_until(lambda: terminal(runs), 30, "the runs to finish")
    finally:
        gc.unfreeze()
    assert statuses(runs) == ["succeeded"] * 20
    slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert slow == []


def test_mode_wait_gives_up_after_the_wait_timeout_with_the_run_as_it_stands(
    user, user_client, agent, settings
):
    settings.RUN_WAIT_TIMEOUT_SECONDS = 0.5  # and no worker: the run stays queued
    response = user_client.post(
        f"/api/v1/agents/{agent.id}/runs/", {"input": "hi", "mode": "wait"}, format="json"
    )
    assert response.status_code == 202
    assert response.json()["status"] == "queued"


def test_events_of_concurrent_runs_are_written_together_each_log_gapless(user, agent, model):
    """BatchingRunSink: writes that arrive together go in one statement for all the runs in it;
    every run's log still has consecutive seqs from 1, each event once, in order."""
    from agentdeck.agents.services import run_sink as sinks

    statements = []
    real = sinks.run_events_append_many

    def counting(*, items):
        statements.append(len(items))
        return real(items=items)

    model.latency = 0.2
    runs = [agent_run_start(user=user, agent=agent, input=str(i))[0] for i in range(30)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sinks, "run_events_append_many", counting)
        with running_worker():
            wait_until(lambda: terminal(runs), 30, "the runs to finish")
    assert statuses(runs) == ["succeeded"] * 30
    assert max(statements) > 1  # some statement carried the events of several runs
    for run in runs:
        seqs = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, len(seqs) + 1))
        types = list(
            RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True)
        )
        assert types[0] == ev.RUN_STARTED
        assert types[-1] == ev.RUN_SUCCEEDED
        assert types.count(ev.RUN_SUCCEEDED) == 1


def test_a_batch_that_fails_for_one_run_fails_only_that_run(user, agent):
    """One run's write failing (not a connection error) inside a shared statement is retried run
    by run: the others are written."""
    import asyncio as aio

    from agentdeck.agents.services.run_sink import BatchingRunSink
    from agentdeck.agents.services.runs import agent_run_claim
    from agentdeck.core.db_threads import DatabaseThreads, use_database_threads

    good, _ = agent_run_start(user=user, agent=agent, input="good")
    assert agent_run_claim(run_id=good.id)
    missing = "00000000-0000-0000-0000-000000000001"  # no such run
    sink = BatchingRunSink()

    async def main():
        threads = DatabaseThreads(2)
        try:
            with use_database_threads(threads):
                return await aio.gather(
                    sink.append_async(good.id, [(ev.AGENT_UPDATED, {"agent": "A"}, False, None)]),
                    sink.append_async(missing, [(ev.AGENT_UPDATED, {"agent": "B"}, False, None)]),
                    # Fails the shared statement (not a uuid): each run is then written alone.
                    sink.append_async("run-7", [(ev.AGENT_UPDATED, {"agent": "C"}, False, None)]),
                    return_exceptions=True,
                )
        finally:
            threads.close()

    written, failed, invalid = aio.run(main())
    assert written.seq == 1
    assert isinstance(failed, AgentRun.DoesNotExist)
    assert isinstance(invalid, Exception)
    assert not isinstance(invalid, AgentRun.DoesNotExist)
    assert list(RunEvent.objects.filter(run=good).values_list("type", flat=True)) == [
        ev.AGENT_UPDATED
    ]


def test_runs_claimed_together_begin_together_and_a_lost_commit_starts_none_twice(
    user, agent, model
):
    """agent_runs_begin writes the first events of a claim's runs in one statement; when its
    answer is lost after the commit (the connection died), each run begins on its own and finds
    its run.started already there."""
    import psycopg

    from agentdeck.agents.services import runs as service

    real = service.agent_runs_begin
    calls = []

    def committed_then_lost(*, run_ids):
        calls.append(len(run_ids))
        real(run_ids=run_ids)
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    runs = [agent_run_start(user=user, agent=agent, input=str(i))[0] for i in range(5)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, "agent_runs_begin", committed_then_lost)
        with running_worker():
            wait_until(lambda: terminal(runs), 30, "the runs to finish")
    assert calls == [5]
    assert statuses(runs) == ["succeeded"] * 5
    for run in runs:
        types = list(RunEvent.objects.filter(run=run).values_list("type", flat=True))
        assert types.count(ev.RUN_STARTED) == 1, types


def test_runs_whose_claim_answer_was_lost_are_taken_up_not_left_to_the_reaper(user, agent):
    """The claim committed, then the connection died before the worker heard which runs it
    holds: it finds them by its name and runs each once."""
    import psycopg

    from agentdeck.agents.services import runs as service

    real = service.agent_runs_claim
    lost = []

    def committed_then_lost(**kwargs):
        claimed = real(**kwargs)
        if claimed and not lost:
            lost.extend(claimed)
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return claimed

    runs = [agent_run_start(user=user, agent=agent, input=str(i))[0] for i in range(4)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, "agent_runs_claim", committed_then_lost)
        with running_worker():
            wait_until(lambda: terminal(runs), 30, "the runs to finish")
    assert sorted(map(str, lost)) == sorted(str(r.id) for r in runs)
    assert statuses(runs) == ["succeeded"] * 4
    for run in runs:
        types = list(RunEvent.objects.filter(run=run).values_list("type", flat=True))
        assert types.count(ev.RUN_STARTED) == 1, types


def test_a_batch_queued_as_the_last_writer_finishes_is_still_written(monkeypatch):
    """The run whose future a writer resolves runs before that writer's task is done: the next
    batch it queues at once must get a writer (one waited for ever, holding its run, when the
    writers were counted by their tasks' done-callbacks)."""
    from uuid import uuid4

    from agentdeck.agents.runtime.sink import AppendResult
    from agentdeck.agents.services import run_sink

    async def direct(func, /, *args, **kwargs):  # the database call, without the database
        await asyncio.sleep(0)
        return func(*args, **kwargs)

    def append_many(*, items):
        return {str(run_id): AppendResult(len(batch), "running", False) for run_id, batch in items}

    monkeypatch.setattr(run_sink, "run_db", direct)
    monkeypatch.setattr(run_sink, "run_events_append_many", append_many)
    sink = run_sink.BatchingRunSink(max_in_flight=1)
    run_id = uuid4()
    event = ("run.step", {}, False, None)

    async def one_run() -> list[AppendResult]:
        return [await sink.append_async(run_id, [event]) for _ in range(3)]

    results = asyncio.run(asyncio.wait_for(one_run(), 5))
    assert [r.seq for r in results] == [1, 1, 1]
