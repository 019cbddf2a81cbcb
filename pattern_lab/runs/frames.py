"""Frames: what a run's viewers receive.  Rendered once per batch in the
worker, then forwarded unchanged to every socket.

A frame is a handful of HTML fragments that htmx swaps out-of-band by id
(the cluster drawing, the node controls, the lab's panels, the checks, the
event log) plus a small data block for the message animation.  A *delta*
frame appends the batch's log lines and carries only the fragments whose
inputs changed; a *full* frame replaces everything and is what a socket gets
when it (re)connects.  Every frame's header (JSON, see wire.py) names its
last event `seq` and the previous frame's (`prev`), so a page can tell a gap.

Cost: the cluster, node and check fragments are Jinja2 templates (about five
times faster than Django's engine for these loops), and no fragment is
rendered at all when the slice of the snapshot it reads is the same as last
time (comparing the slices as JSON is far cheaper than rendering them)."""

from __future__ import annotations

import json
import math
import time
from bisect import insort
from functools import cache
from html import escape as _escape

from django.conf import settings
from django.template import Context, TemplateDoesNotExist
from django.template.loader import get_template
from markupsafe import Markup

from pattern_lab.timetravel.feed import frame_block as diagram_block

from . import wire
from .conditions import watch_values
from .layouts import positions

# Message traffic: drawn as moving dots *and* written in the log (grouped).
TRAFFIC = {"send", "drop"}
MAX_DOTS = 40       # animated messages per frame; more are thinned out (losses kept first)
LOG_TRAFFIC = 60    # message lines kept for a full frame's log (besides LOG_EVENTS others)
GROUP_MS = 100      # sends of one sender and type within this window are one log line
BUSY_STREAK = 4    # a fragment that changed this many frames in a row is rendered without comparing
REASONS = {"partition": "partition", "dropped": "drop-next", "lost": "loss", "node down": "node down"}


def escape(value) -> str:
    return _escape(str(value), quote=True)


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


@cache
def panels_template(slug: str):
    try:
        return get_template(f"labs/{slug}/panels.html")
    except TemplateDoesNotExist:
        return None


