"""What a learner does in a lesson: open it, predict, let the run act, be
graded by what the run did, move on, go back, start over.

The grading never trusts the page: when the page reports that a step's
condition holds at simulated time t, the server rebuilds the run at t from
its seed and command log (runs are deterministic) and evaluates the
condition and the answer itself."""

from __future__ import annotations

from django.db import transaction

from pattern_lab.runs import keys
from pattern_lab.runs.conditions import evaluate, truthy
from pattern_lab.runs.models import Command, Run
from pattern_lab.runs.services import Rejected, ensure_actor, start_run, submit_command, wake
from simulations.kernel import replay

from .models import Progress
from .schema import Loaded, library, parse


def lesson_or_404(slug: str, name: str) -> Loaded:
    item = library().get(f"{slug}/{name[:60]}")
    if item is None:
        raise Rejected(f"There is no lesson '{name[:60]}' for this lab.", 404)
    return item


def item_for_key(key: str) -> Loaded:
    """A lesson by key: '<lab>/<name>' from the library, or
    'scenario/<id>/<version>' from the instructors' scenario library."""
    if key.startswith("scenario/"):
        from pattern_lab.teach.models import ScenarioVersion

        _, sid, number = (key.split("/") + ["", ""])[:3]
        version = ScenarioVersion.objects.filter(scenario_id=sid, number=number if number.isdigit() else 0).first()
        if version is None:
            raise Rejected("That scenario version no longer exists.", 404)
        return Loaded(key, parse(version.text, "scenario"), key)
    slug, _, name = key.partition("/")
    return lesson_or_404(slug, name)


def new_run(item: Loaded, who: str, sim_t: float = 0.0, commands=()) -> Run:
    lesson = item.lesson
    with transaction.atomic():
        run = start_run(lesson.lab, dict(lesson.params), lesson.seed, who)
        run.kind, run.sim_t = "lesson", sim_t
        run.save(update_fields=["kind", "sim_t"])
        Command.objects.bulk_create(
            Command(run=run, action=c.action, args=c.args, t=c.t, n=c.n, error=c.error, author=c.author)
            for c in commands)
    return run


def open_progress(item: Loaded, who: str) -> Progress:
    progress, _ = Progress.objects.get_or_create(owner=who, key=item.key)
    steps = len(item.lesson.steps)
    if progress.step >= steps:  # the lesson file got shorter since
        progress.step, progress.finished = steps - 1, True
    if progress.run is None or progress.run.lab != item.lesson.lab:
        progress.run = new_run(item, who)
        progress.step, progress.state, progress.finished = 0, {}, False
    progress.save()
    set_watch(progress, item)
    return progress


def set_watch(progress: Progress, item: Loaded) -> None:
    """Tell the worker what to evaluate on each frame for the current step."""
    run = progress.run
    step = item.lesson.steps[progress.step]
    exprs = {"expect": step.expect.when} if step.expect else {}
    if step.ask:
        exprs["answer"] = step.ask.answer
    locked = bool(step.ask) and progress.chosen(progress.step) is None and not progress.finished
    watch = {"step": progress.step, "exprs": exprs, "locked": locked}
    if run.watch != watch:
        run.watch = watch
        run.save(update_fields=["watch", "updated"])
        wake(run.id, "ctl")
    ensure_actor(run.id)


def current_t(run: Run) -> float:
    pos = keys.client().get(keys.pos(run.id))
    return float(pos.split()[0]) if pos else run.sim_t


def snapshot_at(run: Run, t: float) -> dict:
    """The run exactly as it was at simulated time t (a deterministic replay)."""
    from simulations import get_lab

    commands = [c.as_tuple() for c in run.commands.exclude(t=None).filter(t__lte=t).order_by("n", "id")]
    return replay(get_lab(run.lab), run.params, run.seed, commands, t).snapshot()


def choose(progress: Progress, item: Loaded, index) -> None:
    step = item.lesson.steps[progress.step]
    if step.ask is None:
        raise Rejected("This step asks no question.", 409)
    if progress.chosen(progress.step) is not None:
        raise Rejected("You have already made your prediction for this step.", 409)
    try:
        index = int(index)
        if not 0 <= index < len(step.ask.choices):
            raise ValueError
    except (TypeError, ValueError):
        raise Rejected("Pick one of the answers shown.", 400) from None
    progress.state.setdefault("chosen", {})[str(progress.step)] = index
    progress.save(update_fields=["state", "updated"])
    set_watch(progress, item)


def has_left(progress: Progress, at) -> bool:
    """Has the lesson left the step the page showed when the learner acted
    (`at`, its index)?  A post without `at` (a page from before) is taken
    as made on the current step."""
    return at not in (None, "") and str(at) != str(progress.step)


