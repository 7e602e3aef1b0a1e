from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "agentdeck.accounts"
    label = "accounts"
    verbose_name = "Accounts"
