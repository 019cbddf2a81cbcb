"""A run's HTTP endpoints (its live frames go over the websocket: routing.py)."""

from django.urls import path

from . import views

app_name = "runs"

urlpatterns = [
    path("runs/<str:run_id>/commands/", views.command, name="command"),
    path("runs/<str:run_id>/clock/", views.clock, name="clock"),
    path("runs/<str:run_id>/restart/", views.restart, name="restart"),
    path("runs/<str:run_id>/fork/", views.fork_run, name="fork"),
    path("runs/<str:run_id>/scenario.json", views.export, name="export"),
    path("runs/<str:run_id>/qr.svg", views.qr, name="qr"),
    path("runs/<str:run_id>/steps/<str:index>/set-up/", views.set_up, name="set-up"),
    path("runs/<str:run_id>/steps/<str:index>/", views.reached, name="step"),
]
