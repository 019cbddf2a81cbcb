"""Class pages: start, join, the class page for each role, the instructor's
controls, the dashboard and the summary (with its CSV)."""

from __future__ import annotations

import csv

import segno
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from pattern_lab.catalog.pages import grouped, pages
from pattern_lab.catalog.views import lab_context
from pattern_lab.runs import keys
from pattern_lab.runs.identity import uid
from pattern_lab.runs.services import Rejected
from pattern_lab.timetravel.views import parse_ms, run_end
from simulations import get_lab
from simulations.kernel import fmt_ms

from . import classroom as cls
from .models import Classroom, Scenario, Student
from .roles import instructor_required


def fail(request, err: Rejected, template: str = "error.html", **extra):
    return render(request, template, {"message": err.message, "groups": grouped(), **extra}, status=err.status)


def _address(request) -> str:
    return request.META.get("REMOTE_ADDR", "?")


def student_of(request, classroom: Classroom) -> Student | None:
    sid = request.session.get(f"class:{classroom.code}")
    return classroom.students.filter(id=sid).first() if sid else None


def taught(request, code: str) -> Classroom:
    classroom = Classroom.objects.filter(code=code.upper()[:6]).select_related("run", "shown").first()
    if classroom is None or classroom.instructor_id != request.user.id:
        raise Rejected("There is no class of yours with this code.", 404)
    return classroom


@instructor_required
@require_POST
def start(request):
    try:
        sid = request.POST.get("scenario")
        if sid:
            scenario = Scenario.objects.filter(id=sid[:12]).first()
            if scenario is None or not scenario.visible_to(request.user):
                raise Rejected("There is no such scenario.", 404)
            classroom = cls.start(request.user, uid(request), version=scenario.latest())
        else:
            lab = request.POST.get("lab", "")
            if lab not in pages():
                raise Rejected("Choose a lab or a scenario for the class.", 400)
            classroom = cls.start(request.user, uid(request), lab=lab)
    except Rejected as err:
        return fail(request, err)
    return redirect(reverse("teach:class", args=[classroom.code]))


def join(request):
    """/join/: a code and a display name, no account."""
    context = {"code": request.GET.get("code", "")[:6], "name": ""}
    if request.method == "POST":
        context = {"code": request.POST.get("code", "")[:12], "name": request.POST.get("name", "")[:60]}
        try:
            student = cls.join(context["code"], context["name"], uid(request), _address(request))
        except Rejected as err:
            return render(request, "teach/join.html", {**context, "error": err.message}, status=err.status)
        request.session[f"class:{student.classroom.code}"] = student.id
        return redirect(reverse("teach:class", args=[student.classroom.code]))
    return render(request, "teach/join.html", context)


def class_page(request, code: str):
    classroom = Classroom.objects.filter(code=code.upper()[:6]).select_related("run", "shown").first()
    if classroom is None:
        return fail(request, Rejected("There is no class with this code.", 404))
    teacher = request.user.is_authenticated and classroom.instructor_id == request.user.id
    student = None if teacher else student_of(request, classroom)
    if not teacher and student is None:
        return redirect(reverse("teach:join") + f"?code={classroom.code}")
    context = stage_context(request, classroom, student)
    context.update({"classroom": classroom, "role": "instructor" if teacher else "student", "me": student})
    if teacher:
        join_url = request.build_absolute_uri(reverse("teach:join") + f"?code={classroom.code}")
        context.update({
            "join_url": join_url,
            "qr": segno.make_qr(join_url).svg_inline(scale=7, border=2, title=f"Join code {classroom.code}"),
            "scenario_steps": cls.scenario_steps(classroom), "frame": cls.frame(classroom, cls.TEACHER),
        })
    else:
        context["frame"] = cls.frame(classroom, cls.STUDENTS)
    return render(request, "teach/class.html", context)


def stage_context(request, classroom: Classroom, student: Student | None) -> dict:
    run, owner = cls.run_for(classroom, student)
    page = pages()[run.lab]
    context = lab_context(request, page, get_lab(run.lab), run, uid(request))
    context["owner"] = owner and run.owner == uid(request)
    context["stage_key"] = f"{classroom.mode}-{classroom.shown_id}-{'open' if classroom.open else 'ended'}"
    context["stage_note"] = stage_note(classroom, student, run)
    # A student watching the class's run: their timeline moves with the instructor's (timeline.js).
    context["following"] = (student is not None and classroom.open and not owner
                            and run.id == (classroom.shown_id or classroom.run_id))
    return context


