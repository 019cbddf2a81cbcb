"""Live classes: what an instructor and the students do, and how the class
page of everyone in the room learns of it at once.

Every change (a poll opened, a vote, a student's run shown to the class, the
run handed out) is *published*: one small HTML frame for the students and
one for the instructor, sent through the same per-process frame hub as the
runs' frames (one Redis publish, then one write per socket), so a class of
two hundred costs two renders, not two hundred."""

from __future__ import annotations

import time

from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from pattern_lab.lessons.schema import parse, same_value
from pattern_lab.lessons.services import current_t, snapshot_at
from pattern_lab.runs import keys, wire
from pattern_lab.runs.conditions import evaluate
from pattern_lab.runs.models import Run
from pattern_lab.runs.services import Rejected, fork, start_run, wake

from .models import Classroom, Poll, ScenarioVersion, Student, Vote

NAME_MAX = 30
STUDENTS, TEACHER = "students", "teacher"
JOINS_PER_MINUTE_PER_ADDRESS = 400  # a whole room shares one address behind its router
VOTES_PER_10S = 6


def channel(classroom: Classroom, role: str) -> str:
    """The frame hub's name for a class audience (not a run: see FrameHub)."""
    return f"class-{classroom.id}-{role}"


def limit(key: str, most: int, window_s: int) -> None:
    """A fixed-window rate limit in Redis; refuses with 429 beyond `most`."""
    r = keys.client()
    bucket = f"rl:{key}:{int(time.time() // window_s)}"
    count, _ = r.pipeline().incr(bucket).expire(bucket, window_s + 1).execute()
    if count > most:
        raise Rejected("Too many requests: wait a few seconds and try again.", 429)


# -- starting, joining, ending ------------------------------------------------------


def start(instructor, who: str, lab: str | None = None, version: ScenarioVersion | None = None) -> Classroom:
    if version is not None:
        lesson = parse(version.text, "scenario")
        run = start_run(lesson.lab, dict(lesson.params), lesson.seed, who)
        lab = lesson.lab
    else:
        run = start_run(lab or "", {}, None, who)
    run.kind = "class"
    run.save(update_fields=["kind"])
    for _ in range(5):
        try:
            with transaction.atomic():
                classroom = Classroom.objects.create(instructor=instructor, lab=lab, version=version, run=run,
                                                     shown=run)
            break
        except IntegrityError:  # the code is taken (one in hundreds of millions): draw another
            continue
    else:
        raise Rejected("Could not find a free class code; try again.", 503)
    publish(classroom)
    return classroom


def join(code: str, name: str, who: str, address: str) -> Student:
    limit(f"join:{address}", JOINS_PER_MINUTE_PER_ADDRESS, 60)
    code = (code or "").strip().upper().replace(" ", "")
    name = " ".join((name or "").split())
    if not (len(code) == 6 and code.isalnum()):
        raise Rejected("A class code has six letters and digits, like K7QX2M.", 400)
    classroom = Classroom.objects.filter(code=code).first()
    if classroom is None:
        raise Rejected(f"There is no class with the code {code}. Check it on the instructor's screen.", 404)
    if not classroom.open:
        raise Rejected(f"The class {code} has ended.", 410)
    if not name:
        raise Rejected("Give your name (as the instructor should see it).", 400)
    if len(name) > NAME_MAX:
        raise Rejected(f"A name may be at most {NAME_MAX} characters.", 400)
    mine = classroom.students.filter(uid=who).first()
    if mine is not None:  # the same browser again: keep its seat (and its run)
        if mine.name != name:
            if classroom.students.filter(name__iexact=name).exclude(id=mine.id).exists():
                raise Rejected(f"Someone in this class is already called {name}. Add an initial.", 409)
            mine.name = name
            mine.save(update_fields=["name"])
        return mine
    if classroom.students.filter(name__iexact=name).exists():
        raise Rejected(f"Someone in this class is already called {name}. Add an initial.", 409)
    try:
        student = Student.objects.create(classroom=classroom, name=name, uid=who)
    except IntegrityError:
        raise Rejected(f"Someone in this class is already called {name}. Add an initial.", 409) from None
    if classroom.mode == Classroom.HANDOUT:  # late: gets a fork of where the class is now
        student.run = fork(classroom.run, who)
        student.save(update_fields=["run"])
    publish(classroom)
    return student


