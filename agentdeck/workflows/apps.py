from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "agentdeck.workflows"
    label = "workflows"
    verbose_name = "Workflows"