def stage_note(classroom: Classroom, student: Student | None, run) -> str:
    if not classroom.open:
        return "The class has ended; this is where it stopped."
    if student is not None and run.id == student.run_id:
        return "This is your own copy of the class run: experiment with it."
    if run.id != classroom.run_id:
        shown = classroom.students.filter(run_id=run.id).first()
        return f"Shown to the class: {shown.name if shown else 'a student'}'s run."
    return "" if student is None else "You are following the instructor's cluster: live, or the moment they look back at."


@require_GET
def stage(request, code: str):
    """The live area of whatever this person should see now (swapped in by class.js)."""
    classroom = Classroom.objects.filter(code=code.upper()[:6]).select_related("run", "shown").first()
    if classroom is None:
        return HttpResponse("There is no class with this code.", status=404)
    teacher = request.user.is_authenticated and classroom.instructor_id == request.user.id
    student = None if teacher else student_of(request, classroom)
    if not teacher and student is None:
        return HttpResponse("Join the class first.", status=403)
    return render(request, "teach/_stage.html", stage_context(request, classroom, student))


@require_POST
def vote(request, code: str):
    classroom = Classroom.objects.filter(code=code.upper()[:6]).first()
    student = student_of(request, classroom) if classroom else None
    if student is None:
        return HttpResponse('<p class="bad" role="alert">Join the class first.</p>', status=403)
    try:
        v = cls.vote(student, request.POST.get("poll"), request.POST.get("choice"))
    except Rejected as err:
        return HttpResponse(f'<p class="bad" role="alert">{err.message}</p>', status=err.status)
    label = v.poll.choices[v.choice]["label"]
    return HttpResponse(f'<p class="ok" role="status" data-voted="{v.choice}" data-poll-id="{v.poll_id}">'
                        f'Your vote: {label}</p>')


@require_POST
def here(request, code: str):
    """A student's page says it is still open (every few seconds)."""
    classroom = Classroom.objects.filter(code=code.upper()[:6]).first()
    student = student_of(request, classroom) if classroom else None
    if student is None:
        return HttpResponse(status=403)
    keys.client().set(f"class:{classroom.id}:here:{student.id}", "1", ex=25)
    Student.objects.filter(id=student.id).update(last_seen=timezone.now())
    return HttpResponse(status=204)


ACTIONS = {"poll", "step-poll", "present", "close", "reveal", "hand-out", "show", "bring-back", "view", "end"}


@instructor_required
@require_POST
def control(request, code: str, what: str):
    try:
        classroom = taught(request, code)
        if what not in ACTIONS:
            raise Rejected("Unknown class action.", 404)
        if not classroom.open and what != "end":
            raise Rejected("The class has ended.", 410)
        message = act(classroom, what, request.POST)
    except Rejected as err:
        return HttpResponse(f'<span class="bad" role="alert">{err.message}</span>', status=err.status)
    if what == "end":
        return HttpResponse(status=204, headers={"HX-Redirect": reverse("teach:summary", args=[classroom.code])})
    if what in ("hand-out", "show", "bring-back"):
        return HttpResponse(status=204, headers={"HX-Refresh": "true"})
    return HttpResponse(f'<span class="ok" role="status">{message}</span>')


def act(classroom: Classroom, what: str, form) -> str:
    poll = classroom.polls.order_by("-id").first()
    if what == "poll":
        lines = [line for line in form.get("choices", "").splitlines() if line.strip()]
        cls.open_poll(classroom, form.get("question", ""), lines)
        return "Poll open: the students can vote."
    if what == "step-poll":
        cls.open_step_poll(classroom, _int(form.get("step")))
        return "Poll open: the students can vote."
    if what == "present":
        cls.present_step(classroom, _int(form.get("step")))
        return "Applied to the class run."
    if what in ("close", "reveal"):
        if poll is None:
            raise Rejected("There is no poll yet.", 409)
        if what == "close":
            cls.close_poll(poll)
            return "Poll closed."
        cls.reveal(poll)
        return "Revealed."
    if what == "hand-out":
        return f"Handed out to {cls.hand_out(classroom)} students."
    if what == "show":
        student = classroom.students.filter(id=_int(form.get("student"))).first()
        if student is None:
            raise Rejected("There is no such student in this class.", 404)
        cls.show(classroom, student)
        return f"Showing {student.name}'s run."
    if what == "bring-back":
        cls.bring_back(classroom)
        return "Everyone follows your run again."
    if what == "view":
        return set_view(classroom, form)
    cls.end(classroom)
    return "Class ended."


