"""The overview page and the lab pages."""

from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles import finders
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.views.decorators.http import require_POST

from pattern_lab.runs.frames import node_actions
from pattern_lab.runs.identity import uid
from pattern_lab.runs.lifecycle import (
    compare_param,
    compare_runs,
    comparison_side,
    initial_snapshot,
    open_run,
    run_url,
    show,
    start_from_scenario,
)
from pattern_lab.runs.models import Run
from pattern_lab.runs.services import Rejected, scripted
from pattern_lab.teach.roles import is_instructor
from simulations import get_lab

from .glossary import glossary_for, link_terms
from .pages import PATH, WHY, grouped, pages
from .tries import items as try_items

RESERVED = {"seed", "run", "fresh", "compare", "vs", "step", "present"}


def overview(request):
    all_pages = pages()
    path = [{"slug": s, "title": all_pages[s].title, "why": WHY.get(s, "")} for s in PATH if s in all_pages]
    return render(request, "overview.html", {"groups": grouped(), "count": len(all_pages), "path": path})


def error(request, message: str, status: int, page=None):
    return render(request, "error.html", {"message": message, "page": page, "groups": grouped()}, status=status)


def template_exists(name: str) -> bool:
    try:
        get_template(name)
        return True
    except TemplateDoesNotExist:
        return False


def lab_page(request, slug: str):
    """A lab with its live run: the run in the link, your latest one with these
    settings, or a new one (see runs.lifecycle.open_run); with ?compare= a
    copy in another mode beside it (?vs=)."""
    page = pages().get(slug)
    if page is None:
        return error(request, f"There is no lab called '{slug[:40]}'. Pick one of the labs below.", 404)
    who = uid(request)
    query = request.GET
    try:
        run = open_run(slug, who, run_id=query.get("run", ""), seed=query.get("seed"), fresh="fresh" in query,
                       settings={k: v for k, v in query.items() if k not in RESERVED})
        if query.get("compare"):
            other = compare_runs(run, who, query["compare"])
            return redirect(run_url(run, vs=other.id))
        other = comparison_side(slug, query["vs"]) if query.get("vs") else None
    except Rejected as err:
        return error(request, err.message, err.status, page)
    show(run, other)
    lab_cls = get_lab(slug)
    context = lab_context(request, page, lab_cls, run, who)
    mode = compare_param(lab_cls)
    if mode is not None:
        current = run.params.get(mode.name)
        context.update(compare_param=mode.name, compare_choices=[c for c in mode.choices if c != current])
        if other is not None:
            context.update(other=other, other_snap=initial_snapshot(other), label=f"{mode.name} = {current}",
                           other_label=f"{mode.name} = {other.params.get(mode.name)}",
                           other_owner=other.owner == who, other_scripted=scripted(other),
                           replayed=other.commands.exclude(t=None).filter(t__lte=other.sim_t).count())
    return render(request, "lab.html", context)


@require_POST
def play_scenario(request, slug: str):
    """Start a run from a scenario: pasted JSON or an uploaded .json file."""
    page = pages().get(slug)
    if page is None:
        return error(request, f"There is no lab called '{slug[:40]}'.", 404)
    try:
        run = start_from_scenario(slug, uid(request), request.POST.get("scenario", ""), request.FILES.get("file"))
    except Rejected as err:
        return error(request, err.message, err.status, page)
    return redirect(run_url(run))


def lab_context(request, page, lab_cls, run: Run, who: str) -> dict:
    described = lab_cls.describe()
    one_node = {a["name"] for a in node_actions(lab_cls)}
    forms = [spec for spec in lab_cls.ACTIONS.values() if spec.name not in one_node]
    fields = [{**p.describe(), "value": run.params.get(p.name, p.default)} for p in lab_cls.PARAMS]
    slug = page.slug
    return {
        "page": page,
        "lab": described,
        "run": run,
        "rid": run.id,
        "owner": run.owner == who,
        "fields": fields,
        "params": run.params,
        "snap": initial_snapshot(run),  # the initial state, for static controls
        "forms": [f for f in forms if f.group != "fault"],
        "fault_forms": [f for f in forms if f.group == "fault"],
        "controls": f"labs/{slug}/controls.html" if template_exists(f"labs/{slug}/controls.html") else None,
        "lab_css": f"labs/{slug}.css" if finders.find(f"labs/{slug}.css") else None,
        "frame_ms": settings.PATTERN_LAB["FRAME_MS"],
        "speeds": [0.05, 0.1, 0.25, 0.5, 1, 2, 4],
        "lab_lessons": lesson_links(slug),
        "instructor": is_instructor(getattr(request, "user", None)),
        "step": active_step(slug, request.GET.get("step")),
        "scripted": scripted(run),
        "present": request.GET.get("present") == "1",
        "glossary": glossary_for(slug),
        "next_lab": next_on_path(slug),
        **teaching_text(request, slug),
    }


def lesson_links(slug: str) -> list[dict]:
    from pattern_lab.lessons.schema import lessons_for
    from pattern_lab.lessons.services import lesson_url

    return [{"url": lesson_url(item.key), "title": item.lesson.title, "summary": item.lesson.summary,
             "steps": len(item.lesson.steps), "questions": item.lesson.questions(), "minutes": item.lesson.minutes}
            for item in lessons_for(slug)]


def teaching_text(request, slug: str) -> dict:
    """What to try and the explanation, with each glossary term's first
    occurrence linked to its definition."""
    seen: set[str] = set()
    steps = [{"index": s.index, "html": link_terms(s.text, seen), "params": s.params, "commands": s.commands}
             for s in try_items(slug)]
    explain = None
    if template_exists(f"labs/{slug}/explain.html"):
        explain = link_terms(render_to_string(f"labs/{slug}/explain.html", request=request), seen)
    return {"steps": steps, "explain_html": explain}


def next_on_path(slug: str):
    """The lab after this one on the overview's suggested path."""
    if slug not in PATH or PATH[-1] == slug:
        return None
    nxt = PATH[PATH.index(slug) + 1]
    page = pages().get(nxt)
    return {"slug": nxt, "title": page.title, "why": WHY.get(nxt, "")} if page else None


def active_step(slug: str, index):
    """The What to try step this run was set up for (?step=N), if any."""
    steps = try_items(slug)
    try:
        return steps[int(index)] if index is not None else None
    except (ValueError, IndexError):
        return None


def not_found(request, exception=None):
    return error(request, "There is no page at this address.", 404)


def server_error(request):
    return render(request, "error.html", {"message": "Something went wrong on our side. Try again in a moment.",
                                          "groups": []}, status=500)


def csrf_failure(request, reason=""):
    return error(request, "This form has expired (its security token is missing or stale). "
                          "Reload the page and try again.", 403)
