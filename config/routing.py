"""WebSocket URL routes, one list for the whole project (apps contribute their own lists)."""

from agentdeck.agents.routing import websocket_urlpatterns as agents_ws

websocket_urlpatterns = [*agents_ws]
