from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "pattern_lab.catalog"
