"""Conditions over a run's snapshot: JMESPath expressions (data, never code).

Lessons, scenarios and the page's "what to try" steps say when something has
happened with them ("node.n5.status == 'down'", "check.agreement.ok").  They
see the snapshot that the CLI prints, plus two conveniences: `node.<id>` (a
node by id) and `check.<name>` (a check by name).  A run can carry a *watch*
(named expressions); the worker evaluates them on every frame it sends, so a
page learns at once when a condition becomes true."""

from __future__ import annotations

from functools import lru_cache

import jmespath
from jmespath.exceptions import JMESPathError


class ConditionError(ValueError):
    pass


@lru_cache(maxsize=2048)
def compiled(expression: str):
    try:
        return jmespath.compile(expression)
    except JMESPathError as err:
        first = str(err).strip().splitlines()[0]
        raise ConditionError(f"the expression {expression!r} does not compile ({first})") from None


def context(snapshot: dict) -> dict:
    return {**snapshot,
            "node": {n["id"]: n for n in snapshot.get("nodes", [])},
            "check": {c["name"]: c for c in snapshot.get("checks", [])}}


def evaluate(expression: str, snapshot: dict, ctx: dict | None = None):
    try:
        return compiled(expression).search(ctx if ctx is not None else context(snapshot))
    except JMESPathError:
        return None  # e.g. comparing a string with a number: the condition is simply not true


def truthy(value) -> bool:
    """JMESPath's truth: false, null, empty strings, lists and objects are false."""
    return value not in (False, None, "", [], {})


def watch_values(watch: dict, snapshot: dict) -> dict:
    """Evaluate a run's watch on one snapshot: {name: value} for each expression."""
    ctx = context(snapshot)
    return {name: evaluate(expr, snapshot, ctx) for name, expr in (watch.get("exprs") or {}).items()}
