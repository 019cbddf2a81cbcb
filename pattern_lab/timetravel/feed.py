"""The space-time diagram's data, in one compact form for both paths:
the history endpoints (a stretch of the past) and each live frame (the
frame's own batch of events, in a small JSON block the page reads).

    ["s", id, src, dst, type, sent, arrive, copy, seq]   a message sent
    ["d", id, src, dst, type, t, reason, seq]            a message lost, and why
    ["f", kind, node | sides | [src, dst], t, seq]       a fault on a lane (or on all)
"""

from __future__ import annotations

import html
import json

LANE_FAULTS = ("crash", "restart", "pause", "resume")
NET_FAULTS = ("partition", "heal", "cut")


def diagram_feed(events: list[dict]) -> list:
    out = []
    for e in events:
        k = e["kind"]
        if k == "send":
            out.append(["s", e["id"], e["src"], e["dst"], e["type"], e["t"], e["arrive"], 1 if e.get("copy") else 0,
                        e["seq"]])
        elif k == "drop" and "src" in e:
            out.append(["d", e.get("id"), e["src"], e["dst"], e.get("type", ""), e["t"], e.get("reason", ""), e["seq"]])
        elif k in LANE_FAULTS and "node" in e:
            out.append(["f", k, e["node"], e["t"], e["seq"]])
        elif k in NET_FAULTS:
            what = e.get("sides") or ([e["src"], e["dst"]] if k == "cut" else [])
            out.append(["f", k, what, e["t"], e["seq"]])
    return out


def frame_block(run_id: str, events: list[dict]) -> str:
    """The live frame's addition: this batch's diagram events, as a hidden
    element swapped by id (htmx drops <script> elements from swapped content).
    Empty when there are none; the page skips events it has read, by seq."""
    feed = diagram_feed(events)
    if not feed:
        return ""
    text = html.escape(json.dumps(feed, separators=(",", ":")), quote=True)
    return f'<div id="msgs-{run_id}" hidden hx-swap-oob="true" data-msgs="{text}"></div>'
