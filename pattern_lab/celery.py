import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pattern_lab.settings")

app = Celery("pattern_lab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
