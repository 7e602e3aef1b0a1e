"""WebSocket and SSE delivery through the real ASGI application (config.asgi), in process, on the
in-memory channel layer. Cross-process delivery is in tests/e2e/test_realtime.py."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator, WebsocketCommunicator

from agentdeck.agents.models import AgentRun
from agentdeck.agents.services.runs import agent_run_start, run_event_append
from agentdeck.agents.tasks import execute_run
from config.asgi import application
from tests.factories import RunEventFactory
from tests.support.redis import redis_available, redis_url

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://localhost")


def ws(
    path: str, token: str | None = None, *, subprotocol: bool = False, origin=ORIGIN
) -> WebsocketCommunicator:
    headers = [origin] if origin else []
    subprotocols = None
    if token and subprotocol:
        subprotocols = ["agentdeck.v1", f"bearer.{token}"]
    elif token:
        path += ("&" if "?" in path else "?") + f"token={token}"
    return WebsocketCommunicator(application, path, headers=headers, subprotocols=subprotocols)


async def frames_until_close(
    comm: WebsocketCommunicator, timeout: float = 5
) -> tuple[list[dict], int | None]:
    frames = []
    while True:
        output = await comm.receive_output(timeout)
        if output["type"] == "websocket.close":
            return frames, output.get("code")
        frames.append(json.loads(output["text"]))


@pytest.fixture
def token(user, make_jwt):
    return make_jwt(user.pk, email=user.email)


@pytest.fixture
def finished_run(user, mock_agent):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="hello there")
    execute_run(str(run.id))
    return run


def test_replays_a_finished_run_then_closes_normally(finished_run, token):
    async def main():
        comm = ws(f"/ws/runs/{finished_run.id}/", token, subprotocol=True)
        connected, subprotocol = await comm.connect()
        assert connected
        assert subprotocol == "agentdeck.v1"  # never the token
        frames, code = await frames_until_close(comm)
        return frames, code

    frames, code = async_to_sync(main)()
    assert code == 1000
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert frames[-1]["type"] == "run.succeeded"
    assert set(frames[0]) == {"seq", "type", "run_id", "created_at", "data"}
    assert frames[0]["run_id"] == str(finished_run.id)


def test_after_skips_what_the_client_has(finished_run, token):
    async def main():
        comm = ws(f"/ws/runs/{finished_run.id}/?after=3", token)
        await comm.connect()
        return await frames_until_close(comm)

    frames, code = async_to_sync(main)()
    assert frames[0]["seq"] == 4
    assert code == 1000


def test_a_client_that_saw_the_whole_finished_run_is_closed_at_once(finished_run, token):
    last = finished_run.events.count()

    async def main():
        comm = ws(f"/ws/runs/{finished_run.id}/?after={last}", token)
        assert (await comm.connect())[0]
        return await frames_until_close(comm)

    frames, code = async_to_sync(main)()
    assert frames == []
    assert code == 1000


def test_following_a_fresh_run_reads_no_log_until_events_come(user, mock_agent, token, monkeypatch):
    """One database call per connect when there is nothing to replay: hundreds of clients
    connecting at once share daphne's one database thread."""
    from agentdeck.agents import streams

    reads = []
    real = streams._frames_after

    def counting(run_id, after):
        reads.append(after)
        return real(run_id, after)

    monkeypatch.setattr(streams, "_frames_after", counting)
    run, _ = agent_run_start(user=user, agent=mock_agent, input="live one two three")

    async def main():
        comm = ws(f"/ws/runs/{run.id}/", token)
        assert (await comm.connect())[0]
        assert await comm.receive_nothing(0.1)
        connect_reads = len(reads)
        await database_sync_to_async(execute_run)(str(run.id))
        frames, code = await frames_until_close(comm)
        return connect_reads, frames, code

    connect_reads, frames, code = async_to_sync(main)()
    assert connect_reads == 0
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert frames[-1]["type"] == "run.succeeded"
    assert code == 1000


