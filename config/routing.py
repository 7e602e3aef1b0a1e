"""WebSocket URL routes, one list for the whole project (apps append their consumers here)."""

websocket_urlpatterns: list = []
