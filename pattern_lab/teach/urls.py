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
