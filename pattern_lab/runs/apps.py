from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "pattern_lab.runs"
