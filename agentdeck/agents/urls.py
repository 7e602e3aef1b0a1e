from django.urls import path
from rest_framework.routers import SimpleRouter

from agentdeck.agents.api.views import (
    AgentVersionRestoreApi,
    AgentViewSet,
    ConversationItemsApi,
    ConversationViewSet,
    ProviderViewSet,
    RunViewSet,
)

router = SimpleRouter()
router.register("providers", ProviderViewSet, basename="provider")
router.register("agents", AgentViewSet, basename="agent")
router.register("runs", RunViewSet, basename="run")
router.register("conversations", ConversationViewSet, basename="conversation")

urlpatterns = [
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