def show_me(progress: Progress, item: Loaded) -> bool:
    """Apply the step's commands for the learner; False, with nothing done,
    once the step is complete (the run is not changed under a graded step)."""
    step = item.lesson.steps[progress.step]
    if progress.graded(progress.step) is not None:
        return False
    if step.ask and progress.chosen(progress.step) is None:
        raise Rejected("Make your prediction first.", 409)
    if not step.do:
        raise Rejected("This step has nothing to show: the cluster gets there by itself.", 409)
    last = len(step.do) - 1
    for i, command in enumerate(step.do):
        action, *args = command.split()
        # Without `expect` the step is complete once its commands are applied:
        # wait for the last one's verdict, then grade at that moment.
        _, error = submit_command(progress.run, progress.owner, action, args, wait=step.expect is None and i == last)
        if error:
            raise Rejected(f"'{command}' was refused: {error}", 409)
    if step.expect is None:
        complete(progress, item, current_t(progress.run))
    return True


def complete(progress: Progress, item: Loaded, t) -> bool:
    """The page saw the step's condition hold at t: check it and grade."""
    step = item.lesson.steps[progress.step]
    if progress.graded(progress.step) is not None:
        return True
    if step.ask and progress.chosen(progress.step) is None:
        raise Rejected("Make your prediction first.", 409)
    try:
        t = float(t)
    except (TypeError, ValueError):
        raise Rejected("t must be a simulated time in milliseconds.", 400) from None
    t = max(progress.mark(progress.step), min(t, current_t(progress.run)))
    snap = snapshot_at(progress.run, t)
    if step.expect and not truthy(evaluate(step.expect.when, snap)):
        return False
    grade = {"t": t}
    if step.ask:
        grade["answer"] = evaluate(step.ask.answer, snap)
        right = next((i for i, c in enumerate(step.ask.choices) if c.matches(grade["answer"])), None)
        grade["correct"] = right
        grade["right"] = right is not None and right == progress.chosen(progress.step)
    progress.state.setdefault("graded", {})[str(progress.step)] = grade
    progress.save(update_fields=["state", "updated"])
    return True


def next_step(progress: Progress, item: Loaded) -> None:
    grade = progress.graded(progress.step)
    if grade is None:
        raise Rejected("Finish this step first.", 409)
    if progress.step + 1 >= len(item.lesson.steps):
        progress.finished = True
    else:
        progress.step += 1
        progress.state.setdefault("marks", {})[str(progress.step)] = grade["t"]
    progress.save()
    set_watch(progress, item)


def back(progress: Progress, item: Loaded, step) -> None:
    """Back to the start of an earlier step: a new run with the same seed and
    the commands given before that step began."""
    try:
        step = int(step)
        if not 0 <= step <= progress.step:
            raise ValueError
    except (TypeError, ValueError):
        raise Rejected("You can go back to a step you have reached.", 400) from None
    mark = progress.mark(step)
    old = progress.run
    commands = list(old.commands.exclude(t=None).filter(t__lte=mark).order_by("n", "id")) if old else []
    progress.run = new_run(item, progress.owner, sim_t=mark, commands=commands)
    progress.step, progress.finished = step, False
    for part in ("chosen", "graded"):
        progress.state[part] = {k: v for k, v in progress.state.get(part, {}).items() if int(k) < step}
    progress.state["marks"] = {k: v for k, v in progress.state.get("marks", {}).items() if int(k) <= step}
    progress.save()
    set_watch(progress, item)


def restart(progress: Progress, item: Loaded) -> None:
    progress.run = new_run(item, progress.owner)
    progress.step, progress.state, progress.finished = 0, {}, False
    progress.save()
    set_watch(progress, item)


def summary(progress: Progress, item: Loaded) -> dict:
    asked = [i for i, s in enumerate(item.lesson.steps) if s.ask]
    right = sum(1 for i in asked if (progress.graded(i) or {}).get("right"))
    done = sum(1 for i in range(len(item.lesson.steps)) if progress.graded(i) is not None)
    return {"done": done, "steps": len(item.lesson.steps), "asked": len(asked), "right": right}


def next_lesson(item: Loaded) -> dict | None:
    """Where to go next: the lab's next lesson, else the first lesson of the next lab."""
    keys_ = list(library())
    if item.key not in keys_:
        return None
    at = keys_.index(item.key)
    for key in keys_[at + 1:]:
        return {"url": lesson_url(key), "title": library()[key].lesson.title}
    return None


def lesson_url(key: str) -> str:
    from django.urls import reverse

    if key.startswith("scenario/"):
        return reverse("teach:play", args=[key.split("/")[1]])
    slug, name = key.split("/", 1)
    return reverse("lessons:lesson", args=[slug, name])
