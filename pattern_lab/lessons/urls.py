"""The lessons' routes: a lab's lessons and the lesson panel's buttons."""

from django.urls import path

from . import views

app_name = "lessons"

urlpatterns = [
    path("patterns/<slug:slug>/learn/", views.learn, name="learn"),
    path("patterns/<slug:slug>/learn/<slug:name>/", views.lesson_page, name="lesson"),
    path("lessons/<int:pid>/<slug:what>/", views.act, name="act"),
]
