from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import agents
import pytest
from agents.memory import Session, SessionSettings
from agents.testing import ScriptedModel, assistant_message
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection, transaction

from agentdeck.agents.models import AgentRun, Conversation, ConversationItem
from agentdeck.agents.runtime.session import DjangoSession
from tests.factories import AgentRunFactory, ConversationFactory

agents.set_tracing_disabled(True)

_T = TypeVar("_T")


def call(method: Callable[..., Awaitable[_T]], *args: Any) -> _T:
    """Await a session method from a sync test.

    ``async_to_sync`` runs the session's ORM work back on the calling thread, so it shares that
    thread's connection (and the test's transaction). ``asyncio.run`` would send it to asgiref's
    one process-wide thread instead: another connection, which cannot see uncommitted test data,
    and which every thread shares, so concurrent writers would never really overlap.
    """
    return async_to_sync(method)(*args)


def message(text: str, role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": text}


def stored(conversation: Conversation) -> list[ConversationItem]:
    return list(ConversationItem.objects.filter(conversation=conversation).order_by("position"))


def assert_gapless(conversation: Conversation) -> list[ConversationItem]:
    items = stored(conversation)
    conversation.refresh_from_db()
    assert [item.position for item in items] == list(range(len(items)))
    assert conversation.next_position == len(items)
    return items


def run_together(*tasks: Callable[[], _T]) -> list[_T]:
    """Run ``tasks`` on their own threads, released at the same moment by a barrier. Each thread
    has its own database connection (closed when its task ends), like separate workers."""
    barrier = threading.Barrier(len(tasks))

    def run(task: Callable[[], _T]) -> _T:
        try:
            barrier.wait(timeout=10)
            return task()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        futures = [pool.submit(run, task) for task in tasks]
        return [future.result(timeout=60) for future in futures]


@pytest.fixture
def conversation(db) -> Conversation:
    return ConversationFactory()


@pytest.fixture
def close_shared_thread_connection() -> Iterator[None]:
    yield

    # Under asyncio.run the ORM work runs on asgiref's process-wide thread; its connection would
    # otherwise outlive the test and keep the test database from being dropped. (A function, not
    # the bound ``connection.close``: that would resolve to this thread's connection.)
    def close() -> None:
        connection.close()

    asyncio.run(sync_to_async(close)())


# --- the protocol, one caller at a time ------------------------------------------------------


def test_implements_the_sdk_session_protocol(conversation):
    session = DjangoSession(conversation.pk)

    assert isinstance(session, Session)
    assert session.session_id == str(conversation.pk)
    assert session.session_settings == SessionSettings()


def test_add_get_pop_clear_roundtrip(conversation):
    session = DjangoSession(conversation.pk)
    assert call(session.get_items) == []
    assert call(session.pop_item) is None

    call(session.add_items, [message("one"), message("two", "assistant")])
    call(session.add_items, [message("three")])
    call(session.add_items, [])

    assert call(session.get_items) == [
        message("one"),
        message("two", "assistant"),
        message("three"),
    ]
    # The latest N, still in chronological order.
    assert call(session.get_items, 2) == [message("two", "assistant"), message("three")]
    assert call(session.get_items, 10) == call(session.get_items)
    assert call(session.get_items, 0) == []

    assert call(session.pop_item) == message("three")
    assert call(session.get_items) == [message("one"), message("two", "assistant")]

    call(session.clear_session)
    assert call(session.get_items) == []
    assert_gapless(conversation)

    call(session.add_items, [message("after clear")])
    assert [item.position for item in stored(conversation)] == [0]


def test_positions_stay_gapless_across_adds_and_pops(conversation):
    session = DjangoSession(conversation.pk)

    call(session.add_items, [message(f"a{i}") for i in range(3)])
    call(session.pop_item)
    call(session.pop_item)
    call(session.add_items, [message("b0"), message("b1")])
    call(session.pop_item)
    call(session.add_items, [message("c0")])

    items = assert_gapless(conversation)
    assert [item.data["content"] for item in items] == ["a0", "b0", "c0"]


def test_items_are_stored_as_given_and_tagged_with_the_run(conversation):
    run = AgentRunFactory(conversation=conversation)
    item = {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": '{"temperature": 21.5, "unit": "C", "note": "Zürich ☀"}',
    }

    call(DjangoSession(conversation.pk, run_id=run.pk).add_items, [message("hi"), item])
    call(DjangoSession(conversation.pk).add_items, [message("no run")])

    items = stored(conversation)
    assert [i.data for i in items] == [message("hi"), item, message("no run")]
    assert [i.run_id for i in items] == [run.pk, run.pk, None]


def test_pydantic_items_are_stored_as_their_json_dump(conversation):
    output = assistant_message("Hello!", item_id="msg_1")

    call(DjangoSession(conversation.pk).add_items, [output])

    assert [i.data for i in stored(conversation)] == [
        output.model_dump(mode="json", exclude_unset=True)
    ]


def test_session_settings_limit_applies_when_no_limit_is_given(conversation):
    session = DjangoSession(conversation.pk, session_settings=SessionSettings(limit=2))
    call(session.add_items, [message(str(i)) for i in range(5)])

    assert call(session.get_items) == [message("3"), message("4")]
    assert call(session.get_items, 4) == [message(str(i)) for i in range(1, 5)]
    as_dict = DjangoSession(conversation.pk, session_settings={"limit": 1})
    assert call(as_dict.get_items) == [message("4")]


def test_unknown_conversation_reads_empty_and_refuses_writes(db):
    session = DjangoSession(uuid.uuid4())

    assert call(session.get_items) == []
    with pytest.raises(Conversation.DoesNotExist):
        call(session.add_items, [message("lost")])


# --- concurrent writers ----------------------------------------------------------------------

WRITERS = 8


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_get_contiguous_gapless_batches():
    conversation = ConversationFactory()

    def writer(w: int) -> Callable[[], None]:
        batch = [{"role": "user", "content": f"w{w}-{k}"} for k in range(3)]
        return lambda: call(DjangoSession(conversation.pk).add_items, batch)

    run_together(*(writer(w) for w in range(WRITERS)))

    items = assert_gapless(conversation)
    assert len(items) == 3 * WRITERS
    labels = [item.data["content"].split("-") for item in items]
    batches = [labels[i : i + 3] for i in range(0, len(labels), 3)]
    # Each writer's batch sits at three consecutive positions, in its own order.
    for batch in batches:
        assert [k for _, k in batch] == ["0", "1", "2"]
        assert len({w for w, _ in batch}) == 1
    assert sorted(batch[0][0] for batch in batches) == sorted(f"w{w}" for w in range(WRITERS))


@pytest.mark.django_db(transaction=True)
def test_concurrent_pops_and_adds_stay_consistent():
    conversation = ConversationFactory()
    seed = [message(f"seed-{k}") for k in range(6)]
    call(DjangoSession(conversation.pk).add_items, seed)
    added = {w: [message(f"w{w}-{k}") for k in range(3)] for w in range(WRITERS)}

    def adder(w: int) -> Callable[[], list[Any]]:
        return lambda: [call(DjangoSession(conversation.pk).add_items, added[w])]

    def popper() -> list[Any]:
        session = DjangoSession(conversation.pk)
        return [call(session.pop_item), call(session.pop_item)]

    results = run_together(*(adder(w) for w in range(WRITERS)), *(popper for _ in range(4)))

    popped = [item for result in results[WRITERS:] for item in result if item is not None]
    items = assert_gapless(conversation)
    remaining = [item.data for item in items]
    everything = seed + [item for batch in added.values() for item in batch]
    assert len(remaining) == len(everything) - len(popped)
    assert sorted(map(str, remaining + popped)) == sorted(map(str, everything))
    # Pops only take the tail, so what is left of each batch is a contiguous prefix of it.
    for batch in [seed, *added.values()]:
        kept = [i for i, data in enumerate(remaining) if data in batch]
        assert [remaining[i] for i in kept] == batch[: len(kept)]
        assert kept == list(range(kept[0], kept[0] + len(kept)) if kept else [])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("operation", ["add_items", "pop_item", "clear_session"])
def test_writes_wait_for_the_conversation_row_lock(operation):
    conversation = ConversationFactory()
    call(DjangoSession(conversation.pk).add_items, [message("first")])
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        # The lock mode the session itself takes: another writer of the same conversation.
        try:
            with transaction.atomic():
                Conversation.objects.select_for_update(no_key=True).get(pk=conversation.pk)
                locked.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    def write() -> None:
        session = DjangoSession(conversation.pk)
        args = ([message("second")],) if operation == "add_items" else ()
        try:
            call(getattr(session, operation), *args)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        holder = pool.submit(hold_lock)
        assert locked.wait(timeout=10)
        writer = pool.submit(write)
        with pytest.raises(FutureTimeout):
            writer.result(timeout=0.5)
        assert [i.data for i in stored(conversation)] == [message("first")]
        release.set()
        writer.result(timeout=10)
        holder.result(timeout=10)

    expected = {
        "add_items": [message("first"), message("second")],
        "pop_item": [],
        "clear_session": [],
    }[operation]
    assert [i.data for i in assert_gapless(conversation)] == expected


@pytest.mark.django_db(transaction=True)
def test_cancelled_pop_waits_for_its_outcome():
    conversation = ConversationFactory()
    call(DjangoSession(conversation.pk).add_items, [message("one"), message("two")])
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        try:
            with transaction.atomic():
                Conversation.objects.select_for_update(no_key=True).get(pk=conversation.pk)
                locked.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    async def cancel_while_blocked() -> None:
        task = asyncio.ensure_future(DjangoSession(conversation.pk).pop_item())
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.sleep(0.3)
        # The DELETE is still waiting for the lock: the caller must not be told "cancelled" yet.
        assert not task.done()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    with ThreadPoolExecutor(max_workers=1) as pool:
        holder = pool.submit(hold_lock)
        assert locked.wait(timeout=10)
        call(cancel_while_blocked)
        holder.result(timeout=10)

    assert [i.data for i in assert_gapless(conversation)] == [message("one")]


# --- with the SDK ----------------------------------------------------------------------------


def text_of(item: dict[str, Any]) -> str:
    content = item["content"]
    return content if isinstance(content, str) else "".join(part["text"] for part in content)


@pytest.mark.django_db(transaction=True)
def test_runner_sees_the_previous_turn(close_shared_thread_connection):
    conversation = ConversationFactory()
    model = ScriptedModel(
        [
            [assistant_message("Hi there.", item_id="msg_1")],
            [assistant_message("You said hello.", item_id="msg_2")],
        ]
    )
    agent = agents.Agent(name="assistant", instructions="Be brief.", model=model)
    first_run = AgentRunFactory(conversation=conversation, status=AgentRun.Status.SUCCEEDED)
    second_run = AgentRunFactory(conversation=conversation)

    # Exactly as the worker does it: the SDK inside asyncio.run.
    first = asyncio.run(
        agents.Runner.run(
            agent, "hello", session=DjangoSession(conversation.pk, run_id=first_run.pk)
        )
    )
    second = asyncio.run(
        agents.Runner.run(
            agent, "What did I say?", session=DjangoSession(conversation.pk, run_id=second_run.pk)
        )
    )

    assert first.final_output == "Hi there."
    assert second.final_output == "You said hello."
    model.assert_complete()
    assert model.calls[0].input == [message("hello")]
    second_input = model.calls[1].input
    assert [(item["role"], text_of(item)) for item in second_input] == [
        ("user", "hello"),
        ("assistant", "Hi there."),
        ("user", "What did I say?"),
    ]

    items = assert_gapless(conversation)
    assert [(item.data["role"], text_of(item.data)) for item in items] == [
        ("user", "hello"),
        ("assistant", "Hi there."),
        ("user", "What did I say?"),
        ("assistant", "You said hello."),
    ]
    assert [item.run_id for item in items] == [first_run.pk] * 2 + [second_run.pk] * 2


@pytest.mark.django_db(transaction=True)
def test_streamed_runs_share_the_history(close_shared_thread_connection):
    # The worker drives the SDK with run_streamed, whose session writes happen in its own task.
    conversation = ConversationFactory()
    model = ScriptedModel([[assistant_message("First.")], [assistant_message("Second.")]])
    agent = agents.Agent(name="assistant", model=model)

    async def stream(text: str) -> Any:
        result = agents.Runner.run_streamed(agent, text, session=DjangoSession(conversation.pk))
        async for _ in result.stream_events():
            pass
        return result.final_output

    assert asyncio.run(stream("one")) == "First."
    assert asyncio.run(stream("two")) == "Second."

    assert [text_of(item) for item in model.calls[1].input] == ["one", "First.", "two"]
    assert [text_of(item.data) for item in assert_gapless(conversation)] == [
        "one",
        "First.",
        "two",
        "Second.",
    ]
