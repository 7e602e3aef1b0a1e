from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from agentdeck.core.health import healthz, readyz

admin.site.site_header = "agentdeck administration"
admin.site.site_title = "agentdeck admin"
admin.site.index_title = "Agents, runs, credits and the people behind them"

api_v1 = [
    path("", include("agentdeck.accounts.urls")),
    path("", include("agentdeck.agents.urls")),
    path("", include("agentdeck.credits.urls")),
    path("", include("agentdeck.files.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # Our template drops the Google Fonts links: the docs' assets are all served from here.
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="agentdeck/redoc.html"),
        name="redoc",
    ),
]