@pytest.mark.parametrize("events_land", ["before_the_replay_query", "after_the_replay_query"])
def test_no_gap_and_no_duplicate_when_events_arrive_during_the_replay(
    user, mock_agent, token, monkeypatch, events_land
):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    AgentRun.objects.filter(pk=run.pk).update(status="running")
    for i in range(3):
        run_event_append(run_id=run.id, type="message.delta", data={"delta": f"early {i}"})

    from agentdeck.agents import streams

    original = streams._frames_after
    injected = {"done": False}

    def append_more():
        for i in range(3):
            run_event_append(run_id=run.id, type="message.delta", data={"delta": f"during {i}"})

    def events_after(run_id, after):
        # Events are persisted and published while this consumer is replaying: they reach it
        # both through the log and through the live channel, and must come out once each.
        if not injected["done"]:
            injected["done"] = True
            if events_land == "before_the_replay_query":
                append_more()
                return original(run_id, after)
            result = original(run_id, after)
            append_more()
            return result
        return original(run_id, after)

    monkeypatch.setattr(streams, "_frames_after", events_after)

    async def main():
        comm = ws(f"/ws/runs/{run.id}/", token)
        assert (await comm.connect())[0]
        frames = [json.loads((await comm.receive_output(5))["text"]) for _ in range(6)]
        await database_sync_to_async(run_event_append)(run_id=run.id, type="run.succeeded", data={})
        rest, code = await frames_until_close(comm)
        return frames + rest, code

    frames, code = async_to_sync(main)()
    assert [f["seq"] for f in frames] == [1, 2, 3, 4, 5, 6, 7]
    assert code == 1000


def test_live_events_of_a_run_executed_meanwhile(user, mock_agent, token):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="live one two three")

    async def main():
        comm = ws(f"/ws/runs/{run.id}/", token)
        assert (await comm.connect())[0]
        assert await comm.receive_nothing(0.1)
        await database_sync_to_async(execute_run)(str(run.id))
        return await frames_until_close(comm)

    frames, code = async_to_sync(main)()
    assert frames[0]["type"] == "run.started"
    assert frames[-1]["type"] == "run.succeeded"
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert code == 1000


def test_live_events_skip_the_per_message_connection_sweep(user, mock_agent, token, monkeypatch):
    """Live group messages and the disconnect go straight to their handler: channels'
    close_old_connections hop through the sync thread runs only for the socket's own traffic
    (connect, frames)."""
    import channels.consumer

    sweeps = []
    real = channels.consumer.aclose_old_connections

    async def counting():
        sweeps.append(1)
        await real()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counting)
    run, _ = agent_run_start(user=user, agent=mock_agent, input="live one two three")

    async def main():
        comm = ws(f"/ws/runs/{run.id}/", token)
        assert (await comm.connect())[0]
        before = len(sweeps)
        await database_sync_to_async(execute_run)(str(run.id))
        frames, code = await frames_until_close(comm)
        await comm.disconnect()  # the client's side of the close: leaves the group, no sweep
        return frames, code, len(sweeps) - before

    frames, code, during = async_to_sync(main)()
    assert len(frames) >= 5
    assert code == 1000
    assert during == 0


@pytest.mark.parametrize(
    ("token_value", "code"), [(None, "not_authenticated"), ("garbage", "token_invalid")]
)
def test_no_or_bad_token_closes_4401(finished_run, token_value, code):
    async def main():
        comm = ws(f"/ws/runs/{finished_run.id}/", token_value)
        assert (await comm.connect())[0]
        return await frames_until_close(comm)

    frames, close_code = async_to_sync(main)()
    assert close_code == 4401
    assert frames == [{"type": "error", "code": code, "detail": "Authentication failed."}]


def test_another_users_run_closes_4404(finished_run, other_user, make_jwt):
    async def main():
        comm = ws(f"/ws/runs/{finished_run.id}/", make_jwt(other_user.pk))
        assert (await comm.connect())[0]
        return await frames_until_close(comm)

    frames, code = async_to_sync(main)()
    assert code == 4404
    assert frames == [{"type": "error", "code": "not_found", "detail": "No such run."}]
    # It joined the run's group only to leave it again, before anything was sent.
    from channels.layers import get_channel_layer

    from agentdeck.core.realtime import run_group

    assert not get_channel_layer().groups.get(run_group(finished_run.id))
    assert frames[0]["code"] == "not_found"


@pytest.mark.parametrize("after", ["abc", "-1", "1.5"])
def test_invalid_after_closes_4400(finished_run, token, after):
    async def main():
        comm = ws(f"/ws/runs/{finished_run.id}/?after={after}", token)
        assert (await comm.connect())[0]
        return await frames_until_close(comm)

    frames, code = async_to_sync(main)()
    assert code == 4400
    assert frames[0]["code"] == "invalid_after"


def test_origin_not_in_allowed_hosts_is_rejected(finished_run, token):
    async def main():
        comm = ws(
            f"/ws/runs/{finished_run.id}/", token, origin=(b"origin", b"https://evil.example")
        )
        connected, _ = await comm.connect()
        return connected

    assert async_to_sync(main)() is False


