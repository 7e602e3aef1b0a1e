from django.urls import path

from agentdeck.agents.consumers import NotificationsConsumer, RunEventsConsumer

websocket_urlpatterns = [
    path("ws/runs/<uuid:run_id>/", RunEventsConsumer.as_asgi()),
    path("ws/notifications/", NotificationsConsumer.as_asgi()),
]
