"""The lesson format, shared by the tutorials and instructors' scenarios.

A lesson is a YAML file (read with `yaml.safe_load`, so it can never run
code) validated by the models below:

    lab: leader-election          # the lab it runs on
    title: When the leader dies
    summary: What the bully algorithm does when the leader crashes.
    minutes: 5                    # about how long it takes
    params: {algorithm: bully}    # the lab's settings (defaults otherwise)
    seed: 7
    steps:
      - title: The leader crashes
        say: The highest id leads. **Crash it** and watch.   # Markdown subset
        ask:                                                 # asked before the action
          question: Who leads once the election settles?
          choices: [n3, n4, nobody]
          answer: leader          # JMESPath over the snapshot, read once `expect` holds
        do: [crash n5]            # what Show me applies
        expect:                   # what completes the step
          when: "node.n4.role == 'leader'"
          within: 5s
          hint: Crash n5 with its button in the Nodes panel.
        after: n4 won because ...   # shown once the step is complete

Conditions and answers are JMESPath expressions over the snapshot that the
CLI prints, plus two conveniences: `node.<id>` (a node by id) and
`check.<name>` (a check by name).  The right answer is never written in the
file: it is what the run did."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pattern_lab.limits import SCENARIO_MAX_KB, too_big
from pattern_lab.runs.conditions import ConditionError, compiled, evaluate, truthy  # noqa: F401
from simulations import get_lab
from simulations.kernel import SimError, parse_time

MAX_STEPS = 40
LIBRARY = Path(__file__).resolve().parent / "library"


class LessonError(ValueError):
    """A lesson file we refuse: where (file, line) and why, in words."""

    def __init__(self, source: str, line: int | None, reason: str):
        self.source, self.line, self.reason = source, line, reason
        where = f"{source}, line {line}" if line else source
        super().__init__(f"{where}: {reason}")


# -- small value types ---------------------------------------------------------


def _duration(value: Any) -> float:
    try:
        return parse_time(value)
    except SimError as err:
        raise ValueError(str(err)) from None


Duration = Annotated[float, BeforeValidator(_duration)]


def _expression(value: str) -> str:
    try:
        compiled(value)
    except ConditionError as err:
        raise ValueError(str(err)) from None
    return value


Expression = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_expression)]
Text = Annotated[str, Field(max_length=4000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Choice(Strict):
    """One answer to pick.  Written as a plain value (`n4`, `true`, `3`) or as
    `{label: "Yes, it opens", value: true}` when the words differ from the value."""

    label: Annotated[str, Field(min_length=1, max_length=120)]
    value: str | bool | int | float | None

    @model_validator(mode="before")
    @classmethod
    def from_scalar(cls, data):
        if isinstance(data, (str, bool, int, float)) or data is None:
            # Look up booleans by identity: 0 == False and 1 == True in a dict.
            if isinstance(data, bool):
                label = "yes" if data else "no"
            else:
                label = data if isinstance(data, str) else "none" if data is None else str(data)
            return {"label": label, "value": data}
        return data

    def matches(self, result) -> bool:
        return same_value(self.value, result)


class Ask(Strict):
    question: Annotated[str, Field(min_length=1, max_length=500)]
    choices: Annotated[list[Choice], Field(min_length=2, max_length=5)]
    answer: Expression

    @field_validator("choices")
    @classmethod
    def distinct(cls, choices):
        labels = [c.label for c in choices]
        if len(set(labels)) != len(labels):
            raise ValueError("two choices have the same words")
        return choices


class Expect(Strict):
    when: Expression
    within: Duration = 10_000.0
    hint: Text = ""

    @field_validator("within")
    @classmethod
    def bounded(cls, v):
        if not 0 < v <= 600_000:
            raise ValueError("within must be more than 0 and at most 10 minutes of simulated time")
        return v


class Step(Strict):
    title: Annotated[str, Field(max_length=120)] = ""
    say: Text = ""
    ask: Ask | None = None
    # When the step's commands are due in a timed playback (a recorded run,
    # a scenario shown to a class); a lesson applies them when the learner acts.
    at: Duration | None = None
    do: Annotated[list[str], Field(max_length=20)] = []
    expect: Expect | None = None
    after: Text = ""

    @field_validator("do", mode="before")
    @classmethod
    def one_or_many(cls, v):
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def has_work(self):
        # A step is complete when `expect` holds, or, without one, as soon as
        # its commands are applied.
        if not self.do and self.expect is None:
            raise ValueError("this step has nothing to do: give it `do` commands or an `expect` condition")
        if self.ask and self.expect is None:
            raise ValueError("a question needs `expect`: the moment the run's answer is read")
        if self.at is not None and not self.do:
            raise ValueError("`at` says when the step's `do` commands are due, but there are none")
        return self


class Lesson(Strict):
    lab: str
    title: Annotated[str, Field(min_length=1, max_length=120)]
    summary: Annotated[str, Field(min_length=1, max_length=600)]
    minutes: Annotated[int, Field(ge=1, le=120)] = 5
    params: dict[str, str | int | float | bool] = {}
    seed: Annotated[int, Field(ge=0, lt=2**31)] = 1
    steps: Annotated[list[Step], Field(min_length=1, max_length=MAX_STEPS)]

    # Filled in by load(): where the lesson came from and its id.
    @property
    def lab_cls(self):
        return get_lab(self.lab)

    def parsed_params(self) -> dict:
        return self.lab_cls.parse_params(self.params)

    def questions(self) -> int:
        return sum(1 for s in self.steps if s.ask)


def same_value(a, b) -> bool:
    """Compare an answer with a choice: numbers by value, everything else exactly
    (so `true` never equals `1`)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b)
    return a == b