def end(classroom: Classroom) -> None:
    with transaction.atomic():
        classroom.open = False
        classroom.ended = timezone.now()
        classroom.view_t = None  # an ended class shows where its run stopped
        classroom.save(update_fields=["open", "ended", "view_t"])
        Poll.objects.filter(classroom=classroom, state=Poll.OPEN).update(state=Poll.CLOSED)
        forks = [s.run_id for s in classroom.students.exclude(run=None)]
        Run.objects.filter(id__in=forks).update(frozen=True)
    for run_id in forks:  # their clocks stop; the actors let them go once unwatched
        wake(run_id, "ctl")
    publish(classroom)


# -- what is on everyone's screen ----------------------------------------------------


def hand_out(classroom: Classroom) -> int:
    """Every student gets a private fork of the class run at this moment."""
    if not classroom.open:
        raise Rejected("The class has ended.", 410)
    students = list(classroom.students.all())
    for student in students:
        student.run = fork(classroom.run, student.uid)
        student.save(update_fields=["run"])
    classroom.mode, classroom.shown, classroom.view_t = Classroom.HANDOUT, classroom.run, None
    classroom.save(update_fields=["mode", "shown", "view_t"])
    publish(classroom)
    return len(students)


def show(classroom: Classroom, student: Student) -> None:
    if student.run_id is None:
        raise Rejected(f"{student.name} has no run of their own yet: hand the run out first.", 409)
    classroom.mode, classroom.shown, classroom.view_t = Classroom.FOLLOW, student.run, None
    classroom.save(update_fields=["mode", "shown", "view_t"])
    publish(classroom)


def bring_back(classroom: Classroom) -> None:
    classroom.mode, classroom.shown, classroom.view_t = Classroom.FOLLOW, classroom.run, None
    classroom.save(update_fields=["mode", "shown", "view_t"])
    publish(classroom)


def set_view(classroom: Classroom, run_id: str, t: float | None) -> None:
    """The instructor's time travel on the shown run: everyone following it
    sees the moment t (ms), read-only, or the live run again (t None).  The
    students' pages load that moment themselves, as their own timeline would."""
    if run_id != (classroom.shown_id or classroom.run_id):
        raise Rejected("The class is no longer looking at that run: reload the page.", 409)
    classroom.view_t = t
    classroom.save(update_fields=["view_t"])
    publish(classroom)


def run_for(classroom: Classroom, student: Student | None) -> tuple[Run, bool]:
    """(the run this person sees, whether they may command it)."""
    if student is not None and classroom.open and classroom.mode == Classroom.HANDOUT and student.run is not None:
        return student.run, True
    shown = classroom.shown or classroom.run
    return shown, student is None and shown.id == classroom.run_id


# -- polls -------------------------------------------------------------------------


def scenario_steps(classroom: Classroom) -> list:
    return parse(classroom.version.text, "scenario").steps if classroom.version else []


def open_poll(classroom: Classroom, question: str, choices: list, answer: str = "") -> Poll:
    if not classroom.open:
        raise Rejected("The class has ended.", 410)
    question = " ".join((question or "").split())
    labels = [" ".join(str(c.get("label", "")).split()) if isinstance(c, dict) else " ".join(str(c).split())
              for c in choices]
    labels = [label for label in labels if label]
    if not question or len(question) > 300:
        raise Rejected("A poll needs a question of at most 300 characters.", 400)
    if not 2 <= len(labels) <= 5 or any(len(label) > 120 for label in labels):
        raise Rejected("A poll has 2 to 5 choices, one per line, each at most 120 characters.", 400)
    if len(set(labels)) != len(labels):
        raise Rejected("Two choices have the same words.", 400)
    values = [c.get("value", c.get("label")) if isinstance(c, dict) else c for c in choices if c]
    with transaction.atomic():
        Poll.objects.filter(classroom=classroom, state=Poll.OPEN).update(state=Poll.CLOSED)
        poll = Poll.objects.create(classroom=classroom, question=question,
                                   choices=[{"label": label, "value": v} for label, v in zip(labels, values)],
                                   answer=answer)
    publish(classroom)
    return poll


def open_step_poll(classroom: Classroom, index: int) -> Poll:
    steps = scenario_steps(classroom)
    if not 0 <= index < len(steps) or steps[index].ask is None:
        raise Rejected("That step asks no question.", 400)
    ask = steps[index].ask
    return open_poll(classroom, ask.question, [{"label": c.label, "value": c.value} for c in ask.choices],
                     ask.answer)


