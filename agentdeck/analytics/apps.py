from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "agentdeck.analytics"
    label = "analytics"
    verbose_name = "Analytics"
