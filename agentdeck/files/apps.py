from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "agentdeck.files"
    label = "files"
    verbose_name = "Files"
