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


# ---- sidecar


@layout("sidecar")
def sidecar(snap: dict) -> dict[str, tuple[float, float]]:
    """Client, app, helper and far end (the store or the backend) left to right; the
    helper sits beside the app as a sidecar, on another host as a service (lower down),
    and inside the app as a library."""
    helper = {"sidecar": (60, 24), "service": (62, 46.8), "in-process": (54, 34.8)}
    app = {"sidecar": (38, 24), "service": (40, 24), "in-process": (42, 24)}
    mode = snap["params"]["mode"]
    return {"client": (8, 30), "app": app[mode], "sidecar": helper[mode], "store": (90, 30), "backend": (90, 30)}


# ---- circuit-breaker

layout("circuit-breaker")(fixed({"client": (10, 30), "A": (37, 30), "B": (63, 30), "C": (90, 30)}))


# ---- bulkhead

layout("bulkhead")(fixed({"client": (10, 30), "A": (45, 30), "B": (85, 13.2), "C": (85, 46.8)}))
