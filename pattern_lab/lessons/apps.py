from django.apps import AppConfig


class LessonsConfig(AppConfig):
    name = "pattern_lab.lessons"
    default_auto_field = "django.db.models.BigAutoField"
