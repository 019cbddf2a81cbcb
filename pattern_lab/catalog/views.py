"""The overview page and the lab pages."""

from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles import finders
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.views.decorators.http import require_POST

from pattern_lab.limits import SCENARIO_MAX_BYTES, SCENARIO_MAX_KB
from pattern_lab.runs.frames import node_actions
from pattern_lab.runs.identity import uid
from pattern_lab.runs.models import Run
from pattern_lab.runs.services import Rejected, ensure_actor, fork, scripted, start_run, start_scenario
from pattern_lab.teach.roles import is_instructor
from simulations import get_lab
from simulations.kernel import SimError

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
    page = pages().get(slug)
    if page is None:
        return error(request, f"There is no lab called '{slug[:40]}'. Pick one of the labs below.", 404)
    lab_cls = get_lab(slug)
    who = uid(request)
    query = request.GET
    try:
        if query.get("run"):
            run = Run.objects.filter(id=query["run"][:16], lab=slug).first()
            if run is None:
                raise Rejected(f"There is no {page.title.lower()} run '{query['run'][:16]}'. "
                               "The link may be old; start a new run below.", 404)
        else:
            names = {p.name for p in lab_cls.PARAMS}
            unknown = sorted(set(query) - names - RESERVED)
            if unknown:
                raise Rejected(f"'{unknown[0][:30]}' is not a setting of this lab "
                               f"(settings: {', '.join(sorted(names)) or 'none'}, seed).", 400)
            raw = {k: query[k] for k in names if k in query}
            run = None
            if "fresh" not in query and not query.get("seed"):
                # Coming back to a lab rejoins your latest run with the same settings.
                try:
                    params = lab_cls.parse_params(raw)
                except SimError as err:
                    raise Rejected(str(err), 400) from None
                run = Run.objects.filter(owner=who, lab=slug, params=params).order_by("-created").first()
            if run is None:
                run = start_run(slug, raw, query.get("seed"), who)
        other = None
        mode = compare_param(lab_cls)
        if query.get("compare"):
            # Side by side: a copy of this run in another mode, same seed and commands.
            if mode is None or run.owner != who:
                raise Rejected("This lab has no modes to compare, or the run is not yours.", 400)
            other = fork(run, who, {mode.name: query["compare"][:40]})
            return redirect(f"/patterns/{slug}/?run={run.id}&vs={other.id}")
        if query.get("vs"):
            other = Run.objects.filter(id=query["vs"][:16], lab=slug).first()
            if other is None:
                raise Rejected("The run to compare with is gone; open the comparison again.", 404)
    except Rejected as err:
        return error(request, err.message, err.status, page)
    for r in (run, other):
        if r is not None:
            ensure_actor(r.id)
    context = lab_context(request, page, lab_cls, run, who)
    if mode is not None:
        current = run.params.get(mode.name)
        context.update(compare_param=mode.name, compare_choices=[c for c in mode.choices if c != current])
        if other is not None:
            context.update(other=other, label=f"{mode.name} = {current}",
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
    upload = request.FILES.get("file")
    try:
        if upload is not None:
            if upload.size > SCENARIO_MAX_BYTES:
                raise Rejected(f"A scenario may be at most {SCENARIO_MAX_KB} kB.", 400)
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise Rejected("The scenario file is not UTF-8 text.", 400) from None
        else:
            text = request.POST.get("scenario", "")
        if not text.strip():
            raise Rejected("Paste a scenario or choose a .json file first.", 400)
        run = start_scenario(slug, text, uid(request))
    except Rejected as err:
        return error(request, err.message, err.status, page)
    return redirect(f"/patterns/{slug}/?run={run.id}")


def compare_param(lab_cls):
    """The lab's modes: its first param with a fixed set of choices."""
    return next((p for p in lab_cls.PARAMS if p.choices), None)


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
        "snap": lab_cls(run.params, run.seed).snapshot(),  # the initial state, for static controls
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
