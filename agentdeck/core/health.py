"""Liveness and readiness for load balancers and orchestrators.

``/healthz`` answers 200 while the process can serve a request and touches nothing else.
``/readyz`` answers 200 only when the database, the task queue's broker and the channel layer
all answer, else 503 with the failing parts named in ``failing``. Each check fails fast while
its connection is known to be down (the layers and the publisher keep that state while they
reconnect: agentdeck.core.reconnect), and answers again as soon as they are back.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import TypedDict

from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer, get_channel_layer
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

CHANNEL_LAYER_TIMEOUT_SECONDS = 3.0


class CheckResult(TypedDict, total=False):
    ok: bool
    ms: float
    error: str
    info: str


def check_database() -> str | None:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        # Drop the broken connection so the next request reconnects instead of reusing it.
        connection.close()
        raise
    return None


def check_queue() -> str | None:
    from agentdeck.core.queue import broker as process_broker

    # The process's own broker, as enqueue() uses it: django_q's get_broker() would build one
    # (with Redis, a connection pool) per check.
    broker = process_broker.get()
    broker.ping()
    # ORM's ping() is a constant True; queue_size() makes either broker really answer.
    size = broker.queue_size()
    return f"{broker.info()}, {size} queued"


def _raise_if_receiving_is_down(layer: BaseChannelLayer) -> None:
    """What agentdeck.core.channel_layers knows of the layer's receive side (its LISTEN or
    Pub/Sub connection), read rather than touched: it may live on another thread's loop."""
    describe = getattr(layer, "receive_outage_description", None)
    down = describe() if describe is not None else None
    if down:
        raise ConnectionError(down)


def check_channel_layer() -> str | None:
    from channels.layers import InMemoryChannelLayer

    from agentdeck.core import realtime

    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    _raise_if_receiving_is_down(layer)  # this process's consumers' (daphne's loop)

    async def roundtrip(layer: BaseChannelLayer) -> None:
        channel = await layer.new_channel("readyz.")
        token = uuid.uuid4().hex
        try:
            # Listen before sending: a NOTIFY sent before the LISTEN would only be replayed.
            receiving = asyncio.ensure_future(layer.receive(channel))
            await asyncio.sleep(0.05)
            await layer.send(channel, {"type": "readyz.ping", "token": token})
            deadline = asyncio.get_running_loop().time() + CHANNEL_LAYER_TIMEOUT_SECONDS
            while True:
                async with asyncio.timeout_at(deadline):
                    message = await receiving
                if message.get("token") == token:
                    return
                if message.get("type") != "readyz.ping":  # e.g. channel_layer.reconnected
                    receiving = asyncio.ensure_future(layer.receive(channel))
                    continue
                raise RuntimeError("channel layer returned a different message")
        finally:
            forget = getattr(layer, "forget_channel", None)  # agentdeck.core.channel_layers
            if forget is not None:
                await forget(channel)

    if isinstance(layer, InMemoryChannelLayer):
        async_to_sync(roundtrip)(layer)
    else:
        publisher = realtime.get_publisher()
        if publisher.outage.down:
            raise ConnectionError(publisher.outage.describe())
        _raise_if_receiving_is_down(publisher.layer)
        # A fresh async_to_sync loop per check broke channels-postgres from the second check on
        # (its pool stays bound to the first loop): every /readyz after the first said 503.
        realtime.on_publisher_loop(roundtrip, CHANNEL_LAYER_TIMEOUT_SECONDS + 1)
    return type(layer).__name__


CHECKS: dict[str, Callable[[], str | None]] = {
    "database": check_database,
    "queue": check_queue,
    "channel_layer": check_channel_layer,
}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, CheckResult] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            info = check()
            result: CheckResult = {"ok": True}
            if info:
                result["info"] = info
        except Exception as exc:  # any failure means "not ready", and says why
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}".strip()[:500]}
        result["ms"] = round((time.perf_counter() - started) * 1000, 1)
        results[name] = result
    failing = [name for name, r in results.items() if not r["ok"]]
    body = {"status": "unavailable" if failing else "ok", "failing": failing, "checks": results}
    return JsonResponse(body, status=503 if failing else 200)
