"""Where each lab's nodes sit in the drawing: the web's business, not the
simulation's.

The cluster is drawn in a box 100 wide and 60 high (SVG user units).  A lab
with a drawing of its own registers a function here with `@layout(slug)`; it
gets the run's snapshot and returns `{node id: (x, y)}` in that box.  Nodes
it leaves out (and every node of a lab without a layout) go on a circle.
"""

from __future__ import annotations

import math
from collections.abc import Callable

WIDTH, HEIGHT = 100.0, 60.0

Layout = Callable[[dict], dict[str, tuple[float, float]]]
LAYOUTS: dict[str, Layout] = {}


def layout(slug: str) -> Callable[[Layout], Layout]:
    def register(fn: Layout) -> Layout:
        LAYOUTS[slug] = fn
        return fn

    return register


def positions(snap: dict) -> dict[str, tuple[float, float]]:
    """Every node's place: the lab's layout, else a circle."""
    ids = [n["id"] for n in snap["nodes"]]
    fn = LAYOUTS.get(snap.get("lab", ""))
    out: dict[str, tuple[float, float]] = {}
    if fn is not None:
        out = {k: (float(x), float(y)) for k, (x, y) in fn(snap).items() if k in ids}
    elif snap.get("layout"):  # a lab still giving its own, in percent of width and height
        out = {i: (float(x), float(y) * HEIGHT / 100) for i, (x, y) in snap["layout"].items() if i in ids}
    missing = [i for i in ids if i not in out]
    for k, node_id in enumerate(missing):
        angle = 2 * math.pi * k / max(len(missing), 1) - math.pi / 2
        out[node_id] = (50 + 38 * math.cos(angle), 30 + 17 * math.sin(angle))
    return out


def fixed(places: dict[str, tuple[float, float]]) -> Layout:
    """A drawing whose nodes never change: each id at its place."""
    return lambda snap: places


# ---- the labs' drawings --------------------------------------------------------


@layout("leader-election")
def leader_election(snap: dict) -> dict[str, tuple[float, float]]:
    """The nodes in ring order, clockwise: on an oval with n1 at the top, or,
    from seven nodes on, in two rows (left to right, then back), so the labels
    have room."""
    ids = [n["id"] for n in snap["nodes"]]
    out = {}
    top = -(-len(ids) // 2)
    for i, node_id in enumerate(ids):
        if len(ids) <= 6:
            angle = 2 * math.pi * i / len(ids) - math.pi / 2
            out[node_id] = (round(50 + 36 * math.cos(angle), 1), round(30 + 19.2 * math.sin(angle), 2))
        elif i < top:
            out[node_id] = (round(10 + 80 * i / (top - 1), 1), 12.0)
        else:
            step, bottom = 80 / (top - 1), len(ids) - top  # a shorter bottom row sits in the gaps
            out[node_id] = (round(90 - step * ((top - bottom) / 2 + i - top), 1), 48.0)
    return out


# ---- read-repair
layout("read-repair")(fixed({"coordinator": (18, 30), "n1": (72, 10.8), "n2": (72, 30), "n3": (72, 49.2)}))


# ---- bloom-filter
layout("bloom-filter")(fixed({"client": (12, 30), "filter": (50, 30), "store": (88, 30)}))


# ---- retry
layout("retry")(fixed({"service": (78, 30), "c1": (18, 12), "c2": (18, 30), "c3": (18, 48)}))


# ---- write-ahead-log
layout("write-ahead-log")(fixed({"client": (20, 30), "db": (70, 30)}))


# ---- service-registry
@layout("service-registry")
def service_registry(snap: dict) -> dict[str, tuple[float, float]]:
    """The registry at the top, the clients on the left (the balancer between them and
    the service), the instances in one column on the right; five or more in two columns,
    the second one shifted down half a row so the registry's lines pass between the first.
    (Worked out in percent of the height, then scaled to the box.)"""
    places = {"registry": (36, 17), "c1": (8, 44), "c2": (8, 80), "lb": (46, 58)}
    insts = [i["id"] for i in snap.get("instances", [])]
    rows = len(insts) if len(insts) <= 4 else -(-len(insts) // 2)
    full = len(insts) > 4 and len(insts) == 2 * rows  # the shifted column has a full set of rows
    step = 64 / max(1, rows - 1) if not full else 64 / (rows - 0.5)
    for i, node_id in enumerate(insts):
        col, row = divmod(i, rows)
        if len(insts) <= 4:
            places[node_id] = (86, round(20 + step * row, 1) if rows > 1 else 52)
        else:
            places[node_id] = (66, round(20 + step * row, 1)) if col == 0 else (90, round(20 + step * (row + 0.5), 1))
    return {node_id: (x, y * HEIGHT / 100) for node_id, (x, y) in places.items()}
