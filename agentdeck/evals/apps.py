from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "agentdeck.evals"
    label = "evals"
    verbose_name = "Evals"
