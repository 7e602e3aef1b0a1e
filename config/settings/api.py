"""The REST API (DRF, the OpenAPI document) and the limits on what a request may carry."""

from __future__ import annotations

from config.settings.base import env

# --- REST API ---------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "agentdeck.accounts.authentication.ApiKeyAuthentication",
        "agentdeck.accounts.authentication.NextJsJWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "agentdeck.accounts.permissions.ApiKeyScopePermission",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["agentdeck.core.parsers.StrictJSONParser"],
    # Whatever parser a view lists, form and multipart fields holding NUL are refused.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "agentdeck.core.parsers.StrictContentNegotiation",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "agentdeck.core.pagination.CreatedAtCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "agentdeck.core.errors.problem_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "agentdeck.core.throttling.AnonRateThrottle",
        "agentdeck.core.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON_RATE", default="120/min"),
        "user": env.str("THROTTLE_USER_RATE", default="1200/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "agentdeck API",
    "DESCRIPTION": (
        "Agents, runs, tools, files and credits. "
        "Every error is RFC 9457 application/problem+json with a stable `code`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The docs load nothing from another host (README: assets are served locally): ReDoc's
    # page has no Google Fonts (agentdeck/core/templates/agentdeck/redoc.html) and uses the
    # system's fonts; Swagger UI does not send the schema to validator.swagger.io.
    "REDOC_UI_SETTINGS": {
        "theme": {
            "typography": {
                "fontFamily": "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif",
                "headings": {"fontFamily": "system-ui, -apple-system, 'Segoe UI', sans-serif"},
                "code": {"fontFamily": "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"},
            }
        }
    },
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    # Two models have a `status` field with different choices; name their enums apart.
    "ENUM_NAME_OVERRIDES": {
        "AgentStatusEnum": "agentdeck.agents.models.Agent.Status",
        "RunStatusEnum": "agentdeck.agents.models.AgentRun.Status",
        "ProviderKindEnum": "agentdeck.agents.models.Provider.Kind",
        "ToolKindEnum": "agentdeck.agents.models.Tool.Kind",
        "ToolCallStatusEnum": "agentdeck.agents.models.ToolCall.Status",
        "RunModeEnum": "agentdeck.agents.models.AgentRun.Mode",
        "SearchModeEnum": "agentdeck.files.search.MODES",
        "FileStatusEnum": "agentdeck.files.models.FileMetadata.Status",
        "VectorIndexStatusEnum": "agentdeck.files.models.VectorIndex.Status",
        "VectorIndexFileStatusEnum": "agentdeck.files.models.VectorIndexFile.Status",
        "EmbedderEnum": "agentdeck.files.models.VectorIndex.Embedder",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "agentdeck.core.schema.add_problem_responses",
        "agentdeck.core.schema.add_links",
        "agentdeck.core.schema.require_bodies_with_required_fields",
    ],
}

# --- request input ----------------------------------------------------------------------------

# JSON bodies and JSON form fields nesting deeper than this are refused with 400 parse_error
# before they are decoded (agentdeck.core.jsoninput): the stdlib decoder recurses per level.
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=64)
# Limits of the HTTP server itself (daphne; agentdeck.core.daphne_http): a longer request target
# is a 414, a longer or longer-listed header section a 431, and a request still incomplete after
# this many seconds of silence a 408, each problem+json. Twisted's own defaults, which closed
# the connection with no answer or a bare 400, were 16 KiB a line, 16 KiB and 500 headers in
# all, and 60 s.
HTTP_MAX_URL_BYTES = env.int("HTTP_MAX_URL_BYTES", default=16384)
HTTP_MAX_HEADER_BYTES = env.int("HTTP_MAX_HEADER_BYTES", default=16384)
HTTP_MAX_HEADERS = env.int("HTTP_MAX_HEADERS", default=100)
HTTP_IDLE_TIMEOUT_SECONDS = env.float("HTTP_IDLE_TIMEOUT_SECONDS", default=60.0)
