"""What the WebSocket consumers do when their channel layer comes back after an outage
(``channel_layer.reconnected``, sent by agentdeck.core.channel_layers to every local channel)
and when it cannot be joined at all. In process, on the in-memory layer; the real layers and
servers restarting are in tests/core/test_channel_layers.py and
tests/e2e/test_realtime_outages.py."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from agentdeck.agents.services.runs import agent_run_start, run_event_append
from agentdeck.core.realtime import run_group, user_group
from tests.agents.test_consumers import frames_until_close, ws
from tests.factories import RunEventFactory

pytestmark = pytest.mark.django_db(transaction=True)

RECONNECTED = {"type": "channel_layer.reconnected", "since": 1_700_000_000.0}


@pytest.fixture
def token(user, make_jwt):
    return make_jwt(user.pk, email=user.email)


def test_a_run_follower_reads_what_it_missed_as_soon_as_the_layer_is_back(
    user, mock_agent, token, settings
):
    settings.RUN_STREAM_RECHECK_SECONDS = 60  # only the reconnection can bring the event
    run, _ = agent_run_start(user=user, agent=mock_agent, input="hello")
    run_event_append(run_id=run.id, type="run.started", data={})

    async def main():
        comm = ws(f"/ws/runs/{run.id}/", token)
        assert (await comm.connect())[0]
        first = json.loads(await comm.receive_from(5))
        # Written while the layer was away: its live message never came.
        await database_sync_to_async(RunEventFactory)(
            run_id=run.id, type="agent.updated", data={"agent": "Echo"}
        )
        assert await comm.receive_nothing(0.2)
        await get_channel_layer().group_send(run_group(run.id), RECONNECTED)
        second = json.loads(await comm.receive_from(5))
        # The live message that does arrive later is not sent twice.
        await get_channel_layer().group_send(
            run_group(run.id),
            {
                "type": "run.event",
                "run_id": str(run.id),
                "seq": 2,
                "event_type": "agent.updated",
                "created_at": second["created_at"],
                "data": {"agent": "Echo"},
            },
        )
        assert await comm.receive_nothing(0.2)
        await comm.disconnect()
        return first, second

    first, second = async_to_sync(main)()
    assert (first["seq"], second["seq"]) == (1, 2)
    assert second["type"] == "agent.updated"


def test_the_notifications_stream_tells_the_client_to_resync_after_an_outage(user, token):
    async def main():
        comm = ws("/ws/notifications/", token)
        assert (await comm.connect())[0]
        await get_channel_layer().group_send(user_group(user.pk), RECONNECTED)
        frame = json.loads(await comm.receive_from(5))
        # Still subscribed and delivering afterwards.
        await get_channel_layer().group_send(
            user_group(user.pk),
            {"type": "user.notify", "notification": {"type": "credits.updated", "data": {}}},
        )
        after = json.loads(await comm.receive_from(5))
        await comm.disconnect()
        return frame, after

    frame, after = async_to_sync(main)()
    assert frame == {"type": "resync", "data": {"since": "2023-11-14T22:13:20Z"}}
    assert after["type"] == "credits.updated"


@pytest.mark.parametrize("path", ["/ws/notifications/", "/ws/runs/{run}/"])
def test_a_socket_that_cannot_join_its_group_is_told_to_try_again_later(
    path, user, mock_agent, token, monkeypatch
):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="hello")
    layer = get_channel_layer()

    async def unreachable(group, channel):
        raise ConnectionRefusedError("the layer's server is away")

    monkeypatch.setattr(layer, "group_add", unreachable)

    async def main():
        comm = ws(path.format(run=run.id), token)
        assert (await comm.connect())[0]
        return await frames_until_close(comm)

    frames, code = async_to_sync(main)()
    assert code == 1013
    assert frames == [
        {
            "type": "error",
            "code": "service_unavailable",
            "detail": "The server is reconnecting to its database; try again.",
        }
    ]