def set_view(classroom: Classroom, form) -> str:
    """The instructor's timeline: `t=<ms>` (a moment of the shown run) or `live=1`."""
    shown = classroom.shown or classroom.run
    run_id = form.get("run", "")[:16]
    if form.get("live") == "1":
        cls.set_view(classroom, run_id, None)
        return "Everyone sees the live run."
    t = parse_ms(form.get("t"), run_end(shown))
    cls.set_view(classroom, run_id, t)
    return f"Everyone sees t = {fmt_ms(t)}."


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Rejected("That is not a number.", 400) from None


@instructor_required
@require_GET
def dashboard(request, code: str):
    """One tile per student (polled by the instructor's page every two seconds)."""
    try:
        classroom = taught(request, code)
    except Rejected as err:
        return HttpResponse(err.message, status=err.status)
    return render(request, "teach/_dashboard.html", {"classroom": classroom, "tiles": tiles(classroom)})


def tiles(classroom: Classroom) -> list[dict]:
    from pattern_lab.runs.models import Command

    students = list(classroom.students.select_related("run"))
    r = keys.client()
    pipe = r.pipeline()
    for s in students:
        pipe.exists(f"class:{classroom.id}:here:{s.id}")
        pipe.get(f"run:{s.run_id}:ok") if s.run_id else pipe.exists("-")
    replies = pipe.execute()
    out = []
    for i, s in enumerate(students):
        here, ok = replies[2 * i], replies[2 * i + 1]
        last = None
        if s.run_id:
            last = Command.objects.filter(run_id=s.run_id).exclude(author="").order_by("-id").first()
        out.append({"student": s, "connected": bool(here), "ok": ok != b"0" if s.run_id else True,
                    "last": f"{last.action} {' '.join(last.args)}" if last else "",
                    "shown": classroom.shown_id is not None and classroom.shown_id == s.run_id})
    return out


@instructor_required
@require_GET
def summary(request, code: str):
    try:
        classroom = taught(request, code)
    except Rejected as err:
        return fail(request, err)
    return render(request, "teach/summary.html", {"classroom": classroom, **summary_data(classroom)})


def summary_data(classroom: Classroom) -> dict:
    polls = []
    for poll in classroom.polls.all():
        n = cls.counts(poll)
        correct = (poll.result or {}).get("correct")
        polls.append({"poll": poll, "rows": [{"label": c["label"], "votes": n[i], "correct": correct == i}
                                             for i, c in enumerate(poll.choices)],
                      "total": sum(n), "outcome": (poll.choices[correct]["label"] if correct is not None
                                                   else ("not graded" if not poll.answer else "none of the choices"))})
    students = list(classroom.students.all())
    votes = {}
    for poll in classroom.polls.all():
        for v in poll.votes.all():
            votes.setdefault(v.student_id, {})[poll.id] = v.choice
    steps = len(cls.scenario_steps(classroom))
    return {"polls": polls, "students": students, "votes": votes, "steps": steps}


@instructor_required
@require_GET
def summary_csv(request, code: str):
    try:
        classroom = taught(request, code)
    except Rejected as err:
        return fail(request, err)
    data = summary_data(classroom)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="class-{classroom.code}.csv"'
    writer = csv.writer(response)
    polls = [p["poll"] for p in data["polls"]]
    writer.writerow(["student", "joined", "last seen", *[f"poll {i + 1}: {p.question}" for i, p in enumerate(polls)],
                     "right"])
    for s in data["students"]:
        mine = data["votes"].get(s.id, {})
        row = [s.name, s.joined.isoformat(timespec="seconds"), s.last_seen.isoformat(timespec="seconds")]
        right = 0
        for p in polls:
            choice = mine.get(p.id)
            row.append("" if choice is None else p.choices[choice]["label"])
            right += choice is not None and (p.result or {}).get("correct") == choice
        writer.writerow([*row, right])
    writer.writerow([])
    for p in data["polls"]:
        writer.writerow([f"poll: {p['poll'].question}", f"outcome: {p['outcome']}",
                         *[f"{r['label']}: {r['votes']}" for r in p["rows"]]])
    return response


