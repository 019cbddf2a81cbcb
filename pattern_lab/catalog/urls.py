"""The catalogue's routes: the overview, the lab pages, playing a scenario."""

from django.urls import path

from . import views

app_name = "catalog"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("patterns/<slug:slug>/", views.lab_page, name="lab"),
    path("patterns/<slug:slug>/scenario/", views.play_scenario, name="scenario"),
]
