"""ASGI entry point (daphne): HTTP goes to Django, WebSockets to Channels consumers.

WebSocket routes are collected in ``config.routing``; every socket is origin-checked
(``agentdeck.core.ws_origin``: a browser's Origin must be in WS_ALLOWED_ORIGINS) and
authenticated by ``TokenAuthMiddleware`` before any consumer sees it.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The web process borrows database connections from a pool (see DATABASE_POOL in settings).
os.environ.setdefault("DATABASE_POOL", "true")

# Initialise Django (apps, models) before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from agentdeck.accounts.ws_auth import TokenAuthMiddleware  # noqa: E402
from agentdeck.core import daphne_backpressure  # noqa: E402
from agentdeck.core.ws_origin import origin_validator  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

# Close WebSockets whose client stopped reading (only takes effect under daphne).
daphne_backpressure.install()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": origin_validator(TokenAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