def test_token_expiring_mid_stream_closes_4401_at_the_next_event(user, mock_agent, make_jwt):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    AgentRun.objects.filter(pk=run.pk).update(status="running")
    short = make_jwt(user.pk, ttl=2)

    async def main():
        comm = ws(f"/ws/runs/{run.id}/", short)
        assert (await comm.connect())[0]
        await database_sync_to_async(run_event_append)(
            run_id=run.id, type="message.delta", data={"delta": "a"}
        )
        first = json.loads((await comm.receive_output(5))["text"])
        await asyncio.sleep(2.5)
        await database_sync_to_async(run_event_append)(
            run_id=run.id, type="message.delta", data={"delta": "b"}
        )
        rest, code = await frames_until_close(comm)
        return first, rest, code

    first, rest, code = async_to_sync(main)()
    assert first["seq"] == 1
    assert rest == [
        {
            "type": "error",
            "code": "token_expired",
            "detail": "The credential expired; reconnect with a fresh one.",
        }
    ]
    assert code == 4401


def test_malformed_frames_get_an_error_and_cancel_works(user, mock_agent, token):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")

    async def main():
        comm = ws(f"/ws/runs/{run.id}/", token)
        assert (await comm.connect())[0]
        await comm.send_to(text_data="{not json")
        bad_json = json.loads((await comm.receive_output(5))["text"])
        await comm.send_to(text_data=json.dumps({"type": "dance"}))
        bad_type = json.loads((await comm.receive_output(5))["text"])
        await comm.send_to(text_data=json.dumps({"type": "cancel"}))
        rest, code = await frames_until_close(comm)
        return bad_json, bad_type, rest, code

    bad_json, bad_type, rest, code = async_to_sync(main)()
    assert bad_json["code"] == bad_type["code"] == "bad_frame"
    types = [f["type"] for f in rest]
    assert "run.cancelled" in types
    assert "cancel.accepted" in types
    assert code == 1000
    assert AgentRun.objects.get(pk=run.pk).status == "cancelled"


def test_api_key_authenticates_websockets(user, finished_run):
    from agentdeck.accounts.services import api_key_create

    _, secret = api_key_create(owner=user, name="ws", scopes=["read"])

    async def main():
        comm = ws(f"/ws/runs/{finished_run.id}/", secret, subprotocol=True)
        assert (await comm.connect())[0]
        return await frames_until_close(comm)

    assert async_to_sync(main)()[1] == 1000


def test_notifications_stream_run_status_changes(user, mock_agent, token, other_user, make_jwt):
    async def main():
        mine = ws("/ws/notifications/", token)
        theirs = ws("/ws/notifications/", make_jwt(other_user.pk))
        assert (await mine.connect())[0]
        assert (await theirs.connect())[0]
        run, _ = await database_sync_to_async(agent_run_start)(
            user=user, agent=mock_agent, input="x"
        )
        await database_sync_to_async(execute_run)(str(run.id))
        statuses = [json.loads((await mine.receive_output(5))["text"]) for _ in range(3)]
        assert await theirs.receive_nothing(0.2)
        await mine.disconnect()
        await theirs.disconnect()
        return run, statuses

    run, statuses = async_to_sync(main)()
    assert [s["data"]["status"] for s in statuses] == ["queued", "running", "succeeded"]
    assert all(s["type"] == "run.status" and s["data"]["run_id"] == str(run.id) for s in statuses)


def test_notifications_need_a_user(token):
    async def main():
        comm = ws("/ws/notifications/")
        assert (await comm.connect())[0]
        return await frames_until_close(comm)

    assert async_to_sync(main)()[1] == 4401


# --- SSE -----------------------------------------------------------------------------------------


async def sse(
    path: str, token: str | None = None, headers: list | None = None, timeout: float = 10
):
    """Read a whole SSE response through the ASGI app."""
    all_headers = [(b"accept", b"text/event-stream"), (b"host", b"localhost"), *(headers or [])]
    if token:
        all_headers.append((b"authorization", f"Bearer {token}".encode()))
    comm = HttpCommunicator(application, "GET", path, headers=all_headers)
    await comm.send_input({"type": "http.request", "body": b""})
    start = await comm.receive_output(timeout)
    response = {"status": start["status"], "headers": start["headers"], "body": b""}
    while True:  # ASGI lets a body message omit "body"; channels' get_response does not
        chunk = await comm.receive_output(timeout)
        response["body"] += chunk.get("body", b"")
        if not chunk.get("more_body"):
            return response


