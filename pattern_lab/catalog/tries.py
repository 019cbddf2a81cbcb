"""The "What to try" steps of each lab, as data.

Each lab has `tries/<slug>.yaml`: a list of steps, each with

  text      what to do and what to watch, in our own words (inline HTML allowed)
  params    (optional) settings the step needs, e.g. {breakers: "off"}
  commands  what **Set this up** applies, each {at: simulated ms, do: "crash n5",
            note: optional caption shown when it is applied}
  expect    a JMESPath expression over the run's snapshot that is true once the
            state the step describes has been reached
  seed      (optional) a seed the step needs (else the run's own seed is kept)
  within    (optional) simulated ms after the last command by which `expect`
            holds when followed as written (default 8000)

Set this up starts a run with the lab's default settings plus the step's, and
the current seed, and
applies the commands at their times, exactly like a scenario; the page then
shows when `expect` holds.  The unit tests replay every step through the
kernel and check that `expect` becomes true."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jmespath
import yaml

HERE = Path(__file__).resolve().parent / "tries"
DEFAULT_WITHIN = 8000


class TryError(ValueError):
    pass


@dataclass(frozen=True)
class Step:
    at: float
    action: str
    args: tuple[str, ...]
    note: str = ""

    def as_scenario(self) -> dict:
        out = {"t": int(self.at), "action": self.action, "args": list(self.args)}
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class TryItem:
    index: int
    text: str
    expect: str
    commands: tuple[Step, ...]
    params: dict = field(default_factory=dict)
    within: float = DEFAULT_WITHIN
    seed: int | None = None

    @property
    def until(self) -> float:
        """Simulated time by which the step's state must have been reached."""
        return (self.commands[-1].at if self.commands else 0) + self.within

    def reached(self, snapshot: dict) -> bool:
        """True once the step's commands are all applied and `expect` holds."""
        if self.commands and snapshot.get("t", 0) < self.commands[-1].at:
            return False
        try:
            return bool(compiled(self.expect).search(snapshot))
        except jmespath.exceptions.JMESPathError:  # e.g. a field that is null for now
            return False

    def scenario(self, seed: int) -> dict:
        """The step as a scenario: the lab's default settings with the step's
        own (as the steps are written and tested), and the given seed unless
        the step needs its own."""
        return {"params": dict(self.params), "seed": seed if self.seed is None else self.seed,
                "commands": [c.as_scenario() for c in self.commands]}


@cache
def compiled(expression: str):
    return jmespath.compile(expression)


def _step(raw, where: str) -> Step:
    if not isinstance(raw, dict) or set(raw) - {"at", "do", "note"} or "do" not in raw:
        raise TryError(f"{where}: a command looks like {{at: 1000, do: 'crash n5', note: '...'}}")
    words = str(raw["do"]).split()
    at = raw.get("at", 0)
    if not isinstance(at, int) or at < 0:
        raise TryError(f"{where}: 'at' is whole simulated milliseconds")
    return Step(float(at), words[0], tuple(words[1:]), str(raw.get("note", "")))


@cache
def items(slug: str) -> tuple[TryItem, ...]:
    path = HERE / f"{slug}.yaml"
    if not path.exists():
        return ()
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    out = []
    for i, raw in enumerate(data):
        where = f"{path.name} step {i + 1}"
        unknown = set(raw) - {"text", "params", "commands", "expect", "within", "seed"}
        if unknown:
            raise TryError(f"{where}: unknown field '{sorted(unknown)[0]}'")
        try:
            compiled(raw["expect"])
        except (KeyError, jmespath.exceptions.JMESPathError) as err:
            raise TryError(f"{where}: expect is missing or not JMESPath ({err})") from None
        commands = tuple(sorted((_step(c, where) for c in raw.get("commands") or []), key=lambda s: s.at))
        params = {k: (v if not isinstance(v, bool) else ("on" if v else "off")) for k, v in (raw.get("params") or {}).items()}
        out.append(TryItem(i, raw["text"].strip(), raw["expect"], commands, params,
                           float(raw.get("within", DEFAULT_WITHIN)), raw.get("seed")))
    return tuple(out)


def slugs_with_items() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.yaml"))
