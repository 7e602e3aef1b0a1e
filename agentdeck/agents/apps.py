from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agentdeck.agents"
    label = "agents"
    verbose_name = "Agents"