def parse_sse(body: bytes) -> list[dict]:
    events = []
    for block in body.decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1)
            for line in block.splitlines()
            if ": " in line and not line.startswith(":")
        )
        if "data" in fields:
            events.append(
                {
                    "id": int(fields["id"]),
                    "event": fields["event"],
                    "data": json.loads(fields["data"]),
                }
            )
    return events


def test_sse_replays_and_ends_after_the_terminal_event(finished_run, token):
    response = async_to_sync(sse)(f"/api/v1/runs/{finished_run.id}/events/", token)
    assert response["status"] == 200
    assert dict(response["headers"])[b"Content-Type"].startswith(b"text/event-stream")
    events = parse_sse(response["body"])
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["event"] == "run.succeeded"
    assert events[0]["data"]["seq"] == 1


def test_sse_resumes_from_last_event_id(finished_run, token):
    response = async_to_sync(sse)(
        f"/api/v1/runs/{finished_run.id}/events/", token, headers=[(b"last-event-id", b"4")]
    )
    assert parse_sse(response["body"])[0]["id"] == 5


def test_sse_streams_live_events_and_heartbeats(user, mock_agent, token, settings):
    settings.SSE_HEARTBEAT_SECONDS = 0.2
    settings.RUN_STREAM_RECHECK_SECONDS = 0.1
    run, _ = agent_run_start(user=user, agent=mock_agent, input="live")

    async def main():
        reader = asyncio.ensure_future(sse(f"/api/v1/runs/{run.id}/events/?token={token}"))
        await asyncio.sleep(0.6)  # a few heartbeats while nothing happens
        await database_sync_to_async(execute_run)(str(run.id))
        return await reader

    response = async_to_sync(main)()
    body = response["body"].decode()
    assert ": heartbeat" in body
    events = parse_sse(response["body"])
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["event"] == "run.succeeded"


def test_sse_keeps_its_redis_subscription_through_quiet_periods(
    user, mock_agent, token, settings, monkeypatch
):
    """On Redis Pub/Sub a cancelled receive() drops the channel's queue and unsubscribes it;
    the stream keeps one receive pending across its quiet-period log reads instead."""
    from agentdeck.core.channel_layers.redis_pubsub import _Shard

    if not redis_available(14):
        pytest.skip(f"no Redis at {redis_url(14)}")
    settings.CHANNEL_LAYERS = {
        "default": {
            # The layer config.settings uses with REDIS_URL.
            "BACKEND": "agentdeck.core.channel_layers.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_url(14)]},
        }
    }
    settings.RUN_STREAM_RECHECK_SECONDS = 0.1
    unsubscribed = []
    real_unsubscribe = _Shard.unsubscribe

    async def recording(self, channel):
        unsubscribed.append(channel)
        await real_unsubscribe(self, channel)

    monkeypatch.setattr(_Shard, "unsubscribe", recording)
    run, _ = agent_run_start(user=user, agent=mock_agent, input="live over redis")

    async def main():
        reader = asyncio.ensure_future(sse(f"/api/v1/runs/{run.id}/events/?token={token}"))
        await asyncio.sleep(0.5)  # several quiet periods
        quiet = list(unsubscribed)
        await database_sync_to_async(execute_run)(str(run.id))
        return quiet, await reader

    quiet, response = async_to_sync(main)()
    assert quiet == []
    events = parse_sse(response["body"])
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["event"] == "run.succeeded"


@pytest.mark.parametrize(("token_value", "status"), [(None, 401), ("garbage", 401)])
def test_sse_without_valid_credentials_is_401_problem_json(finished_run, token_value, status):
    response = async_to_sync(sse)(f"/api/v1/runs/{finished_run.id}/events/", token_value)
    assert response["status"] == status
    assert dict(response["headers"])[b"Content-Type"] == b"application/problem+json"


def test_sse_for_another_users_run_is_404_and_bad_cursor_400(
    finished_run, other_user, make_jwt, token
):
    assert (
        async_to_sync(sse)(f"/api/v1/runs/{finished_run.id}/events/", make_jwt(other_user.pk))[
            "status"
        ]
        == 404
    )
    bad = async_to_sync(sse)(f"/api/v1/runs/{finished_run.id}/events/?after=x", token)
    assert bad["status"] == 400
    assert json.loads(bad["body"])["errors"][0]["field"] == "after"


def test_plain_accept_still_gets_the_json_page(finished_run, client_for, user):
    response = client_for(user).get(f"/api/v1/runs/{finished_run.id}/events/")
    assert response.status_code == 200
    assert response.json()["finished"] is True


