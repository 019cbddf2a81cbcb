from django.apps import AppConfig


class TeachConfig(AppConfig):
    name = "pattern_lab.teach"
    default_auto_field = "django.db.models.BigAutoField"
