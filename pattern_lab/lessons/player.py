"""Play a lesson headlessly through the kernel, as `manage.py lessons play`
and the test suite do: for each step apply its `do` commands (what Show me
does on the page), run until `expect` holds (at most `within` of simulated
time), then read `answer` and find the choice it lands on.

A step that has commands must need them: if its `expect` holds without them,
the page completes the step by itself (before the learner acts, or while
Show me is on its way) and grades a run the step did not set up.  The player
checks the moment the step starts, and a short while after it on a copy of
the run (long enough for a frame or two, far shorter than a learner needs to
read the step and click Show me); a longer wait would cost as much as
playing the lesson again."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from simulations.kernel import fmt_ms

from .schema import Lesson, evaluate, truthy

SLICE_MS = 20.0  # how often the condition is looked at (the page sees a frame every 100 ms)
IDLE_MS = 500.0  # how long after a step starts its expect must still need the step's commands


@dataclass
class StepResult:
    index: int
    title: str
    started: float
    reached: float | None = None
    answer: object = None
    correct: str | None = None  # label of the choice the run landed on
    error: str = ""


@dataclass
class Transcript:
    key: str
    results: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(not r.error for r in self.results) and bool(self.results)

    def lines(self) -> list[str]:
        out = []
        for r in self.results:
            head = f"step {r.index + 1} {r.title!r}" if r.title else f"step {r.index + 1}"
            if r.error:
                out.append(f"  FAIL {head} (from {fmt_ms(r.started)}): {r.error}")
                continue
            text = f"  ok   {head}: from {fmt_ms(r.started)}, complete at {fmt_ms(r.reached)}"
            if r.correct is not None:
                text += f"; the run answered {r.answer!r} -> choice {r.correct!r}"
            out.append(text)
        return out


def run_until_true(lab, expression: str, deadline: float) -> bool:
    while True:
        if truthy(evaluate(expression, lab.snapshot())):
            return True
        if lab.now >= deadline:
            return False
        lab.run_until(min(deadline, lab.now + SLICE_MS))


def holds_by_itself(lab, expression: str, window: float) -> float | None:
    """When `expression` holds, left alone, at the moment `lab` is at or
    within `window` after it (None if it does not): the run is not touched."""
    if truthy(evaluate(expression, lab.snapshot())):
        return lab.now
    idle = copy.deepcopy(lab)  # the same run, left alone
    if run_until_true(idle, expression, idle.now + window):
        return idle.now
    return None


def play(lesson: Lesson, key: str = "lesson") -> Transcript:
    lab = lesson.lab_cls(lesson.params, lesson.seed)
    transcript = Transcript(key)
    for i, step in enumerate(lesson.steps):
        if step.at is not None and step.at > lab.now:
            lab.run_until(step.at)
        result = StepResult(i, step.title, lab.now)
        transcript.results.append(result)
        if step.do and step.expect:
            held = holds_by_itself(lab, step.expect.when, min(IDLE_MS, step.expect.within))
            if held is not None:
                result.error = (f"`{step.expect.when}` holds at {fmt_ms(held)} without the step's "
                                f"commands ({', '.join(step.do)}): the step would complete by itself")
                return transcript
        for command in step.do:
            action, *args = command.split()
            error = lab.command(action, args)
            if error:
                result.error = f"'{command}' was refused: {error}"
                return transcript
        if step.expect is None:  # complete as soon as the commands are applied
            result.reached = lab.now
            continue
        if not run_until_true(lab, step.expect.when, lab.now + step.expect.within):
            result.error = (f"`{step.expect.when}` did not become true within "
                            f"{fmt_ms(step.expect.within)}")
            return transcript
        result.reached = lab.now
        if step.ask:
            result.answer = evaluate(step.ask.answer, lab.snapshot())
            match = next((c for c in step.ask.choices if c.matches(result.answer)), None)
            if match is None:
                labels = ", ".join(repr(c.value) for c in step.ask.choices)
                result.error = (f"the answer `{step.ask.answer}` gave {result.answer!r}, "
                                f"which is none of the choices ({labels})")
                return transcript
            result.correct = match.label
    return transcript
