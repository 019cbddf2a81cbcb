"""Who is an instructor: a Django user in the "instructors" group
(`manage.py createinstructor` makes one).  Students never log in."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render

GROUP = "instructors"


def is_instructor(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.groups.filter(name=GROUP).exists())


def instructor_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_instructor(request.user):
            return render(request, "error.html", {"message": "This page is for instructors.", "groups": []},
                          status=403)
        return view(request, *args, **kwargs)
    return wrapper
