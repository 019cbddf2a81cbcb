"""Frames: what a run's viewers receive.  Rendered once per batch in the
worker, then forwarded unchanged to every socket.

A frame is a handful of HTML fragments that htmx swaps out-of-band by id
(the cluster drawing, the node controls, the lab's panels, the checks, the
event log) plus a small JSON block for the message animation.  A *delta*
frame appends the batch's events to the log; a *full* frame replaces the log
and is what a socket gets when it (re)connects.  Every frame names its last
event `seq` and the previous frame's (`prev`), so a page can tell a gap."""

from __future__ import annotations

import json
import math
import time
from functools import cache

from django.conf import settings
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils.html import escape

QUIET_KINDS = {"send"}
# When the palette's one-node faults apply, by the node's status.
FAULT_WHEN = {
    "crash": lambda status: status != "down",
    "restart": lambda status: status == "down",
    "pause": lambda status: status == "up",
    "resume": lambda status: status == "paused",
}  # drawn as moving dots, not written in the log
MAX_DOTS = 60


@cache
def panels_template(slug: str):
    try:
        return get_template(f"labs/{slug}/panels.html")
    except TemplateDoesNotExist:
        return None


@cache
def part_templates():
    return {name: get_template(f"live/{name}.html") for name in ("cluster", "nodes", "checks")}


def positions(snap: dict) -> dict[str, tuple[float, float]]:
    """Where each node sits in the 100 x 60 drawing: the lab's layout, else a circle."""
    layout = snap.get("layout") or {}
    ids = [n["id"] for n in snap["nodes"]]
    missing = [i for i in ids if i not in layout]
    out = {i: (float(layout[i][0]), float(layout[i][1]) * 0.6) for i in ids if i in layout}
    for k, node_id in enumerate(missing):
        angle = 2 * math.pi * k / max(len(missing), 1) - math.pi / 2
        out[node_id] = (50 + 38 * math.cos(angle), 30 + 17 * math.sin(angle))
    return out


def describe_event(e: dict) -> str:
    """One line of the event log, in words."""
    kind = e["kind"]
    rest = {k: v for k, v in e.items() if k not in ("seq", "t", "kind")}
    if kind == "drop":
        return f"{e.get('type')} {e.get('src')} → {e.get('dst')} lost ({e.get('reason')})"
    if kind in ("crash", "restart", "pause", "resume") and "node" in rest:
        return {"crash": "{} crashed", "restart": "{} restarted", "pause": "{} paused",
                "resume": "{} resumed"}[kind].format(rest["node"])
    if kind == "partition":
        return "network partitioned: " + " | ".join(",".join(side) for side in e.get("sides", []))
    if kind == "heal":
        return "network healed"
    if kind == "check":
        verb = "holds again" if e.get("ok") else "broken"
        return f"check {e.get('name')} {verb}: {e.get('detail', '')}"
    if kind == "rejected":
        return f"rejected {e.get('action')} {' '.join(e.get('args', []))}: {e.get('error')}"
    parts = []
    for k, v in rest.items():
        if isinstance(v, float):
            v = f"{v:.1f}".removesuffix(".0")
        elif isinstance(v, (list, dict)):
            v = json.dumps(v, separators=(",", ":"))
            if len(v) > 60:
                v = v[:57] + "…"
        parts.append(f"{k}={v}")
    return f"{kind} " + " ".join(parts)


def log_items(events: list[dict]) -> str:
    rows = []
    for e in events:
        if e["kind"] in QUIET_KINDS:
            continue
        t = e["t"]
        stamp = f"{t / 1000:.2f}s"
        bad = " bad" if (e["kind"] in ("drop", "rejected", "crash") or
                         (e["kind"] == "check" and not e.get("ok"))) else ""
        rows.append(f'<li class="ev ev-{escape(e["kind"])}{bad}" data-seq="{e["seq"]}">'
                    f'<time>{stamp}</time> <span>{escape(describe_event(e))}</span></li>')
    return "".join(rows)


def dots(events: list[dict]) -> list:
    out = []
    for e in events:
        if e["kind"] == "send":
            out.append([e["src"], e["dst"], e["type"], 0])
        elif e["kind"] == "drop" and "src" in e:
            out.append([e["src"], e["dst"], e.get("type", ""), 1])
    return out[-MAX_DOTS:]


