"""``POST /api/v1/agents/{id}/runs/`` with ``mode=wait``: the wait, without a thread.

The DRF action (``AgentViewSet.runs``, what the OpenAPI document describes) creates the run in
a thread, as every DRF view runs, and returns at once, marking its response when the caller
asked to wait. This async view in front of it then waits on the channel layer for the run's
terminal event (``agentdeck.agents.streams.wait_for_run_end``), up to
``RUN_WAIT_TIMEOUT_SECONDS``, and answers with the run as it ended (200), or as it stands (202)
when the time ran out. A waiting request holds no thread and does not poll the database, so
hundreds of them cost a socket and a subscription each."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status as http

from agentdeck.agents.models.run import TERMINAL_STATUSES
from agentdeck.agents.streams import wait_for_run_end
from agentdeck.core.middleware import allow_methods


# DRF's views are exempt from Django's CSRF check and enforce it themselves for session
# authentication (SessionAuthentication.enforce_csrf); the DRF view behind this one still does.
@csrf_exempt
@allow_methods("POST", "OPTIONS")
async def agent_runs(request: HttpRequest, pk: Any) -> HttpResponse:
    from agentdeck.agents.api.views import AgentViewSet

    view = AgentViewSet.as_view({"post": "runs"})
    response = await sync_to_async(view)(request, pk=str(pk))
    run_id = getattr(response, "wait_for_run", None)
    if run_id is None:
        return response
    await wait_for_run_end(str(run_id), settings.RUN_WAIT_TIMEOUT_SECONDS)
    data = await sync_to_async(_run_data)(run_id)
    # Not rendered yet (Django renders a DRF response after the view returns): it goes out with
    # the run as it is now, in the representation negotiated for the request.
    response.data = data
    if data["status"] in TERMINAL_STATUSES:
        response.status_code = http.HTTP_200_OK
    return response


def _run_data(run_id: Any) -> dict[str, Any]:
    from agentdeck.agents.api import serializers as s
    from agentdeck.agents.models import AgentRun

    run = AgentRun.objects.select_related("agent_version").get(pk=run_id)
    return s.RunSerializer(run).data
