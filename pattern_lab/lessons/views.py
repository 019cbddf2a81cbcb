"""The lesson pages: /patterns/<slug>/learn/ and the panel's buttons."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from pattern_lab.catalog.pages import pages
from pattern_lab.catalog.views import error, lab_context
from pattern_lab.runs.identity import uid
from pattern_lab.runs.services import Rejected
from simulations import get_lab

from . import services
from .markup import render_markdown
from .models import Progress
from .schema import lessons_for


def learn(request, slug: str):
    """The lab's first lesson."""
    page = pages().get(slug)
    if page is None:
        return error(request, f"There is no lab called '{slug[:40]}'. Pick one of the labs below.", 404)
    items = lessons_for(slug)
    if not items:
        return error(request, f"{page.title} has no lesson yet; its page lists things to try.", 404, page)
    return redirect(reverse("lessons:lesson", args=[slug, items[0].key.partition("/")[2]]))


def lesson_page(request, slug: str, name: str):
    page = pages().get(slug)
    if page is None:
        return error(request, f"There is no lab called '{slug[:40]}'. Pick one of the labs below.", 404)
    return render_lesson(request, f"{slug}/{name[:60]}")


def render_lesson(request, key: str):
    """A lab page with a lesson beside its cluster (a library lesson or a scenario)."""
    try:
        item = services.item_for_key(key)
    except Rejected as err:
        return error(request, err.message, err.status)
    page = pages()[item.lesson.lab]
    slug = page.slug
    who = uid(request)
    progress = services.open_progress(item, who)
    context = lab_context(request, page, get_lab(slug), progress.run, who)
    context.update(panel_context(progress, item))
    return render(request, "lab.html", context)


def panel_context(progress: Progress, item, message: str = "") -> dict:
    lesson = item.lesson
    steps = []
    for i, step in enumerate(lesson.steps):
        grade = progress.graded(i)
        state = "done" if grade is not None else ("active" if i == progress.step else "pending")
        if progress.finished:
            state = "done" if grade is not None else "pending"
        chosen = progress.chosen(i)
        choices = []
        if step.ask:
            for j, c in enumerate(step.ask.choices):
                choices.append({"index": j, "label": c.label, "chosen": chosen == j,
                                "correct": None if grade is None else grade.get("correct") == j})
        steps.append({
            "index": i, "state": state, "title": step.title or f"Step {i + 1}",
            "say": render_markdown(step.say), "after": render_markdown(step.after),
            "hint": render_markdown(step.expect.hint) if step.expect else "",
            "within": step.expect.within if step.expect else 0,
            "question": step.ask.question if step.ask else "", "choices": choices,
            "awaiting_choice": bool(step.ask) and chosen is None, "grade": grade,
            "answer_text": _answer_text(step, grade), "can_show": bool(step.do),
            "do": step.do,
        })
    return {
        "lesson": lesson, "lesson_key": item.key, "progress": progress, "lesson_steps": steps,
        "lesson_message": message, "lesson_summary": services.summary(progress, item),
        "lesson_next": services.next_lesson(item), "lesson_mark": progress.mark(progress.step),
        "lesson_others": [{"url": services.lesson_url(o.key), "title": o.lesson.title, "current": o.key == item.key}
                          for o in lessons_for(lesson.lab)],
    }


def _answer_text(step, grade) -> str:
    if not step.ask or grade is None:
        return ""
    if grade.get("correct") is None:
        return f"The run gave {grade.get('answer')!r}, which none of the choices describes."
    return f"What the run did: {step.ask.choices[grade['correct']].label}."


ACTS = {"choose", "show-me", "complete", "next", "back", "restart"}
# Actions on the step the panel shows: the panel sends that step's index as
# `at`.  One that reaches the server after the lesson has left that step (a
# late click, a second tab) changes nothing and gets the panel as it is now.
STEP_ACTS = {"choose", "show-me", "complete", "next"}
LEFT = "That step was already done; this is where the lesson is now."


@require_POST
def act(request, pid: int, what: str):
    progress = Progress.objects.select_related("run").filter(id=pid).first()
    if progress is None or progress.owner != uid(request):
        return HttpResponse("This lesson belongs to another browser; open the lesson again.", status=403)
    if what not in ACTS:
        return HttpResponse("Unknown lesson action.", status=404)
    try:
        item = services.item_for_key(progress.key)
    except Rejected as err:
        return HttpResponse(err.message, status=err.status)
    message = ""
    if what in STEP_ACTS and services.has_left(progress, request.POST.get("at")):
        message = "" if what == "complete" else LEFT
        return render(request, "lessons/panel.html", panel_context(progress, item, message))
    try:
        if what == "choose":
            services.choose(progress, item, request.POST.get("choice"))
        elif what == "show-me":
            # The step may have completed by itself (a frame) while the click
            # was on its way: then nothing is done.
            message = "Done: watch the cluster." if services.show_me(progress, item) else LEFT
        elif what == "complete":
            if not services.complete(progress, item, request.POST.get("t")):
                message = "Not yet: the run has not got there."
        elif what == "next":
            services.next_step(progress, item)
        elif what in ("back", "restart"):
            if what == "back":
                services.back(progress, item, request.POST.get("step"))
            else:
                services.restart(progress, item)
            # A new run: the whole page follows it.
            return HttpResponseClientRedirect(services.lesson_url(progress.key))
    except Rejected as err:
        message = err.message
    return render(request, "lessons/panel.html", panel_context(progress, item, message))