class FrameBuilder:
    """Keeps what a run's frames need between batches (the recent log, the
    previous seq, the parts last sent) and renders delta and full frames.

    A delta carries only the parts that changed since the previous frame:
    most batches change a node or a counter, not the whole page."""

    def __init__(self, run_id: str, node_actions: list):
        self.run_id = run_id
        self.node_actions = node_actions
        self.recent: list[dict] = []
        self.prev_seq = 0
        self.sent: dict[str, str] = {}

    def remember(self, events: list[dict]) -> None:
        keep = settings.PATTERN_LAB["LOG_EVENTS"]
        self.recent.extend(e for e in events if e["kind"] not in QUIET_KINDS)
        del self.recent[:-keep]

    def buttons(self, lab) -> dict[str, list[dict]]:
        """Per node, the one-node actions that make sense for it right now."""
        out: dict[str, list[dict]] = {n: [] for n in lab.nodes}
        for a in self.node_actions:
            for node_id in lab.targets(a["name"]):
                status = lab.nodes[node_id].status if node_id in lab.nodes else None
                if status is None or not FAULT_WHEN.get(a["name"], lambda s: True)(status):
                    continue
                out[node_id].append(a)
        return out

    def parts(self, lab, snap: dict) -> dict[str, str]:
        rid = self.run_id
        pos = positions(snap)
        context = {
            "rid": rid, "snap": snap, "pos": pos, "buttons": self.buttons(lab),
            "edges": [(pos[a], pos[b]) for a, b in snap.get("edges", []) if a in pos and b in pos],
            "faulty_links": [(pos[f["src"]], pos[f["dst"]], f) for f in snap["network"]["links"]
                             if f["src"] in pos and f["dst"] in pos],
            "sides": {n: i for i, side in enumerate(snap["network"]["partition"]) for n in side},
        }
        out = {name: tpl.render(context) for name, tpl in part_templates().items()}
        tpl = panels_template(lab.slug)
        out["panels"] = (f'<div id="panels-{rid}" hx-swap-oob="true" class="panels">'
                         f'{tpl.render({"snap": snap}) if tpl else ""}</div>')
        return out

    def build(self, lab, events: list[dict], clock: dict) -> tuple[int, str, str]:
        """Returns (seq, delta frame, full frame)."""
        self.remember(events)
        snap = lab.snapshot()
        seq = snap["seq"]
        rid = self.run_id
        parts = self.parts(lab, snap)
        changed = "".join(html for name, html in parts.items() if self.sent.get(name) != html)
        self.sent = parts
        flight = json.dumps({"dots": dots(events), "t": snap["t"], **clock}, separators=(",", ":"))
        flight = flight.replace("</", "<\\/")
        flight = f'<script id="flight-{rid}" type="application/json" hx-swap-oob="true">{flight}</script>'
        head = (f'<div id="meta-{rid}" hx-swap-oob="true" class="meta" data-seq="{seq}" '
                f'data-prev="{self.prev_seq}" data-kind="{{kind}}" data-wall="{time.time() * 1000:.1f}" '
                f'data-t="{snap["t"]}" data-frozen="{"true" if clock.get("frozen") else "false"}" '
                f'data-speed="{clock.get("speed", 1):g}">'
                f'<span>t = {snap["t"] / 1000:.2f}s</span> <span>event #{seq}</span>'
                f'<span>{"frozen" if clock.get("frozen") else str(clock.get("speed", 1)) + "×"}</span></div>')
        log = log_items(events)
        delta = (head.replace("{kind}", "delta") + changed + flight +
                 (f'<ol id="log-{rid}" hx-swap-oob="beforeend">{log}</ol>' if log else ""))
        full = (head.replace("{kind}", "full") + "".join(parts.values()) + flight +
                f'<ol id="log-{rid}" hx-swap-oob="true" class="log">{log_items(self.recent)}</ol>')
        self.prev_seq = seq
        return seq, delta, full


def node_actions(lab_cls) -> list[dict]:
    """Actions that take just a node: shown as buttons on each node's row."""
    out = []
    for spec in lab_cls.ACTIONS.values():
        required = [a for a in spec.args if not a.optional]
        if spec.targets_node and len(required) == 1 and len(spec.args) == 1:
            out.append({"name": spec.name, "help": spec.help, "group": spec.group})
    return out