def present_step(classroom: Classroom, index: int) -> None:
    """Apply a scenario step's commands to the class run (the instructor's Show me)."""
    from pattern_lab.runs.services import submit_command

    steps = scenario_steps(classroom)
    if not 0 <= index < len(steps):
        raise Rejected("There is no such step.", 400)
    for command in steps[index].do:
        action, *args = command.split()
        submit_command(classroom.run, classroom.run.owner, action, args, wait=False)
    classroom.step = index
    classroom.save(update_fields=["step"])
    publish(classroom)


def vote(student: Student, poll_id, choice) -> Vote:
    limit(f"vote:{student.id}", VOTES_PER_10S, 10)
    poll = Poll.objects.filter(id=poll_id if str(poll_id).isdigit() else 0, classroom=student.classroom_id).first()
    if poll is None:
        raise Rejected("There is no such poll in this class.", 404)
    if poll.state != Poll.OPEN or not student.classroom.open:
        raise Rejected("This poll is closed: votes are no longer taken.", 409)
    try:
        choice = int(choice)
        if not 0 <= choice < len(poll.choices):
            raise ValueError
    except (TypeError, ValueError):
        raise Rejected("Pick one of the choices shown.", 400) from None
    try:
        with transaction.atomic():
            v = Vote.objects.create(poll=poll, student=student, choice=choice)
    except IntegrityError:
        raise Rejected("You have already voted in this poll.", 409) from None
    publish(student.classroom, students=False)  # only the instructor sees the counts before the reveal
    return v


def close_poll(poll: Poll) -> None:
    if poll.state == Poll.OPEN:
        poll.state = Poll.CLOSED
        poll.save(update_fields=["state"])
    publish(poll.classroom)


def reveal(poll: Poll) -> None:
    """Show the votes beside what the run did: the answer is evaluated on the
    class run as it is now (rebuilt from its seed and command log)."""
    result = None
    if poll.answer:
        run = poll.classroom.run
        t = current_t(run)
        value = evaluate(poll.answer, snapshot_at(run, t))
        correct = next((i for i, c in enumerate(poll.choices) if same_value(c["value"], value)), None)
        result = {"answer": value, "correct": correct, "t": t}
    poll.state, poll.result = Poll.REVEALED, result
    poll.save(update_fields=["state", "result"])
    publish(poll.classroom)


def counts(poll: Poll) -> list[int]:
    out = [0] * len(poll.choices)
    for choice in poll.votes.values_list("choice", flat=True):
        if 0 <= choice < len(out):
            out[choice] += 1
    return out


def poll_context(poll: Poll | None, role: str) -> dict:
    if poll is None:
        return {"poll": None}
    n = counts(poll)
    show_counts = role == TEACHER or poll.state == Poll.REVEALED
    correct = (poll.result or {}).get("correct")
    choices = [{"index": i, "label": c["label"], "votes": n[i] if show_counts else None,
                "correct": None if poll.state != Poll.REVEALED or not poll.answer else correct == i}
               for i, c in enumerate(poll.choices)]
    return {"poll": poll, "choices": choices, "total": sum(n), "show_counts": show_counts,
            "graded": poll.state == Poll.REVEALED and bool(poll.answer), "correct": correct}


# -- publishing ----------------------------------------------------------------------


def frame(classroom: Classroom, role: str) -> str:
    poll = classroom.polls.order_by("-id").first()
    context = {"classroom": classroom, "role": role, **poll_context(poll, role),
               "students": classroom.students.count(), "view_run": classroom.shown_id or classroom.run_id,
               "view_t": "" if classroom.view_t is None else repr(classroom.view_t)}
    return render_to_string("teach/class_frame.html", context)


def publish(classroom: Classroom, students: bool = True, teacher: bool = True) -> None:
    r = keys.client()
    seq = r.incr(f"class:{classroom.id}:seq")
    for role, wanted in ((STUDENTS, students), (TEACHER, teacher)):
        if not wanted:
            continue
        name = channel(classroom, role)
        payload = wire.pack(seq, frame(classroom, role))
        r.pipeline().set(keys.full(name), payload, ex=keys.FRAME_TTL_S).publish(keys.frames(name), payload).execute()
