from django.apps import AppConfig


class CreditsConfig(AppConfig):
    name = "agentdeck.credits"
    label = "credits"
    verbose_name = "Credits"
