"""The scenario library's logic: create, edit (a new version per change),
import (YAML lesson files, or the JSON that a run's Scenario link exports),
record a live run, copy someone's public scenario."""

from __future__ import annotations

import json

import yaml
from django.db import transaction

from pattern_lab.lessons.schema import LessonError, parse
from pattern_lab.limits import SCENARIO_MAX_KB, too_big
from pattern_lab.runs.models import Run
from pattern_lab.runs.services import Rejected
from simulations import get_lab
from simulations.kernel import SimError, parse_time

from .models import Scenario, ScenarioVersion


def validate(text: str, source: str = "scenario"):
    """-> the parsed lesson; raises LessonError (with the line) when wrong."""
    return parse(text, source)


def create(owner, text: str, visibility: str = Scenario.PRIVATE, copied_from=None) -> Scenario:
    lesson = validate(text)
    with transaction.atomic():
        scenario = Scenario.objects.create(owner=owner, title=lesson.title, lab=lesson.lab,
                                           visibility=visibility, copied_from=copied_from)
        ScenarioVersion.objects.create(scenario=scenario, number=1, text=text)
    return scenario


def save(scenario: Scenario, text: str, visibility: str | None = None) -> ScenarioVersion:
    """A new version when the text changed (earlier versions stay as they were)."""
    lesson = validate(text)
    with transaction.atomic():
        latest = scenario.latest()
        version = latest
        if latest is None or latest.text != text:
            version = ScenarioVersion.objects.create(scenario=scenario, number=(latest.number if latest else 0) + 1,
                                                     text=text)
        scenario.title, scenario.lab = lesson.title, lesson.lab
        if visibility in dict(Scenario.VISIBILITY):
            scenario.visibility = visibility
        scenario.save()
    return version


def dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def from_commands(lab: str, params: dict, seed: int, commands: list[dict], title: str, summary: str) -> str:
    """A scenario (lesson format) from timed commands: one step per command,
    due at its time; the instructor then captions, trims and adds questions."""
    steps = []
    for c in commands:
        command = " ".join([c["action"], *map(str, c.get("args", []))])
        step = {"title": c.get("note") or command, "at": f"{int(round(c['t']))}ms", "do": [command]}
        steps.append(step)
    data = {"lab": lab, "title": title, "summary": summary, "params": params, "seed": seed, "steps": steps}
    return dump(data)


def import_text(owner, text: str, filename: str = "scenario") -> Scenario:
    """A YAML lesson file, or the JSON scenario a run's Scenario link exports."""
    if too_big(text):
        raise LessonError(filename, None, f"a scenario file may be at most {SCENARIO_MAX_KB} kB")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        text = json_to_yaml(text, filename)
    try:
        validate(text, filename)
    except LessonError as err:
        raise LessonError(filename, err.line, err.reason) from None
    return create(owner, text)


def json_to_yaml(text: str, filename: str) -> str:
    try:
        data = json.loads(text)
    except ValueError as err:
        raise LessonError(filename, err.lineno, f"not valid JSON ({err.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("commands", []), list):
        raise LessonError(filename, 1, 'a JSON scenario looks like {"lab": ..., "seed": 1, "commands": [...]}')
    lab = data.get("lab")
    try:
        lab_cls = get_lab(str(lab))
    except SimError as err:
        raise LessonError(filename, 1, str(err)) from None
    commands = []
    for i, c in enumerate(data.get("commands") or [], start=1):
        if not isinstance(c, dict) or not isinstance(c.get("action"), str):
            raise LessonError(filename, None, f"command {i} needs an action")
        try:
            t = parse_time(c.get("t", 0))
        except SimError as err:
            raise LessonError(filename, None, f"command {i}: {err}") from None
        commands.append({"t": t, "action": c["action"], "args": c.get("args") or [], "note": c.get("note")})
    return from_commands(lab, data.get("params") or {}, data.get("seed", 1), commands,
                         f"{lab_cls.title} scenario", "Imported from a scenario file.")


def record(owner, run: Run) -> Scenario:
    """Turn a live run into a scenario: its settings, seed and every applied command."""
    commands = [{"t": c.t, "action": c.action, "args": c.args}
                for c in run.commands.exclude(t=None).filter(error="").order_by("n", "id")]
    if not commands:
        raise Rejected("This run has no commands yet: give a few, then record it.", 400)
    lab_cls = get_lab(run.lab)
    text = from_commands(run.lab, run.params, run.seed, commands, f"{lab_cls.title}: recorded run",
                         f"Recorded from a live run ({len(commands)} commands).")
    return create(owner, text)


def copy(owner, scenario: Scenario) -> Scenario:
    if scenario.visibility != Scenario.PUBLIC and scenario.owner_id != owner.id:
        raise Rejected("Only public scenarios can be copied.", 403)
    return create(owner, scenario.latest().text, copied_from=scenario)


TEMPLATE = """\
lab: {lab}
title: {title}
summary: What this scenario shows, in one sentence.
seed: 1
steps:
  - title: A first step
    say: What the class should look at.
    do: [{command}]
"""


def starter(lab: str) -> str:
    lab_cls = get_lab(lab)
    nodes = [n for n in lab_cls(None, 1).nodes if n not in lab_cls.UNFAULTABLE]
    command = f"crash {nodes[-1]}" if nodes and "crash" in lab_cls.ACTIONS else "heal"
    return TEMPLATE.format(lab=lab, title=f"{lab_cls.title}: my scenario", command=command)
