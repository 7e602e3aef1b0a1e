"""ASGI entry point (daphne): HTTP goes to Django, WebSockets to Channels consumers.

WebSocket routes are collected in ``config.routing``; every socket is origin-checked
(``agentdeck.core.ws_origin``: a browser's Origin must be in WS_ALLOWED_ORIGINS) and
authenticated by ``TokenAuthMiddleware`` before any consumer sees it.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The web process (daphne) borrows database connections from a pool (DATABASE_POOL in
# settings). Only when this module starts the process: a process that merely imports it after
# loading settings (the test suite) must not pass the variable on to children it spawns, such
# as qcluster, whose forked workers would then share pooled connections.
from django.conf import settings as _settings

if not _settings.configured:
    os.environ.setdefault("DATABASE_POOL", "true")
    _STARTS_PROCESS = True
else:
    _STARTS_PROCESS = False

# Initialise Django (apps, models) before importing anything that touches models. Django's
# ASGI handler, with each request on one hop to its thread (agentdeck.core.asgi).
from agentdeck.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from agentdeck.accounts.ws_auth import TokenAuthMiddleware  # noqa: E402
from agentdeck.core import daphne_backpressure, daphne_http  # noqa: E402
from agentdeck.core.ws_origin import origin_validator  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

# Close WebSockets whose client stopped reading, and answer HTTP the server itself refuses
# (too long, malformed, too slow) as problem+json (both only take effect under daphne).
daphne_backpressure.install()
daphne_http.install()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": origin_validator(TokenAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)

if _STARTS_PROCESS:
    # What the first requests would otherwise wait for (agentdeck.core.preload).
    from agentdeck.core.preload import web_process

    web_process()
