from django.urls import path
from rest_framework.routers import SimpleRouter

from agentdeck.agents.api.run_wait import agent_runs
from agentdeck.agents.api.sse import run_events
from agentdeck.agents.api.views import (
    AgentVersionRestoreApi,
    AgentViewSet,
    ConversationItemsApi,
    ConversationViewSet,
    ProviderViewSet,
    RunViewSet,
    ToolViewSet,
)

router = SimpleRouter()
router.register("providers", ProviderViewSet, basename="provider")
router.register("agents", AgentViewSet, basename="agent")
router.register("runs", RunViewSet, basename="run")
router.register("conversations", ConversationViewSet, basename="conversation")
router.register("tools", ToolViewSet, basename="tool")

urlpatterns = [
    # Content negotiation: Accept: text/event-stream streams (sse.py); anything else gets the
    # DRF view registered by the router below (which is also what the OpenAPI document shows).
    path("runs/<uuid:pk>/events/", run_events, name="run-events-negotiated"),
    # mode=wait waits here, on the channel layer, not in a thread (api/run_wait.py); the DRF
    # action behind it is what the OpenAPI document shows.
    path("agents/<uuid:pk>/runs/", agent_runs, name="agent-runs-wait"),
    path(
        "agents/<uuid:pk>/versions/<int:number>/restore/",
        AgentVersionRestoreApi.as_view(),
        name="agent-version-restore",
    ),
    path(
        "conversations/<uuid:pk>/items/", ConversationItemsApi.as_view(), name="conversation-items"
    ),
    *router.urls,
]
