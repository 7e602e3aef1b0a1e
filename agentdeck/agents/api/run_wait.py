"""``POST /api/v1/agents/{id}/runs/`` with ``mode=wait``: the wait, without a thread.

The DRF action (``AgentViewSet.runs``) creates the run as every view does, on the request's
thread, and answers 202 at once. Under agentdeck's ASGI handler (daphne) it hands
:func:`finish_waiting_run` to the handler (``response.finish_on_loop``, agentdeck.core.asgi),
which awaits it on the event loop after the request's thread and database connection are given
back: it waits on the channel layer for the run's terminal event
(``agentdeck.agents.streams.wait_for_run_end``) up to ``RUN_WAIT_TIMEOUT_SECONDS``, then
answers with the run as it ended (200), or as it stands (202) when the time ran out. Hundreds
of waiting requests cost a socket and a subscription each, not a thread and a connection.

Elsewhere (the test client, a WSGI server) the action waits in its thread: :func:`wait_here`."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from rest_framework import status as http
from rest_framework.renderers import JSONRenderer

from agentdeck.agents.models.run import TERMINAL_STATUSES
from agentdeck.agents.streams import wait_for_run_end


async def finish_waiting_run(response: Any, run_sync: Any, *, run_id: Any) -> Any:
    await wait_for_run_end(str(run_id), settings.RUN_WAIT_TIMEOUT_SECONDS)
    data = await run_sync(_run_data, run_id)
    response.content = JSONRenderer().render(data)
    if data["status"] in TERMINAL_STATUSES:
        response.status_code = http.HTTP_200_OK
    return response


def wait_here(run_id: Any) -> dict[str, Any]:
    """The wait in the calling thread (no event loop to finish on); the run's representation."""
    async_to_sync(wait_for_run_end)(str(run_id), settings.RUN_WAIT_TIMEOUT_SECONDS)
    return _run_data(run_id, close=False)


def _run_data(run_id: Any, close: bool = True) -> dict[str, Any]:
    from django.db import close_old_connections

    from agentdeck.agents.api.serializers.runs import RunSerializer
    from agentdeck.agents.selectors import run_get

    try:
        return RunSerializer(run_get(run_id=run_id)).data
    finally:
        if close:  # after the request: the connection goes back as request_finished does
            close_old_connections()
