"""Small helpers for the simulation tests: run a lab from a script."""

from __future__ import annotations

from simulations import get_lab
from simulations.cli import parse_do
from simulations.kernel import Lab, parse_time


def run(slug: str, *do: str, seed: int = 1, until: str | float | None = None, **params) -> Lab:
    """Run `slug` with `--do`-style commands ("1s crash n5") until `until`.

    The events are kept on `lab.log` so tests can look for what happened."""
    lab = get_lab(slug)({k: str(v) for k, v in params.items()}, seed)
    lab.log = []
    commands = sorted((parse_do(d) for d in do), key=lambda c: c[0])
    for t, name, args in commands:
        lab.run_until(t)
        lab.command(name, args)
        lab.log += lab.drain()
    end = parse_time(until) if until is not None else (commands[-1][0] if commands else 0) + 1000
    lab.run_until(end)
    lab.log += lab.drain()
    return lab


def step(lab: Lab, until: str | float, *do: str) -> Lab:
    """Continue a run: apply more commands, then run until `until`."""
    for t, name, args in sorted((parse_do(d) for d in do), key=lambda c: c[0]):
        lab.run_until(t)
        lab.command(name, args)
        lab.log += lab.drain()
    lab.run_until(parse_time(until))
    lab.log += lab.drain()
    return lab


def nodes(lab: Lab) -> dict[str, dict]:
    return {n["id"]: n for n in lab.snapshot()["nodes"]}


def check(lab: Lab, name: str) -> dict:
    return next(c for c in lab.snapshot()["checks"] if c["name"] == name)


def events(lab: Lab, kind: str) -> list[dict]:
    return [e for e in lab.log if e["kind"] == kind]
