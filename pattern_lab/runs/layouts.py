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

# ---- saga


@layout("saga")
def saga(snap: dict) -> dict[str, tuple[float, float]]:
    """The orchestrator (or the bus) above its three services, in the saga's order."""
    hub = snap["nodes"][0]["id"]
    return {hub: (50, 10.8), "product": (16, 44.4), "price": (50, 44.4), "metadata": (84, 44.4)}


# ---- two-phase-commit


layout("two-phase-commit")(fixed({"coordinator": (18, 30), "inventory": (74, 9.6), "payment": (74, 30),
                                  "shipping": (74, 50.4)}))

# ---- sharding
@layout("sharding")
def sharding(snap: dict) -> dict[str, tuple[float, float]]:
    """The client on the left, the router in the middle, the shards spread
    evenly (by arc length) on an ellipse around the router, leaving a gap on
    the left for the client."""
    shards = [n["id"] for n in snap["nodes"] if n["id"] not in ("client", "router")]
    rx, ry, cx, cy, gap = 40, 21, 52, 29.5, math.radians(38)
    a0, a1 = math.pi + gap, 3 * math.pi - gap
    angles = [a0 + (a1 - a0) * i / 400 for i in range(401)]
    points = [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]
    length = [0.0]
    for p, q in zip(points, points[1:]):
        length.append(length[-1] + math.dist(p, q))
    out, j = {"client": (8, 29.52), "router": (52, 29.52)}, 0
    for i, sid in enumerate(shards):
        while length[j] < length[-1] * (i + 0.5) / len(shards):
            j += 1
        out[sid] = (round(points[j][0], 1), round(points[j][1], 1))
    return out


# ---- split-brain
layout("split-brain")(fixed({"n1": (14, 21), "n2": (14, 43.2), "n3": (66, 13.2), "n4": (66, 46.8), "n5": (88, 30)}))


# ---- write-ahead-log
layout("write-ahead-log")(fixed({"client": (20, 30), "db": (70, 30)}))


# ---- cqrs


@layout("cqrs")
def cqrs(snap: dict) -> dict[str, tuple[float, float]]:
    """Commands flow left to right along the top (client, write side, projector); the
    read models stand in a column on the right, the client below left."""
    out = {"client": (8, 50.4), "write": (30, 13.2), "projector": (60, 13.2)}
    replicas = [n["id"] for n in snap["nodes"] if n["id"].startswith("read")]
    for i, r in enumerate(replicas):
        out[r] = (88, 12 + 38.4 * i / (len(replicas) - 1) if len(replicas) > 1 else 30)
    return out


# ---- hinted-handoff
@layout("hinted-handoff")
def hinted_handoff(snap: dict) -> dict[str, tuple[float, float]]:
    """The replicas at their places on the hash ring (n1 at the top, then
    clockwise every 360/N degrees), the client on the left."""
    ring = [n["id"] for n in snap["nodes"] if n["id"] != "client"]
    out = {"client": (8, 30)}
    for i, node_id in enumerate(ring):
        angle = math.radians(i * 360 // len(ring))
        out[node_id] = (round(58 + 30 * math.sin(angle), 1), round(30 - 19.2 * math.cos(angle), 2))
    return out


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


# ---- bulkhead

layout("bulkhead")(fixed({"client": (10, 30), "A": (45, 30), "B": (85, 13.2), "C": (85, 46.8)}))


# ---- load-balancing
@layout("load-balancing")
def load_balancing(snap: dict) -> dict[str, tuple[float, float]]:
    """The client on the left, the balancer (and its standby below it) in front of the
    pools: the frontend replicas in a row along the top, the api replicas along the bottom."""
    out = {"client": (6, 30), "lb": (30, 30), "lb2": (30, 48)}
    for pool, y, (left, right) in (("frontend", 9.6, (60, 88)), ("api", 50.4, (44, 88))):
        members = snap["pools"][pool]
        for i, r in enumerate(members):
            out[r] = (round(left + (right - left) * i / (len(members) - 1), 1) if len(members) > 1
                      else (left + right) / 2, y)
    return out

# ---- scatter-gather
@layout("scatter-gather")
def scatter_gather(snap: dict) -> dict[str, tuple[float, float]]:
    """The coordinator on the left.  Up to three workers stand in one column on the
    right; more go into two rows (above and below the coordinator's line), so no
    edge from the coordinator runs through another worker.  (Worked out in percent
    of the height, then scaled to the box.)"""
    workers = [n["id"] for n in snap["nodes"] if n["id"] != "coordinator"]
    places = {"coordinator": (14, 50)}
    if len(workers) <= 3:
        for i, w in enumerate(workers):
            places[w] = (74, round(8 + 88 * (i + 0.5) / len(workers), 1))
    else:
        top = -(-len(workers) // 2)
        step = 48 / (top - 1)
        for row, members in enumerate((workers[:top], workers[top:])):
            first = 44 + step * (top - len(members)) / 2  # a shorter row sits in the gaps
            for i, w in enumerate(members):
                places[w] = (round(first + step * i, 1), 17 if row == 0 else 83)
    return {node_id: (x, y * HEIGHT / 100) for node_id, (x, y) in places.items()}