def _ms(value) -> str:
    """Milliseconds for people: 1500 -> 1.5 s, 80 -> 80 ms."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{round(value / 1000, 2):g} s" if value >= 1000 else f"{value:.0f} ms"


@cache
def jinja():
    from jinja2 import Environment, FileSystemLoader

    env = Environment(loader=FileSystemLoader(str(settings.BASE_DIR / "templates")),
                      autoescape=True, auto_reload=False, trim_blocks=True, lstrip_blocks=True)
    env.filters["f1"] = lambda v: f"{float(v):.1f}"
    env.filters["ms"] = _ms
    return env


@cache
def part_templates():
    env = jinja()
    return {name: env.get_template(f"live/{name}.html") for name in ("cluster", "nodes", "checks")}


# ---- the event log ----------------------------------------------------------

def drop_reason(e: dict, cuts: set | None = None) -> str:
    """Why a message was lost, in the palette's words (a one-way cut is
    reported by the network as unreachable, like a partition)."""
    reason = REASONS.get(e.get("reason"), e.get("reason") or "lost")
    if reason == "partition" and cuts and (e.get("src"), e.get("dst")) in cuts:
        reason = "cut"
    return reason


def describe_event(e: dict) -> str:
    """One line of the event log, in words."""
    kind = e["kind"]
    rest = {k: v for k, v in e.items() if k not in ("seq", "t", "kind")}
    if kind == "send":
        return f"{e.get('src')} sends {e.get('type')} to {e.get('dst')}" + (" (duplicate)" if e.get("copy") else "")
    if kind == "drop":
        return f"{e.get('type')} {e.get('src')} → {e.get('dst')} lost: {drop_reason(e)}"
    if kind in ("crash", "restart", "pause", "resume") and "node" in rest:
        return {"crash": "{} crashed", "restart": "{} restarted", "pause": "{} paused",
                "resume": "{} resumed"}[kind].format(rest["node"])
    if kind == "partition":
        sides = " | ".join(",".join(side) for side in e.get("sides", []))
        return f"network partitioned: {sides}" + (f" ({e['note']})" if e.get("note") else "")
    if kind == "cut" and "src" in e:
        return f"link {e['src']} → {e['dst']} cut (one-way)"
    if kind == "heal":
        return "network healed"
    if kind == "delay" and "src" in e:
        return f"link {e['src']} → {e['dst']} delayed by {_ms(e.get('ms'))}"
    if kind == "loss" and "src" in e:
        return f"link {e['src']} → {e['dst']} loses {e.get('percent')}% of messages"
    if kind == "slow" and "node" in e:
        return f"{e['node']} slowed: {_ms(e.get('ms'))} per message"
    if kind == "drop-next" and "src" in e:
        return f"the next message {e['src']} → {e['dst']} will be lost"
    if kind == "duplicate-next" and "src" in e:
        return f"the next message {e['src']} → {e['dst']} will arrive twice"
    if kind == "check":
        verb = "holds again" if e.get("ok") else "broken"
        return f"check {e.get('name')} {verb}: {e.get('detail', '')}"
    if kind == "rejected":
        return f"rejected {e.get('action')} {' '.join(e.get('args', []))}: {e.get('error')}"
    node = rest.pop("node", None) if isinstance(rest.get("node"), str) else None
    parts = []
    for k, v in rest.items():
        if isinstance(v, float):
            v = f"{v:.1f}".removesuffix(".0")
        elif isinstance(v, (list, dict)):
            v = json.dumps(v, separators=(",", ":"))
            if len(v) > 60:
                v = v[:57] + "…"
        parts.append(f"{k}={v}")
    if node:  # a lab's own event about one node: "n1: follow (leader=n4)"
        return f"{node}: {kind}" + (f" ({', '.join(parts)})" if parts else "")
    return f"{kind} " + " ".join(parts)


def _names(ids: list[str]) -> str:
    return ", ".join(ids)


def _event_nodes(e: dict) -> list[str]:
    out = [e[k] for k in ("node", "src", "dst") if isinstance(e.get(k), str)]
    for side in e.get("sides") or []:
        out += [n for n in side if isinstance(n, str)]
    return out


def _line(e: dict, text: str, nodes: list[str], typ: str, count: int, more: int, cls: str) -> str:
    raw = " ".join(f"{k}={v if isinstance(v, (str, int, float)) else _dumps(v)}" for k, v in e.items()
                   if k != "t") + (f" (and {more} more)" if more else "")
    rep = f' data-repeat="{count}"' if count > 1 else ""
    badge = f'<b class="repeat"> ×{count}</b>' if count > 1 else ""
    return (f'<li class="{cls}" data-seq="{e["seq"]}" data-nodes="{escape(" ".join(dict.fromkeys(nodes)))}" '
            f'data-type="{escape(typ)}"{rep} title="{escape(raw)}"><time>{e["t"] / 1000:.2f}s</time> '
            f'<span>{escape(text)}</span>{badge}</li>')


def log_lines(events: list[dict], cuts: set | None = None) -> list[tuple[int, bool, str]]:
    """The log lines of a batch: (seq, is_traffic, html).  Sends of one node
    and type in the same 100 ms are one line ("n5 sends HEARTBEAT to n1, n2,
    n3"), and so are replies of many to one ("n1, n2 send OK to n5");
    identical lines in a batch become one with a count.  The raw fields of
    the line's first event are in its title."""
    groups: dict[tuple, list] = {}
    order: list[list] = []
    for e in events:
        kind = e["kind"]
        if kind == "send":
            key = ("s", e.get("src"), e.get("type"), int(e["t"] // GROUP_MS))
        elif kind == "drop":
            key = ("d", e.get("src"), e.get("dst"), e.get("type"), e.get("reason"), int(e["t"] // GROUP_MS))
        else:
            order.append([e])
            continue
        g = groups.get(key)
        if g is None:
            g = groups[key] = [e]
            order.append(g)
        else:
            g.append(e)
    # A sender with a single receiver: merge the many-to-one replies instead.
    merged: dict[tuple, list] = {}
    final: list[list] = []
    for g in order:
        e = g[0]
        if e["kind"] == "send" and len({x["dst"] for x in g}) == 1:
            key = (e.get("type"), e.get("dst"), int(e["t"] // GROUP_MS))
            if key in merged:
                merged[key].extend(g)
                continue
            merged[key] = g
        final.append(g)
    out: list[dict] = []
    for g in final:
        e = g[0]
        kind = e["kind"]
        line = {"e": e, "nodes": _event_nodes(e), "type": kind, "count": 1, "more": len(g) - 1,
                "traffic": kind in TRAFFIC}
        if kind == "send":
            srcs = list(dict.fromkeys(x["src"] for x in g))
            dsts = list(dict.fromkeys(x["dst"] for x in g))
            verb = f"{srcs[0]} sends" if len(srcs) == 1 else f"{_names(srcs)} send"
            line.update(text=f"{verb} {e['type']} to {_names(dsts)}", nodes=srcs + dsts, type=str(e["type"]),
                        cls="ev ev-send traffic")
            if len(srcs) == 1 and len(dsts) == 1:
                line["count"] = len(g)  # duplicates of one message
        elif kind == "drop":
            line.update(text=f"{e.get('type')} {e.get('src')} → {e.get('dst')} lost: {drop_reason(e, cuts)}",
                        type=str(e.get("type")), count=len(g), cls="ev ev-drop traffic bad")
        else:
            bad = kind in ("rejected", "crash") or (kind == "check" and not e.get("ok"))
            line.update(text=describe_event(e), cls=f"ev ev-{escape(kind)}{' bad' if bad else ''}")
        # The same words twice in a row (a retry loop, a burst of losses): one line, counted.
        if out and line["traffic"] and out[-1]["text"] == line["text"]:
            out[-1]["count"] += line["count"]
            out[-1]["more"] += 1 + line["more"]
            continue
        out.append(line)
    return [(x["e"]["seq"], x["traffic"], _line(x["e"], x["text"], x["nodes"], x["type"], x["count"], x["more"],
                                             x["cls"])) for x in out]


# ---- messages in flight -------------------------------------------------------

def dots(events: list[dict], t0: float, cuts: set | None = None, limit: int = MAX_DOTS) -> list:
    """The batch's messages for the animation: [from, to, type, start, ms,
    lost reason or "", count, id].  `start` is when it left, in simulated ms
    after the previous frame; `ms` how long it travels.  A busy batch (more
    than `limit` messages) draws one dot per link and kind with a count
    (periodic traffic), and past `limit` keeps the losses first and thins out
    the rest evenly."""
    rows: list[list] = []
    by_id: dict = {}
    for e in events:
        kind = e["kind"]
        if kind == "send":
            d = [e["src"], e["dst"], e["type"], round(max(e["t"] - t0, 0), 1),
                 round(max(e.get("arrive", e["t"]) - e["t"], 0), 1), "", 1, e.get("id")]
            by_id[e.get("id")] = d
            rows.append(d)
        elif kind == "drop" and "src" in e:
            reason = drop_reason(e, cuts)
            sent = by_id.get(e.get("id"))
            if sent is not None and not sent[5]:
                sent[5] = reason  # sent and lost in the same batch (e.g. to a crashed node)
                continue
            rows.append([e["src"], e["dst"], e.get("type", ""), round(max(e["t"] - t0, 0), 1), 0, reason, 1,
                         e.get("id")])
    if len(rows) <= limit:
        return rows
    grouped: dict[tuple, list] = {}
    for d in rows:
        key = (d[0], d[1], d[2], d[5])
        if key in grouped:
            grouped[key][6] += 1
        else:
            grouped[key] = d
    rows = list(grouped.values())
    if len(rows) > limit:
        lost = [d for d in rows if d[5]][:limit]
        rest = [d for d in rows if not d[5]]
        room = limit - len(lost)
        step = len(rest) / room if room else 0
        rows = lost + [rest[int(i * step)] for i in range(room)]
        rows.sort(key=lambda d: d[3])
    return rows


def held(snap: dict) -> list:
    """Messages in flight right now, with how far they have travelled (0..1):
    drawn standing still while the clock is frozen."""
    t = snap["t"]
    out = []
    for m in snap["network"].get("inflight", [])[:MAX_DOTS]:
        span = (m["arrive"] - m["sent"]) or 1
        out.append([m["src"], m["dst"], m["type"], round(min(max((t - m["sent"]) / span, 0), 1), 3), m["id"]])
    return out


# ---- the cluster drawing ------------------------------------------------------

def _cut_mark(a, b, at: float = 0.5) -> str:
    """Two short strokes across the link a-b at `at` of its length: '//'."""
    (x1, y1), (x2, y2) = a, b
    dx, dy = x2 - x1, y2 - y1
    n = math.hypot(dx, dy) or 1
    ux, uy, px, py = dx / n, dy / n, -dy / n * 2.2, dx / n * 2.2
    mx, my = x1 + dx * at, y1 + dy * at
    segs = []
    for off in (-0.7, 0.7):
        cx, cy = mx + ux * off, my + uy * off
        segs.append(f"M{cx - px:.1f},{cy - py:.1f}L{cx + px:.1f},{cy + py:.1f}")
    return "".join(segs)


def network_drawing(snap: dict, pos: dict) -> dict:
    """The links to draw and the words for them: the lab's own edges, links a
    partition breaks (a cut mark on each), one-way cuts (a mark near the
    sender's end, an arrow to the receiver) and slow or lossy links."""
    net = snap["network"]
    sides = {n: i for i, side in enumerate(net.get("partition") or []) for n in side}
    edges = [(pos[a], pos[b]) for a, b in snap.get("edges", []) if a in pos and b in pos]
    broken = []
    if sides:
        if snap.get("edges"):
            pairs = [(a, b) for a, b in snap["edges"]]
        else:
            ids = [n["id"] for n in snap["nodes"]]
            pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
        for a, b in pairs:
            if a in pos and b in pos and a in sides and b in sides and sides[a] != sides[b]:
                broken.append({"a": pos[a], "b": pos[b], "mark": _cut_mark(pos[a], pos[b]), "oneway": False,
                               "title": f"{a} – {b}: no messages either way (partition)"})
    links, cuts = [], set()
    for f in net.get("links", []):
        if f["src"] not in pos or f["dst"] not in pos:
            continue
        a, b = pos[f["src"]], pos[f["dst"]]
        if f.get("cut"):
            cuts.add((f["src"], f["dst"]))
            broken.append({"a": a, "b": b, "mark": _cut_mark(a, b, 0.35), "oneway": True,
                           "title": f"{f['src']} → {f['dst']}: cut one way ({f['dst']} → {f['src']} still works)"})
        words = []
        if f.get("delay"):
            words.append(f"+{_ms(f['delay'])}")
        if f.get("loss"):
            words.append(f"{f['loss']}% loss")
        if f.get("slow"):
            words.append(f"slow {_ms(f['slow'])}")
        if words and not f.get("cut"):
            links.append({"a": a, "b": b, "title": f"{f['src']} → {f['dst']}: {' '.join(words)}"})
    said = []
    if net.get("partition"):
        said.append("network partitioned: " + " | ".join(", ".join(s) for s in net["partition"]))
    said += [f"link {a} → {b} cut one way" for a, b in sorted(cuts)]
    said += [x["title"] for x in links]
    return {"edges": edges, "broken": broken, "links": links, "sides": sides, "said": said, "cuts": cuts}


def _node_group(n: dict, x: str, y: str, side) -> str:
    """One node of the drawing (the DOM contract: data-node, data-status, data-role)."""
    nid, status, role, label = escape(n["id"]), escape(n["status"]), n.get("role"), n.get("label")
    role_e = escape(role) if role else ""
    return "".join((
        f'<g class="node st-{status}', f" role-{role_e}" if role else "", f" side-{side}" if side is not None else "",
        f'" data-node="{nid}" data-status="{status}"', f' data-role="{role_e}"' if role else "",
        f' data-x="{x}" data-y="{y}" transform="translate({x} {y})"><circle r="4.6"/>',
        '<path class="x" d="M-2.4,-2.4 L2.4,2.4 M2.4,-2.4 L-2.4,2.4"/>' if n["status"] == "down" else "",
        '<text class="nid" y="1.1"', ' textLength="8" lengthAdjust="spacingAndGlyphs"' if len(n["id"]) > 4 else "",
        f">{nid}</text>", f'<text class="nrole" y="-6.2">{role_e}</text>' if role else "",
        f'<text class="nlabel" y="8.4">{escape(label)}</text>' if label else "", "</g>"))


# ---- words for screen readers -------------------------------------------------

ANNOUNCE_MAX = 6  # per frame; the page throttles further
STATUS_SAID = {"down": "{} is down", "paused": "{} is paused"}
BREAKER_SAID = {"open": "opened", "closed": "closed", "half-open": "is half-open (trial calls)"}


def _at(t) -> str:
    return f"{float(t) / 1000:.1f} s"


def announcements(prev: dict | None, snap: dict, events: list[dict]) -> list[str]:
    """What a listener should hear about this batch, most important first:
    checks that broke or hold again, nodes going down or coming back, role
    changes (a new leader) and circuit-breaker transitions.  `prev` is the
    previous frame's {node: (status, role)}; nothing is said without it."""
    if prev is None:
        return []
    said: list[tuple[int, str]] = []
    breakers = set()
    for e in events:
        kind = e["kind"]
        if kind == "check":
            verb = "holds again" if e.get("ok") else "broke"
            said.append((0 if not e.get("ok") else 2, f"Check {e.get('name')} {verb} at {_at(e['t'])}"))
        elif kind == "breaker" and e.get("dst") in BREAKER_SAID:
            owner = str(e.get("id", "")).split("->")[0]
            breakers.add(owner)
            why = f" after {e['why']}" if e.get("why") and e.get("dst") == "open" else ""
            said.append((1, f"Breaker {e.get('id')} {BREAKER_SAID[e['dst']]} at {_at(e['t'])}{why}"))
    for n in snap["nodes"]:
        nid, status, role = n["id"], n["status"], n.get("role")
        if nid not in prev:
            said.append((1, f"{nid} joined, {status}"))
            continue
        was_status, was_role = prev[nid]
        if status != was_status:
            if status in STATUS_SAID:
                said.append((1, STATUS_SAID[status].format(nid)))
            else:
                said.append((1, f"{nid} is up again" if was_status == "down" else f"{nid} is {status}"))
        elif role != was_role and nid not in breakers and status != "down":
            said.append((3, f"{nid} is now {role}" if role else f"{nid} is no longer {was_role}"))
    for nid in prev:
        if nid not in {n["id"] for n in snap["nodes"]}:
            said.append((1, f"{nid} left the cluster"))
    said.sort(key=lambda x: x[0])  # stable: in order of events within a priority
    out = [text for _, text in said[:ANNOUNCE_MAX]]
    if len(said) > ANNOUNCE_MAX:
        out.append(f"and {len(said) - ANNOUNCE_MAX} more changes (see the event log)")
    return out


def _traffic(events: list[dict]) -> list[str]:
    """The batch's messages in words, one line per sender and type (the moving dots)."""
    sent: dict[tuple, list] = {}
    lost = 0
    for e in events:
        if e["kind"] == "send":
            dsts = sent.setdefault((e.get("src"), e.get("type")), [])
            if e.get("dst") not in dsts:
                dsts.append(e.get("dst"))
        elif e["kind"] == "drop":
            lost += 1
    out = [f"{src} → {', '.join(map(str, dsts))}: {typ}" for (src, typ), dsts in list(sent.items())[:6]]
    if len(sent) > 6:
        out.append(f"and {len(sent) - 6} more")
    if lost:
        out.append(f"{lost} lost")
    return out


def describe_inputs(snap: dict, events: list[dict] = ()):
    """The slice of the snapshot (and of the batch) the description reads (compared between frames)."""
    inflight: dict[str, int] = {}
    for m in snap["network"].get("inflight", []):
        inflight[m["type"]] = inflight.get(m["type"], 0) + 1
    return ([(n["id"], n["status"], n.get("role")) for n in snap["nodes"]],
            [(c["name"], c["ok"], c.get("detail")) for c in snap["checks"]], inflight,
            snap["network"].get("partition"), snap["network"].get("links"), _traffic(events))


def describe(rid: str, snap: dict, events: list[dict] = ()) -> str:
    """The cluster in words, for anyone who cannot see the drawing: who is up
    or down, each node's role, the network's faults, what is in flight (and
    what was just sent) and which checks are broken."""
    nodes, checks, inflight, partition, links, traffic = describe_inputs(snap, events)
    count = {}
    for _, status, _ in nodes:
        count[status] = count.get(status, 0) + 1
    head = ", ".join(f"{v} {k}" for k, v in count.items())
    items = "".join(f"<li>{escape(nid)}: {escape(status)}{', ' + escape(role) if role else ''}</li>"
                    for nid, status, role in nodes)
    net = []
    if partition:
        net.append("partitioned into " + " | ".join(", ".join(side) for side in partition))
    for f in links or []:
        words = [w for w, on in (("cut one way", f.get("cut")), (f"delayed {_ms(f.get('delay'))}", f.get("delay")),
                                 (f"{f.get('loss')}% loss", f.get("loss")), (f"slow {_ms(f.get('slow'))}", f.get("slow")))
                 if on]
        if words:
            net.append(f"{f['src']} → {f['dst']} {', '.join(words)}")
    total = sum(inflight.values())
    flying = (f"{total} message{'s' if total != 1 else ''} in flight: "
              + ", ".join(f"{v} {k}" for k, v in sorted(inflight.items())) + "." if total else "No messages in flight.")
    if traffic:
        flying += " Just sent: " + "; ".join(traffic) + "."
    bad = [(name, detail) for name, ok, detail in checks if not ok]
    if not checks:
        said_checks = "This lab has no live checks."
    elif bad:
        said_checks = (f"{len(bad)} of {len(checks)} checks broken: "
                       + "; ".join(f"{name}{' (' + detail + ')' if detail else ''}" for name, detail in bad))
    else:
        said_checks = f"All {len(checks)} checks hold."
    return (f'<div id="describe-{rid}" hx-swap-oob="true" class="describe-text">'
            f"<p>{len(nodes)} nodes: {escape(head)}.</p><ul>{items}</ul>"
            f"<p>Network: {escape('; '.join(net)) if net else 'no faults'}.</p>"
            f"<p>{escape(flying)}</p><p>{escape(said_checks)}</p></div>")


def node_groups(snap: dict, pos: dict, sides: dict) -> str:
    return "\n".join(_node_group(n, f"{pos[n['id']][0]:.1f}", f"{pos[n['id']][1]:.1f}", sides.get(n["id"]))
                     for n in snap["nodes"])


class FrameBuilder:
    """Keeps what a run's frames need between batches (the recent log lines,
    the previous seq, the fragments last rendered and what they were rendered
    from) and renders delta and full frames.

    A delta carries only the fragments that changed since the previous frame:
    most batches change a node or a counter, not the whole page."""

    def __init__(self, run_id: str, node_actions: list):
        self.run_id = run_id
        self.node_actions = node_actions
        self.prev_seq = 0
        self.watch: dict = {}  # conditions evaluated on every frame (a lesson's step)
        self.prev_t = 0.0
        self.keys: dict[str, str] = {}   # fragment -> the JSON of the inputs it was rendered from
        self.sent: dict[str, str] = {}   # fragment -> its last HTML
        self.lines: list[tuple[int, bool, str]] = []  # the recent log, in seq order
        self.cuts: set = set()
        self.streak: dict[str, int] = {}  # fragment -> frames in a row it changed
        self.events: list[dict] = []  # the batch being framed
        self.said: dict | None = None  # node -> (status, role) at the last frame, for announcements

    def remember(self, events: list[dict]) -> None:
        """Keep the log lines of events that no frame carried (replay, nobody watching)."""
        keep = settings.PATTERN_LAB["LOG_EVENTS"]
        self.said = None  # nobody heard these: the next frame starts the announcements afresh
        self._keep(log_lines(events[-(keep + LOG_TRAFFIC) * 8:], self.cuts))
        if events:
            self.prev_t = events[-1]["t"]

    def _keep(self, lines: list) -> None:
        if not lines:
            return
        if self.lines and lines[0][0] < self.lines[-1][0]:
            for line in lines:
                insort(self.lines, line)
        else:
            self.lines.extend(lines)
        keep = settings.PATTERN_LAB["LOG_EVENTS"]
        traffic = sum(1 for x in self.lines if x[1])
        others = len(self.lines) - traffic
        if traffic > LOG_TRAFFIC or others > keep:
            drop_t, drop_o = traffic - LOG_TRAFFIC, others - keep
            out = []
            for line in self.lines:
                if line[1] and drop_t > 0:
                    drop_t -= 1
                elif not line[1] and drop_o > 0:
                    drop_o -= 1
                else:
                    out.append(line)
            self.lines = out

    def buttons(self, lab) -> dict[str, list[dict]]:
        """Per node, the one-node actions that make sense for it right now."""
        out: dict[str, list[dict]] = {n: [] for n in lab.nodes}
        for a in self.node_actions:
            for node_id in lab.targets(a["name"]):
                out[node_id].append(a)
        return out

    def parts(self, lab, snap: dict, events: list[dict] = ()) -> dict[str, str]:
        """Each fragment's HTML.  A fragment whose inputs (the slice of the
        snapshot it reads, as JSON) did not change since the last frame is not
        rendered again.  A fragment that changed in every one of the last few
        frames (a lab's counters) is rendered without comparing first, until
        it comes out the same as before."""
        net = snap["network"]
        nodes = snap["nodes"]
        inputs = {
            "cluster": lambda: (nodes, positions(snap), snap.get("edges"), net.get("partition"), net.get("links")),
            "nodes": lambda: ([(n["id"], n["status"], n.get("role")) for n in nodes],
                              {k: [a["name"] for a in v] for k, v in self.buttons(lab).items()}),
            "checks": lambda: snap["checks"],
            "describe": lambda: describe_inputs(snap, events),
            "panels": lambda: ({k: v for k, v in snap.items() if k not in ("t", "seq", "network")},
                               net.get("partition"), net.get("links")),
        }
        out: dict[str, str] = {}
        for name, value in inputs.items():
            streak = self.streak.get(name, 0)
            key = None
            if streak < BUSY_STREAK:
                key = _dumps(value())
                if self.keys.get(name) == key and name in self.sent:
                    out[name] = self.sent[name]
                    self.streak[name] = 0
                    continue
            html = out[name] = self.render(name, lab, snap)
            if key is None and html == self.sent.get(name):
                self.streak[name] = 0  # it settled: compare inputs again from the next frame
                self.keys.pop(name, None)
            else:
                self.streak[name] = streak + 1
                if key is not None:
                    self.keys[name] = key
        return out

    def render(self, name: str, lab, snap: dict) -> str:
        rid = self.run_id
        if name == "cluster":
            pos = positions(snap)
            drawing = network_drawing(snap, pos)
            self.cuts = drawing["cuts"]
            nodes_svg = Markup(node_groups(snap, pos, drawing["sides"]))  # noqa: S704 (escaped in _node_group)
            return part_templates()[name].render(rid=rid, snap=snap, pos=pos, nodes_svg=nodes_svg, **drawing)
        if name == "nodes":
            return part_templates()[name].render(rid=rid, snap=snap, buttons=self.buttons(lab))
        if name == "checks":
            return part_templates()[name].render(rid=rid, snap=snap)
        if name == "describe":
            return describe(rid, snap, self.events)
        tpl = panels_template(lab.slug)
        # The labs' own panels stay Django templates.  Without localisation
        # (numbers print the same in English, with no thousands separator)
        # they render about a quarter faster.
        html = tpl.template.render(Context({"snap": snap}, use_l10n=False)) if tpl else ""
        return f'<div id="panels-{rid}" hx-swap-oob="true" class="panels">{html}</div>'

    def flight(self, snap: dict, events: list[dict], clock: dict) -> str:
        """The animation's data: a hidden element swapped by id (htmx drops
        <script> elements from swapped content, so this is not a script)."""
        data = {"dots": dots(events, self.prev_t, self.cuts), "t": snap["t"], "t0": self.prev_t, **clock}
        if clock.get("frozen"):
            data["held"] = held(snap)
        return (f'<div id="flight-{self.run_id}" hx-swap-oob="true" hidden data-seq="{snap["seq"]}" '
                f'data-flight-data="{escape(_dumps(data))}"></div>')

    def build(self, lab, events: list[dict], clock: dict) -> tuple[int, str, str]:
        """Returns (seq, delta frame, full frame), the frames as wire.encode() writes them."""
        snap = lab.snapshot()
        seq = snap["seq"]
        rid = self.run_id
        self.events = events
        parts = self.parts(lab, snap, events)
        changed = "".join(html for name, html in parts.items() if self.sent.get(name) != html)
        self.sent = parts
        flight = self.flight(snap, events, clock)
        lines = log_lines(events, self.cuts)
        self._keep(lines)
        header = {"seq": seq, "prev": self.prev_seq, "kind": "delta", "t": snap["t"],
                  "wall": round(time.time() * 1000, 1), "frozen": bool(clock.get("frozen")),
                  "speed": clock.get("speed", 1)}
        # The frame's header is data (see wire.py); the meta element shows the
        # clock and keeps it in the page for the scripts that read it later.
        head = (f'<div id="meta-{rid}" hx-swap-oob="true" class="meta" data-seq="{seq}" '
                f'data-wall="{header["wall"]:.1f}" '
                f'data-t="{snap["t"]}" data-frozen="{"true" if clock.get("frozen") else "false"}" '
                f'data-speed="{clock.get("speed", 1):g}">'
                f'<span>t = {snap["t"] / 1000:.2f}s</span> <span>event #{seq}</span>'
                f'<span>{"frozen" if clock.get("frozen") else str(clock.get("speed", 1)) + "×"}</span></div>')
        if self.watch.get("exprs"):
            values = {"step": self.watch.get("step"), "t": snap["t"], **watch_values(self.watch, snap)}
            flight += f'<div id="watch-{rid}" hidden hx-swap-oob="true" data-watch="{escape(_dumps(values))}"></div>'
        log = "".join(html for _, _, html in lines)
        said = announcements(self.said, snap, events)
        self.said = {n["id"]: (n["status"], n.get("role")) for n in snap["nodes"]}
        if said:  # the page says each seq once (a full frame after a reconnect repeats it)
            flight += (f'<div id="say-{rid}" hidden hx-swap-oob="true" data-seq="{seq}" '
                       f'data-say="{escape(_dumps(said))}"></div>')
        flight += diagram_block(rid, events)  # time travel: the space-time diagram's events of this batch
        delta = wire.encode(header, head + changed + flight +
                            (f'<ol id="log-{rid}" hx-swap-oob="beforeend">{log}</ol>' if log else ""))
        full = wire.encode({**header, "kind": "full"}, head + "".join(parts.values()) + flight +
                           f'<ol id="log-{rid}" hx-swap-oob="true" class="log" tabindex="0" aria-label="Event log">{"".join(h for _, _, h in self.lines)}</ol>')
        self.prev_seq = seq
        self.prev_t = snap["t"]
        return seq, delta, full


def node_actions(lab_cls) -> list[dict]:
    """Actions that take just a node: shown as buttons on each node's row."""
    return [{"name": spec.name, "help": spec.help, "group": spec.group} for spec in lab_cls.buttons()]
