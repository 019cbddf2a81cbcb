from django.contrib.auth import views as auth_views
from django.urls import include, path

from pattern_lab.catalog import views as catalog
from pattern_lab.lessons import views as lessons
from pattern_lab.runs import views as runs
from pattern_lab.teach import views as teach

urlpatterns = [
    path("accounts/login/", teach.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("pattern_lab.teach.urls")),
    path("", catalog.overview, name="overview"),
    path("patterns/<slug:slug>/", catalog.lab_page, name="lab"),
    path("patterns/<slug:slug>/learn/", lessons.learn, name="learn"),
    path("patterns/<slug:slug>/learn/<slug:name>/", lessons.lesson_page, name="lesson"),
    path("lessons/<int:pid>/<slug:what>/", lessons.act, name="lesson-act"),
    path("patterns/<slug:slug>/scenario/", catalog.play_scenario, name="lab-scenario"),
    path("runs/<str:run_id>/commands/", runs.command, name="run-command"),
    path("runs/<str:run_id>/clock/", runs.clock, name="run-clock"),
    path("runs/<str:run_id>/restart/", runs.restart, name="run-restart"),
    path("runs/<str:run_id>/fork/", runs.fork_run, name="run-fork"),
    path("runs/<str:run_id>/scenario.json", runs.export, name="run-export"),
    path("runs/<str:run_id>/qr.svg", runs.qr, name="run-qr"),
    path("runs/<str:run_id>/steps/<str:index>/set-up/", runs.set_up, name="run-set-up"),
    path("runs/<str:run_id>/steps/<str:index>/", runs.reached, name="run-step"),
    path("", include("pattern_lab.timetravel.urls")),  # time travel: seek, history, permalinks, fork-at
]

handler404 = "pattern_lab.catalog.views.not_found"
handler500 = "pattern_lab.catalog.views.server_error"
