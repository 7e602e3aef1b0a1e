"""The channel layers (agentdeck.core.channel_layers) losing their server and getting it back:
PostgreSQL killing the layer's backends (what it does to every connection when one backend
crashes, and what a restart does), and a private Redis server stopped and started again on its
port. Each layer is driven as daphne drives it: one event loop, consumers' channels receiving."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.db import connection
from django.utils.module_loading import import_string

from tests.support.outages import database_connection, terminate_backends

# The backends under test, as config.settings names them.
POSTGRES_LAYER = "agentdeck.core.channel_layers.PostgresChannelLayer"
REDIS_LAYER = "agentdeck.core.channel_layers.RedisPubSubChannelLayer"
RECONNECTED = "channel_layer.reconnected"


def make_layer(backend: str, **config: Any):
    return import_string(backend)(**config)


def postgres_layer(**config: Any):
    # As config.settings configures it: Django's settings of the database (complete, as Django
    # fills them in), without persistent connections.
    return make_layer(
        POSTGRES_LAYER,
        **{**connection.settings_dict, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False},
        **config,
    )


def reset_connections(spare_pid: int, *, lose_membership_of: str) -> int:
    """Lose a channel's group membership row, then terminate every backend but Django's
    (``spare_pid``)."""
    with database_connection() as conn:
        conn.execute(
            "DELETE FROM channels_postgres_groupchannel WHERE channel = %s", [lose_membership_of]
        )
    return terminate_backends(spare_pid)


def run(coroutine: Any, timeout: float = 60) -> Any:
    """``asyncio.run`` that cannot hang: the scenario has ``timeout`` seconds, and whatever
    tasks it leaves (a layer's listener, its pool's workers) get 5 s to end."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coroutine, timeout))
    finally:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.wait(tasks, timeout=5))
        loop.close()


async def receive_all(layer, channel: str, count: int, timeout: float = 10) -> list[dict]:
    return [await asyncio.wait_for(layer.receive(channel), timeout) for _ in range(count)]


@pytest.mark.django_db(transaction=True)
def test_postgres_layer_delivers_again_after_postgresql_resets_its_connections():
    layer = postgres_layer()
    connection.ensure_connection()
    django_pid = connection.connection.info.backend_pid

    async def main():
        inbox = await layer.new_channel()
        restored = await layer.new_channel()
        await layer.group_add("outage", inbox)
        await layer.group_add("outage", restored)
        await layer.group_send("outage", {"type": "t", "n": 1})
        got = await receive_all(layer, inbox, 1)
        got_restored = await receive_all(layer, restored, 1)

        # One backend crashing makes PostgreSQL reset them all: the layer's LISTEN connection
        # and its pooled connections die (and here a membership row goes missing too).
        killed = await asyncio.to_thread(reset_connections, django_pid, lose_membership_of=restored)
        assert killed >= 2
        # A consumer joining right away is not refused for the pool's dead connections.
        late = await layer.new_channel()
        await layer.group_add("outage", late)
        # Sent at once: the pool must not hand out a dead connection, and what the LISTEN
        # connection misses while it reconnects is replayed from the message table. The layer
        # also says it was away (consumers then catch up from their log).
        await layer.group_send("outage", {"type": "t", "n": 2})
        got += await receive_all(layer, inbox, 2)
        await layer.group_send("outage", {"type": "t", "n": 3})
        got += await receive_all(layer, inbox, 1)
        while got_restored[-1].get("n") != 3:
            got_restored += await receive_all(layer, restored, 1)
        got_late = await receive_all(layer, late, 1)
        while got_late[-1].get("n") != 3:
            got_late += await receive_all(layer, late, 1)
        assert [m["n"] for m in got_late if m["type"] == "t"] == [2, 3]
        await layer.close_pools()
        return got, got_restored

    got, got_restored = run(main())
    numbers = [m.get("n") for m in got if m["type"] == "t"]
    reconnected = [m for m in got if m["type"] == RECONNECTED]
    assert numbers == [1, 2, 3]  # each once, in order
    assert len(reconnected) == 1
    assert isinstance(reconnected[0]["since"], float)
    # The lost membership was restored on reconnecting (n=2 may have come before it was).
    assert [m["type"] for m in got_restored].count(RECONNECTED) == 1
    assert got_restored[0]["n"] == 1
    assert got_restored[-1]["n"] == 3


@pytest.mark.django_db(transaction=True)
def test_a_membership_restored_after_an_outage_expires_as_group_add_would_have_it():
    layer = postgres_layer(group_expiry=3600)
    connection.ensure_connection()
    django_pid = connection.connection.info.backend_pid

    async def main():
        channel = await layer.new_channel()
        await layer.group_add("kept", channel)
        receiving = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0.2)  # the LISTEN connection is up
        await asyncio.to_thread(reset_connections, django_pid, lose_membership_of=channel)
        # The listener reconnects and puts the membership back.
        while not (restored := await asyncio.to_thread(expiry_in_hours, channel)):
            await asyncio.sleep(0.05)
        receiving.cancel()
        await layer.close_pools()
        return restored

    assert run(main(), timeout=30) == [1]


def expiry_in_hours(channel: str) -> list[int]:
    with database_connection() as conn:
        rows = conn.execute(
            "SELECT round(extract(epoch FROM expire - now()) / 3600)::int "
            "FROM channels_postgres_groupchannel WHERE channel = %s",
            [channel],
        ).fetchall()
    return [hours for (hours,) in rows]


@pytest.mark.django_db(transaction=True)
def test_postgres_layer_forgets_the_channels_of_consumers_that_left():
    layer = postgres_layer()

    async def main():
        channel = await layer.new_channel()
        await layer.group_add("left", channel)
        receiving = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0.2)
        receiving.cancel()  # what channels does to a consumer's receive when it exits
        await asyncio.gather(receiving, return_exceptions=True)
        await layer.group_discard("left", channel)
        held = [list(listener.queues) for listener in layer._listeners.values()]
        await layer.close_pools()
        return held, channel

    held, channel = run(main())
    assert held == [[]]
    assert channel not in layer._channel_advisory_locks


def test_redis_layer_resubscribes_everything_held_and_says_it_was_away(redis_server, settings):
    settings.RECONNECT_MAX_DELAY_SECONDS = 0.5
    layer = make_layer(REDIS_LAYER, hosts=[redis_server.url])

    async def main():
        before = await layer.new_channel()
        await layer.group_add("a", before)
        await layer.group_send("a", {"type": "t", "n": 1})
        got_before = await receive_all(layer, before, 1)

        await asyncio.to_thread(redis_server.stop)
        # A consumer connecting while Redis is away gets its channel and group anyway.
        during = await layer.new_channel()
        await layer.group_add("b", during)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(redis_server.start)

        got_before += await receive_all(layer, before, 1)  # told it was away
        got_during = await receive_all(layer, during, 1)
        await layer.group_send("a", {"type": "t", "n": 2})
        await layer.group_send("b", {"type": "t", "n": 3})
        got_before += await receive_all(layer, before, 1)
        got_during += await receive_all(layer, during, 1)
        await layer.flush()
        return got_before, got_during

    got_before, got_during = run(main())
    assert [m["type"] for m in got_before] == ["t", RECONNECTED, "t"]
    assert [m.get("n") for m in got_before if m["type"] == "t"] == [1, 2]
    assert [m["type"] for m in got_during] == [RECONNECTED, "t"]
    assert got_during[-1]["n"] == 3
