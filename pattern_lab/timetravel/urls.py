"""Time travel's routes (included from pattern_lab/urls.py)."""

from django.urls import path

from . import views

urlpatterns = [
    path("runs/<str:run_id>/seek/", views.seek, name="run-seek"),
    path("runs/<str:run_id>/history.json", views.history, name="run-history"),
    path("runs/<str:run_id>/at/<str:ms>/", views.permalink, name="run-at"),
    path("runs/<str:run_id>/fork-at/", views.fork_at, name="run-fork-at"),
]
