"""The site's routes: each app's urls.py, under its namespace (catalog,
lessons, runs, timetravel, teach), plus the login pages.  Templates name
them with {% url 'ns:name' %}, Python with reverse(); the websocket routes
are in routing.py."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from pattern_lab.teach import views as teach

urlpatterns = [
    path("accounts/login/", teach.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("pattern_lab.teach.urls")),
    path("", include("pattern_lab.catalog.urls")),
    path("", include("pattern_lab.lessons.urls")),
    path("", include("pattern_lab.runs.urls")),
    path("", include("pattern_lab.timetravel.urls")),
]

handler404 = "pattern_lab.catalog.views.not_found"
handler500 = "pattern_lab.catalog.views.server_error"
