from django.urls import path
from rest_framework.routers import SimpleRouter

from agentdeck.accounts.api.views import ApiKeyViewSet, MeApi

router = SimpleRouter()
router.register("api-keys", ApiKeyViewSet, basename="api-key")

urlpatterns = [
    path("me", MeApi.as_view(), name="me"),
    *router.urls,
]