def test_programs_without_an_origin_header_may_connect(finished_run, token):
    async def main():
        comm = ws(f"/ws/runs/{finished_run.id}/", token, origin=None)
        assert (await comm.connect())[0]
        return await frames_until_close(comm)

    assert async_to_sync(main)()[1] == 1000


def test_an_extra_allowed_origin_is_accepted(finished_run, token, settings):
    # The Next.js front end usually lives on another host than the API.
    front_end = (b"origin", b"https://app.example.com")

    async def connects() -> bool:
        return (await ws(f"/ws/runs/{finished_run.id}/", token, origin=front_end).connect())[0]

    assert async_to_sync(connects)() is False
    settings.WS_ALLOWED_ORIGINS = [*settings.ALLOWED_HOSTS, "app.example.com"]
    assert async_to_sync(connects)() is True


def test_big_events_travel_as_a_wake_up_and_are_read_from_the_log(user, mock_agent, token):
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    AgentRun.objects.filter(pk=run.pk).update(status="running")
    big = "z" * 20_000

    async def main():
        comm = ws(f"/ws/runs/{run.id}/", token)
        assert (await comm.connect())[0]
        await database_sync_to_async(run_event_append)(
            run_id=run.id, type="message.completed", data={"text": big}
        )
        await database_sync_to_async(run_event_append)(run_id=run.id, type="run.succeeded", data={})
        return await frames_until_close(comm)

    frames, code = async_to_sync(main)()
    assert [f["seq"] for f in frames] == [1, 2]
    assert frames[0]["data"]["text"] == big
    assert code == 1000


def test_a_dropped_last_message_is_recovered_from_the_log_over_websocket(
    user, mock_agent, token, settings
):
    settings.RUN_STREAM_RECHECK_SECONDS = 0.2
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    AgentRun.objects.filter(pk=run.pk).update(status="running")

    async def main():
        comm = ws(f"/ws/runs/{run.id}/", token)
        assert (await comm.connect())[0]
        await database_sync_to_async(run_event_append)(
            run_id=run.id, type="message.delta", data={"delta": "a"}
        )
        # In the log, published to nobody: the channel layer dropped the message.
        await database_sync_to_async(RunEventFactory)(run_id=run.id, type="run.succeeded")
        return await frames_until_close(comm, timeout=5)

    frames, code = async_to_sync(main)()
    assert [(f["seq"], f["type"]) for f in frames] == [(1, "message.delta"), (2, "run.succeeded")]
    assert code == 1000


def test_a_dropped_last_message_is_recovered_from_the_log_over_sse(
    user, mock_agent, token, settings
):
    settings.RUN_STREAM_RECHECK_SECONDS = 0.2
    run, _ = agent_run_start(user=user, agent=mock_agent, input="x")
    AgentRun.objects.filter(pk=run.pk).update(status="running")

    async def main():
        reader = asyncio.ensure_future(sse(f"/api/v1/runs/{run.id}/events/", token))
        await asyncio.sleep(0.3)
        # In the log, published to nobody: the channel layer dropped the message.
        await database_sync_to_async(RunEventFactory)(run_id=run.id, type="run.succeeded")
        return await reader

    events = parse_sse(async_to_sync(main)()["body"])
    assert [(e["id"], e["event"]) for e in events] == [(1, "run.succeeded")]


def test_followers_missing_the_same_event_share_one_log_read(finished_run, monkeypatch):
    """A dropped message makes every follower of the run in the process read the same rows;
    they wait on one query, and one follower going away does not cancel it for the rest."""
    import time

    from agentdeck.agents import streams

    calls = []
    original = streams._frames_after

    def counted(run_id, after):
        calls.append((run_id, after))
        time.sleep(0.2)
        return original(run_id, after)

    monkeypatch.setattr(streams, "_frames_after", counted)

    async def main():
        readers = [
            asyncio.ensure_future(streams.read_after(str(finished_run.id), 2)) for _ in range(10)
        ]
        await asyncio.sleep(0.05)
        readers[0].cancel()
        results = await asyncio.gather(*readers[1:])
        again = await streams.read_after(str(finished_run.id), 2)  # a later read queries anew
        return results, again

    results, again = async_to_sync(main)()
    assert len(calls) == 2
    assert all(r == results[0] for r in results)
    assert [f["seq"] for f in results[0]] == [f["seq"] for f in again]
    assert results[0][0]["seq"] == 3
