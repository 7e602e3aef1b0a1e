"""``GET /api/v1/runs/{id}/events/`` with ``Accept: text/event-stream``: the run's events as
Server-Sent Events, with the WebSocket's replay-then-live semantics.

* ``id:`` is the event's ``seq`` and ``event:`` its type; ``data:`` is the same JSON frame the
  WebSocket sends. ``Last-Event-ID`` (sent by EventSource on reconnect) or ``?after=`` resumes.
* A ``: heartbeat`` comment every ``SSE_HEARTBEAT_SECONDS`` keeps proxies from closing an idle
  stream; the stream ends after the terminal event.
* The response is an async iterator: under daphne a waiting client costs a coroutine, not a
  thread. Any other Accept gets the JSON page from the DRF view.
* EventSource cannot set headers, so ``?token=`` is accepted besides ``Authorization``.
* After a channel-layer outage (``channel_layer.reconnected``) the stream reads the log for
  what it missed. If the layer cannot be joined at all (its server is away), the stream ends at
  once and EventSource reconnects after ``retry:`` with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from rest_framework.exceptions import (
    APIException,
    AuthenticationFailed,
    ErrorDetail,
    ValidationError,
)

from agentdeck.accounts.authentication import bearer_token
from agentdeck.accounts.ws_auth import authenticate_token
from agentdeck.agents.streams import RunEventCursor, parse_after, until_unreachable
from agentdeck.core.channel_layers import RECONNECTED
from agentdeck.core.errors import exception_to_problem, problem_response
from agentdeck.core.exceptions import ApplicationError, NotFound
from agentdeck.core.middleware import allow_methods
from agentdeck.core.realtime import run_group
from agentdeck.core.reconnect import is_connection_error
from agentdeck.core.throttling import request_client_address

AFTER_INVALID = "after / Last-Event-ID must be a non-negative integer."


def wants_event_stream(request: HttpRequest) -> bool:
    return "text/event-stream" in request.headers.get("Accept", "")


@allow_methods("GET", "HEAD", "OPTIONS")
async def run_events(request: HttpRequest, pk: Any) -> HttpResponse | StreamingHttpResponse:
    if not wants_event_stream(request):
        from agentdeck.agents.api.views.runs import RunViewSet

        view = RunViewSet.as_view({"get": "events"})
        return await sync_to_async(view)(request, pk=str(pk))
    return await run_events_stream(request, str(pk))


def _authenticate(request: HttpRequest):
    token = bearer_token(request) or request.GET.get("token")
    if not token:
        raise AuthenticationFailed(
            "Authentication credentials were not provided.", "not_authenticated"
        )
    user, _ = authenticate_token(token, address=request_client_address(request))
    return user


def _visible(user, run_id: str) -> bool:
    from agentdeck.agents.selectors import run_is_visible

    return run_is_visible(user=user, run_id=run_id)


def _format(frame: dict[str, Any]) -> str:
    return f"id: {frame['seq']}\nevent: {frame['type']}\ndata: {json.dumps(frame)}\n\n"


async def run_events_stream(
    request: HttpRequest, run_id: str
) -> HttpResponse | StreamingHttpResponse:
    try:
        user = await sync_to_async(_authenticate)(request)
        if not await sync_to_async(_visible)(user, run_id):
            raise NotFound("No such run.")
        after = parse_after(request.headers.get("Last-Event-ID") or request.GET.get("after"))
        if after is None:
            raise ValidationError(
                {"after": [ErrorDetail(AFTER_INVALID, code="invalid")]}, code="invalid"
            )
    except (APIException, ApplicationError) as e:
        # Rendered as the DRF views' errors are: this view streams, so it is not one of them.
        body, headers = exception_to_problem(e, request.get_full_path())
        if isinstance(e, AuthenticationFailed):
            headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')
        return problem_response(request, body, headers)
    response = StreamingHttpResponse(_stream(run_id, after), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


async def _stream(run_id: str, after: int) -> AsyncIterator[str]:
    layer = get_channel_layer()
    channel = await layer.new_channel("sse.")
    group = run_group(run_id)
    cursor = RunEventCursor(run_id, after)
    receiving: asyncio.Future | None = None
    try:
        yield "retry: 2000\n\n"
        # Subscribe before replaying (agentdeck.agents.streams: that loses and repeats nothing).
        try:
            await layer.group_add(group, channel)
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            return  # the layer's server is away: EventSource comes back after `retry`
        async for frame in until_unreachable(cursor.backlog()):
            yield _format(frame)
        last_output = time.monotonic()
        # One receive stays pending across quiet periods: cancelling it (wait_for) makes the
        # Redis Pub/Sub layer drop the channel's queue and unsubscribe, and the queue layer
        # hand its receive lock over.
        while not cursor.finished:
            if receiving is None:
                receiving = asyncio.ensure_future(layer.receive(channel))
            done, _ = await asyncio.wait({receiving}, timeout=settings.RUN_STREAM_RECHECK_SECONDS)
            if not done:
                # Quiet: read the log (a dropped last message is noticed nowhere else), and keep
                # proxies from closing an idle stream.
                frames = cursor.backlog()
            else:
                message, receiving = receiving.result(), None
                if message.get("type") == RECONNECTED:
                    frames = cursor.backlog()  # live messages may have been lost meanwhile
                elif message.get("type") == "run.event":
                    frames = cursor.live(message)
                else:
                    continue
            async for frame in until_unreachable(frames):
                yield _format(frame)
                last_output = time.monotonic()
            if time.monotonic() - last_output >= settings.SSE_HEARTBEAT_SECONDS:
                yield ": heartbeat\n\n"
                last_output = time.monotonic()
    finally:
        if receiving is not None:
            receiving.cancel()
        await layer.group_discard(group, channel)
        forget = getattr(layer, "forget_channel", None)  # agentdeck.core.channel_layers
        if forget is not None:
            await forget(channel)