# -- loading, with the line of every mistake ----------------------------------------

_COMMAND = re.compile(r"^[a-z][\w-]*(\s+\S+)*$")


@dataclass(frozen=True)
class Loaded:
    key: str  # "<lab>/<name>" for the library, else the file name
    lesson: Lesson
    source: str


def _line_of(root, path: tuple) -> int | None:
    """The line of the YAML node at `path` (keys and indexes), or of the
    nearest parent that exists."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in path:
        child = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == part:
                    child = v
                    line = k.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _no_aliases(node, seen: set) -> None:
    """Anchors and aliases are refused: an alias can make a tiny file expand
    into a huge one."""
    if id(node) in seen:
        raise LessonError("", node.start_mark.line + 1, "anchors and aliases (&name, *name) are not allowed")
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _no_aliases(k, seen)
            _no_aliases(v, seen)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _no_aliases(v, seen)


def _where(loc: tuple) -> str:
    parts = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p + 1}]")
        elif not re.match(r"^[a-z_]+$", str(p)):
            continue  # pydantic's internal names for union members
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts).replace("steps[", "step [")


def parse(text: str, source: str = "lesson") -> Lesson:
    """Text of a lesson file -> Lesson, or LessonError saying where and why."""
    if too_big(text):
        raise LessonError(source, None, f"a lesson file may be at most {SCENARIO_MAX_KB} kB")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            _no_aliases(root, set())
        data = yaml.safe_load(text)
    except LessonError as err:
        raise LessonError(source, err.line, err.reason) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        if "could not determine a constructor for the tag" in str(err):
            problem = "YAML tags (!something) are not allowed"
        raise LessonError(source, mark.line + 1 if mark else None, f"not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise LessonError(source, 1, "a lesson is a mapping with lab, title, summary and steps")
    try:
        lesson = Lesson.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = f"unknown field '{loc[-1]}'"
        elif first["type"] == "missing":
            message = f"'{loc[-1]}' is missing"
        elif first["type"] in ("too_short", "too_long"):
            ctx = first["ctx"]
            message = (f"needs at least {ctx['min_length']} entries, not {ctx.get('actual_length')}"
                       if first["type"] == "too_short" else
                       f"may have at most {ctx['max_length']} entries, not {ctx.get('actual_length')}")
        where = _where(loc)
        raise LessonError(source, _line_of(root, loc), f"{where}: {message}" if where else message) from None
    _check_against_lab(lesson, root, source)
    return lesson


def _check_against_lab(lesson: Lesson, root, source: str) -> None:
    """What only the lab can say: it exists, its params, its actions' shapes."""
    try:
        lab_cls = get_lab(lesson.lab)
    except SimError as err:
        raise LessonError(source, _line_of(root, ("lab",)), str(err)) from None
    try:
        lab_cls.parse_params(lesson.params)
    except SimError as err:
        raise LessonError(source, _line_of(root, ("params",)), str(err)) from None
    for i, step in enumerate(lesson.steps):
        for j, command in enumerate(step.do):
            where = _line_of(root, ("steps", i, "do", j))
            tokens = command.split()
            if not tokens or not _COMMAND.match(command.strip()):
                raise LessonError(source, where, f"'{command[:40]}' is not a command like 'crash n5'")
            try:
                lab_cls.spec(tokens[0]).check_count(tokens[1:])
            except SimError as err:
                raise LessonError(source, where, f"step {i + 1}: {err}") from None


def load_file(path: Path) -> Lesson:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LessonError(path.name, None, "the file is not UTF-8 text") from None
    return parse(text, str(path.relative_to(LIBRARY.parent) if path.is_relative_to(LIBRARY.parent) else path))


@cache
def library() -> dict[str, Loaded]:
    """Every lesson in the library, by key '<lab>/<name>', in file order.
    A broken file raises: `manage.py lessons check` and the tests catch it."""
    out: dict[str, Loaded] = {}
    for path in sorted(LIBRARY.glob("*/*.yaml")):
        key = f"{path.parent.name}/{path.stem}"
        lesson = load_file(path)
        if lesson.lab != path.parent.name:
            raise LessonError(key, 1, f"a lesson in library/{path.parent.name}/ must be for that lab, "
                                      f"not '{lesson.lab}'")
        out[key] = Loaded(key, lesson, str(path))
    return out


def lessons_for(slug: str) -> list[Loaded]:
    return [item for item in library().values() if item.lesson.lab == slug]


def to_json(value) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
