from django.urls import include, path

from pattern_lab.catalog import views as catalog
from pattern_lab.runs import views as runs

urlpatterns = [
    path("", catalog.overview, name="overview"),
    path("patterns/<slug:slug>/", catalog.lab_page, name="lab"),
    path("patterns/<slug:slug>/scenario/", catalog.play_scenario, name="lab-scenario"),
    path("runs/<str:run_id>/commands/", runs.command, name="run-command"),
    path("runs/<str:run_id>/clock/", runs.clock, name="run-clock"),
    path("runs/<str:run_id>/restart/", runs.restart, name="run-restart"),
    path("runs/<str:run_id>/fork/", runs.fork_run, name="run-fork"),
    path("runs/<str:run_id>/scenario.json", runs.export, name="run-export"),
    path("", include("pattern_lab.timetravel.urls")),  # time travel: seek, history, permalinks, fork-at
]

handler404 = "pattern_lab.catalog.views.not_found"
handler500 = "pattern_lab.catalog.views.server_error"
