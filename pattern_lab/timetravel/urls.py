"""Time travel's routes: seek, history, permalinks, fork-at."""

from django.urls import path

from . import views

app_name = "timetravel"

urlpatterns = [
    path("runs/<str:run_id>/seek/", views.seek, name="seek"),
    path("runs/<str:run_id>/history.json", views.history, name="history"),
    path("runs/<str:run_id>/at/<str:ms>/", views.permalink, name="at"),
    path("runs/<str:run_id>/fork-at/", views.fork_at, name="fork-at"),
]
