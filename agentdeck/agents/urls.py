from django.urls import path
from rest_framework.routers import SimpleRouter

from agentdeck.agents.api.sse import run_events
from agentdeck.agents.api.views.agents import AgentVersionRestoreApi, AgentViewSet
from agentdeck.agents.api.views.conversations import ConversationItemsApi, ConversationViewSet
from agentdeck.agents.api.views.providers import ProviderViewSet
from agentdeck.agents.api.views.runs import RunViewSet
from agentdeck.agents.api.views.tools import ToolViewSet

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
