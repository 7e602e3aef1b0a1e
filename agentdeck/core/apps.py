from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "agentdeck.core"
    label = "core"
    verbose_name = "agentdeck core"

    def ready(self) -> None:
        # Registers the OpenAPI extensions (security schemes) with drf-spectacular.
        from agentdeck.core import schema  # noqa: F401
