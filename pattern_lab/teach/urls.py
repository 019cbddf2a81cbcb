from django.urls import path

from . import views

app_name = "teach"

urlpatterns = [
    path("teach/", views.home, name="home"),
    path("teach/scenarios/new/", views.new, name="new"),
    path("teach/scenarios/create/", views.save, name="create"),
    path("teach/scenarios/validate/", views.validate, name="validate"),
    path("teach/scenarios/import/", views.import_file, name="import"),
    path("teach/scenarios/<str:sid>/", views.edit, name="edit"),
    path("teach/scenarios/<str:sid>/save/", views.save, name="save"),
    path("teach/scenarios/<str:sid>/copy/", views.copy, name="copy"),
    path("teach/record/<str:run_id>/", views.record, name="record"),
    path("s/<str:sid>/", views.play, name="play"),
    path("s/<str:sid>/scenario.yaml", views.export, name="export"),
]

from . import class_views  # noqa: E402

urlpatterns += [
    path("teach/classes/start/", class_views.start, name="class-start"),
    path("join/", class_views.join, name="join"),
    path("class/<str:code>/", class_views.class_page, name="class"),
    path("class/<str:code>/stage/", class_views.stage, name="class-stage"),
    path("class/<str:code>/vote/", class_views.vote, name="class-vote"),
    path("class/<str:code>/here/", class_views.here, name="class-here"),
    path("class/<str:code>/do/<slug:what>/", class_views.control, name="class-control"),
    path("class/<str:code>/dashboard/", class_views.dashboard, name="class-dashboard"),
    path("class/<str:code>/summary/", class_views.summary, name="summary"),
    path("class/<str:code>/summary.csv", class_views.summary_csv, name="summary-csv"),
]
