"""The instructor's side: log in (throttled), the scenario library with its
editor, import, export, copy, recording a run, and a permalink that plays a
scenario as a tutorial."""

from __future__ import annotations

import time

from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from pattern_lab.catalog.pages import grouped, pages
from pattern_lab.lessons.schema import LessonError
from pattern_lab.limits import SCENARIO_MAX_BYTES, SCENARIO_MAX_KB
from pattern_lab.runs import keys
from pattern_lab.runs.models import Run
from pattern_lab.runs.services import Rejected

from . import library
from .models import Scenario
from .roles import instructor_required

MAX_FAILED_LOGINS = 5  # per user name (from anywhere) in the window
MAX_FAILED_PER_ADDRESS = 50  # per address: a school's instructors may share one NAT address
FAILED_LOGIN_WINDOW_S = 300


def _client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "?")


class LoginView(auth_views.LoginView):
    """The stock login page, with failed attempts throttled per user name
    (five in five minutes) and per address (fifty), counted in Redis."""

    template_name = "registration/login.html"

    def _keys(self, request):
        name = (request.POST.get("username") or "")[:150].lower()
        return [f"login-fail:ip:{_client_ip(request)}", f"login-fail:user:{name}"]

    def post(self, request, *args, **kwargs):
        r = keys.client()
        by_ip, by_user = (int(r.get(k) or 0) for k in self._keys(request))
        if by_user >= MAX_FAILED_LOGINS or by_ip >= MAX_FAILED_PER_ADDRESS:
            form = self.get_form()
            form.errors.clear()
            return render(request, self.template_name,
                          {"form": form, "throttled": True, "next": request.POST.get("next", "")}, status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        r = keys.client()
        pipe = r.pipeline()
        for k in self._keys(self.request):
            pipe.incr(k).expire(k, FAILED_LOGIN_WINDOW_S)
        pipe.execute()
        response = super().form_invalid(form)
        response.status_code = 400
        return response


def owned(request, sid: str) -> Scenario:
    scenario = Scenario.objects.filter(id=sid[:12]).first()
    if scenario is None or scenario.owner_id != request.user.id:
        raise Rejected("There is no scenario of yours at this address.", 404)
    return scenario


def fail(request, err: Rejected):
    return render(request, "error.html", {"message": err.message, "groups": grouped()}, status=err.status)


@instructor_required
def home(request):
    mine = Scenario.objects.filter(owner=request.user).prefetch_related("versions")
    public = Scenario.objects.filter(visibility=Scenario.PUBLIC).exclude(owner=request.user).select_related("owner")
    return render(request, "teach/home.html", {
        "mine": mine, "public": public, "labs": sorted(pages().values(), key=lambda p: p.title),
        "classes": request.user.classes.order_by("-created")[:10],
    })


@instructor_required
def new(request):
    lab = request.GET.get("lab", "")
    if lab not in pages():
        return fail(request, Rejected("Choose one of the labs for a new scenario.", 400))
    return render(request, "teach/editor.html", {"text": library.starter(lab), "scenario": None,
                                                 "visibility": Scenario.VISIBILITY})


@instructor_required
def edit(request, sid: str):
    try:
        scenario = owned(request, sid)
    except Rejected as err:
        return fail(request, err)
    text = scenario.latest().text
    return render(request, "teach/editor.html", {"scenario": scenario, "text": text,
                                                 "visibility": Scenario.VISIBILITY})


@instructor_required
@require_POST
def save(request, sid: str | None = None):
    text = request.POST.get("text", "")
    visibility = request.POST.get("visibility")
    scenario = None
    try:
        if sid:
            scenario = owned(request, sid)
            version = library.save(scenario, text, visibility)
            message = f"Saved as version {version.number}."
        else:
            scenario = library.create(request.user, text, visibility if visibility in dict(Scenario.VISIBILITY)
                                      else Scenario.PRIVATE)
            return redirect(reverse("teach:edit", args=[scenario.id]) + "?saved=1")
    except Rejected as err:
        return fail(request, err)
    except LessonError as err:
        # Nothing is lost: the text comes back with the error beside it.
        return render(request, "teach/editor.html", {"scenario": scenario, "text": text, "error": err,
                                                     "visibility": Scenario.VISIBILITY}, status=400)
    return render(request, "teach/editor.html", {"scenario": scenario, "text": text, "message": message,
                                                 "visibility": Scenario.VISIBILITY})


@instructor_required
@require_POST
def validate(request):
    """As the instructor types: the first mistake with its line, or 'valid'."""
    try:
        lesson = library.validate(request.POST.get("text", ""), "this scenario")
    except LessonError as err:
        return render(request, "teach/_check.html", {"error": err})
    return render(request, "teach/_check.html", {"lesson": lesson})


@instructor_required
@require_POST
def import_file(request):
    upload = request.FILES.get("file")
    if upload is None:
        return fail(request, Rejected("Choose a .yaml or .json scenario file.", 400))
    try:
        if upload.size > SCENARIO_MAX_BYTES:
            raise Rejected(f"A scenario file may be at most {SCENARIO_MAX_KB} kB.", 400)
        try:
            text = upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected("The file is not UTF-8 text.", 400) from None
        scenario = library.import_text(request.user, text, upload.name[:80])
    except Rejected as err:
        return fail(request, err)
    except LessonError as err:
        return fail(request, Rejected(str(err), 400))
    return redirect(reverse("teach:edit", args=[scenario.id]) + "?imported=1")


@instructor_required
@require_POST
def copy(request, sid: str):
    scenario = Scenario.objects.filter(id=sid[:12]).first()
    try:
        if scenario is None:
            raise Rejected("There is no such scenario.", 404)
        mine = library.copy(request.user, scenario)
    except Rejected as err:
        return fail(request, err)
    return redirect(reverse("teach:edit", args=[mine.id]) + "?copied=1")


@instructor_required
@require_POST
def record(request, run_id: str):
    from pattern_lab.runs.identity import uid

    run = Run.objects.filter(id=run_id[:16]).first()
    try:
        if run is None or run.owner != uid(request):
            raise Rejected("You can record only your own runs.", 403)
        scenario = library.record(request.user, run)
    except Rejected as err:
        return fail(request, err)
    return redirect(reverse("teach:edit", args=[scenario.id]) + "?recorded=1")


@require_GET
def export(request, sid: str):
    """The scenario's latest version as a YAML file (owner, or anyone for unlisted and public ones)."""
    scenario = Scenario.objects.filter(id=sid[:12]).first()
    if scenario is None or not scenario.visible_to(request.user):
        return fail(request, Rejected("There is no scenario at this address.", 404))
    response = HttpResponse(scenario.latest().text, content_type="application/yaml; charset=utf-8")
    stamp = time.strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="{scenario.lab}-{scenario.id}-{stamp}.yaml"'
    return response


@require_GET
def play(request, sid: str):
    """The permalink: play the scenario's latest version as a tutorial."""
    from pattern_lab.lessons.views import render_lesson

    scenario = Scenario.objects.filter(id=sid[:12]).first()
    if scenario is None or not scenario.visible_to(request.user):
        return fail(request, Rejected("There is no scenario at this address (or it is private).", 404))
    return render_lesson(request, scenario.latest().key)
