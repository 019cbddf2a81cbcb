"""HTTP endpoints of time travel.

  GET  /runs/<id>/seek/?t=<ms>         the moment t as JSON: the same fragments a
                                       frame carries (cluster, nodes, checks,
                                       panels, log) plus the diagram's events
  GET  /runs/<id>/history.json         the timeline's marks (faults, commands,
                                       checks turning red/green) and the run's end
  GET  /runs/<id>/at/<ms>/             permalink: that moment, read-only, for anyone
  POST /runs/<id>/fork-at/  t=<ms>     a new run of yours from that moment
                            rewind=1   (owner only) the same, replacing the run on your page

Seeks are answered by the web process from its cached History (see
history.py), never by the worker that drives the live run, and on threads of
their own (`offloaded`): Django runs plain views on one shared thread per
process, and a first seek in a long run (a full replay) must not hold up the
learners' commands behind it.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections import OrderedDict

from asgiref.sync import sync_to_async
from django.contrib.staticfiles import finders
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_POST

from pattern_lab.catalog.pages import pages
from pattern_lab.runs import keys
from pattern_lab.runs.frames import FrameBuilder, node_actions
from pattern_lab.runs.identity import uid
from pattern_lab.runs.lifecycle import fork_at as fork_at_moment
from pattern_lab.runs.lifecycle import run_url
from pattern_lab.runs.models import Command, Run
from pattern_lab.runs.services import Rejected
from simulations import get_lab
from simulations.kernel import fmt_ms

from .feed import diagram_feed
from .history import history_for

WINDOW_MS = 5_000  # the diagram shows this much time before the moment
MAX_WINDOW_MS = 30_000
MAX_MARKS = 500


def offloaded(view):
    """Run a (sync) view on the thread pool instead of Django's one shared
    thread for sync code."""

    @functools.wraps(view)
    async def wrapper(request, *args, **kwargs):
        return await sync_to_async(view, thread_sensitive=False)(request, *args, **kwargs)

    return wrapper


def run_or_404(run_id: str) -> Run:
    run = Run.objects.filter(id=run_id[:16]).first()
    if run is None:
        raise Rejected(f"There is no run '{run_id[:20]}'. The link may be old.", 404)
    return run


def run_end(run: Run) -> float:
    """How far the run has got: the latest published frame's time, or where it stopped."""
    try:
        pos = keys.client().get(keys.pos(run.id))
    except Exception:  # Redis away: the database still knows where the run stopped
        pos = None
    return max(float(pos.split()[0]) if pos else 0.0, run.sim_t)


def parse_ms(raw, end: float, name: str = "t") -> float:
    """A moment in ms within [0, end]; anything else is refused with the reason."""
    if raw is None or str(raw).strip() == "":
        raise Rejected(f"Give the moment as {name}=<milliseconds>, e.g. {name}=1500.", 400)
    try:
        t = float(str(raw).strip())
    except ValueError:
        raise Rejected(f"{name} must be a number of milliseconds; got '{str(raw)[:20]}'.", 400) from None
    if not math.isfinite(t):
        raise Rejected(f"{name} must be a finite number of milliseconds.", 400)
    if t < 0:
        raise Rejected(f"{name} must be 0 or more: a run starts at 0 ms.", 400)
    if t > end + 0.5:
        raise Rejected(f"The run has only reached {fmt_ms(end)} ({end:.0f} ms); {name}={t:.0f} is in its future.", 404)
    return min(round(t, 3), end)


def applied_commands(run: Run) -> list[tuple]:
    return list(Command.objects.filter(run=run).exclude(t=None).order_by("n", "id").values_list("t", "action", "args"))


def history_of(run: Run):
    return history_for(run.id, get_lab(run.lab), run.params, run.seed, applied_commands(run))


# A class following its instructor asks for the same moment from every student's
# page at once: the first request renders it, the others wait for it and share it
# (per process, for a few seconds, keyed by the run, the moment and its command log).
MOMENT_TTL_S = 5.0
MAX_MOMENTS = 64
_moments: OrderedDict[tuple, tuple[float, dict]] = OrderedDict()
_moment_locks: dict[tuple, threading.Lock] = {}
_moments_lock = threading.Lock()


def moment_payload(run: Run, t: float, end: float) -> dict:
    commands = applied_commands(run)
    key = (run.id, t, len(commands), repr(commands[-1]) if commands else None)
    with _moments_lock:
        lock = _moment_locks.setdefault(key, threading.Lock())
    with lock:
        with _moments_lock:
            hit = _moments.get(key)
        # A moment whose next event lay beyond the run's end then may have one now.
        if hit is None or hit[0] < time.monotonic() or (hit[1]["next_t"] is None and hit[1]["end"] != end):
            history = history_for(run.id, get_lab(run.lab), run.params, run.seed, commands)
            payload = render_moment(history, get_lab(run.lab), run.id, t, end)
            with _moments_lock:
                _moments[key] = hit = (time.monotonic() + MOMENT_TTL_S, payload)
                while len(_moments) > MAX_MOMENTS:
                    old, _ = _moments.popitem(last=False)
                    _moment_locks.pop(old, None)
    payload = hit[1]
    if payload["end"] == end:
        return payload
    # The run went on since the moment was rendered: only its end moved.
    return {**payload, "end": end}


def render_moment(history, lab_cls, rid: str, t: float, end: float) -> dict:
    """The moment t as the page needs it: a frame's fragments, the log up to t,
    the diagram's window before t and the neighbouring events' times."""
    m = history.seek(t, window_ms=WINDOW_MS)
    snap = m.lab.snapshot()
    builder = FrameBuilder(rid, node_actions(lab_cls))
    parts = builder.parts(m.lab, snap)
    parts["log"] = log_html(builder, m.recent)
    next_t = history.find_next(m, end)  # last: it runs the moment's copy of the lab forward
    return {"t": t, "seq": snap["seq"], "end": end, "prev_t": m.prev_t, "next_t": next_t,
            "parts": parts, "diagram": {"from": max(0.0, t - WINDOW_MS), "to": t, "events": diagram_feed(m.window),
                                        "nodes": [n["id"] for n in snap["nodes"]]}}


def log_html(builder: FrameBuilder, events: list[dict]) -> str:
    """The event log up to the moment, exactly as a full frame of the live
    run writes it (the builder's own lines: grouping, counts, words)."""
    builder.remember(events)
    lines = "".join(html for _, _, html in builder.lines)
    return f'<ol id="log-{builder.run_id}" hx-swap-oob="true" class="log">{lines}</ol>'


def refuse(err: Rejected):
    return JsonResponse({"error": err.message}, status=err.status)


@offloaded
@require_GET
def seek(request, run_id: str):
    try:
        run = run_or_404(run_id)
        end = run_end(run)
        t = parse_ms(request.GET.get("t"), end)
    except Rejected as err:
        return refuse(err)
    return JsonResponse(moment_payload(run, t, end))


@offloaded
@require_GET
def history(request, run_id: str):
    """The timeline's marks up to the run's end; with from/to, also the
    diagram's events of that stretch (at most MAX_WINDOW_MS)."""
    try:
        run = run_or_404(run_id)
        end = run_end(run)
        body: dict = {"end": end}
        if request.GET.get("to") is not None or request.GET.get("from") is not None:
            to = parse_ms(request.GET.get("to", end), end, "to")
            lo = parse_ms(request.GET.get("from", max(0.0, to - WINDOW_MS)), end, "from")
            if lo > to:
                raise Rejected("from must not be after to.", 400)
            if to - lo > MAX_WINDOW_MS:
                raise Rejected(f"Ask for at most {MAX_WINDOW_MS // 1000} s of events at once.", 400)
            m = history_of(run).seek(to, window_ms=to - lo)
            body.update({"from": lo, "to": to, "events": diagram_feed(m.window)})
        h = history_of(run)
        marks = h.marks_until(end)
    except Rejected as err:
        return refuse(err)
    if request.GET.get("seq"):
        # One mark by its event number (a check's "broken by event #N" link).
        wanted = request.GET["seq"]
        body["event"] = next((mark_of(e) for e in marks if str(e["seq"]) == wanted), None)
    # The latest MAX_MARKS of each: a timeline a few hundred pixels wide shows no more.
    body["marks"] = [mark_of(e) for e in marks[-MAX_MARKS:]]
    body["commands"] = [[t, " ".join([a, *map(str, args)])] for t, a, args in h.commands[-MAX_MARKS:]]
    return JsonResponse(body)


def mark_of(e: dict) -> list:
    """[t, seq, kind, ok, label] of one timeline mark."""
    kind = e["kind"]
    if kind == "check":
        label = f"{e['name']} {'holds again' if e.get('ok') else 'broken'}"
    elif kind == "rejected":
        label = f"rejected {e.get('action')}"
    else:
        target = e.get("node") or ("|".join(",".join(s) for s in e.get("sides", [])) if "sides" in e else "")
        label = f"{kind} {target}".strip()
    return [e["t"], e["seq"], kind, bool(e.get("ok", kind != "check")), label]


@offloaded
@require_GET
def permalink(request, run_id: str, ms: str):
    """One moment of a run, read-only, for anyone with the link."""
    try:
        run = run_or_404(run_id)
        end = run_end(run)
        t = parse_ms(ms, end, "the moment")
    except Rejected as err:
        return render_permalink_error(request, err)
    payload = moment_payload(run, t, end)
    page = pages().get(run.lab)
    lab_css = f"labs/{run.lab}.css" if finders.find(f"labs/{run.lab}.css") else None
    diagram = json.dumps(payload["diagram"], separators=(",", ":")).replace("</", "<\\/")
    return render(request, "timetravel/moment.html", {
        "run": run, "rid": run.id, "page": page, "t": t, "end": end, "payload": payload, "parts": payload["parts"],
        "lab_css": lab_css, "diagram_json": diagram, "when": fmt_ms(t),
        "mine": run.owner == uid(request),
    })


def render_permalink_error(request, err: Rejected):
    from pattern_lab.catalog.views import error

    return error(request, err.message, err.status)


@require_POST
def fork_at(request, run_id: str):
    """A new run from moment t (see runs.lifecycle.fork_at).  `rewind=1` is
    the owner's rewind (their page switches to it)."""
    try:
        run = run_or_404(run_id)
        t = parse_ms(request.POST.get("t"), run_end(run))
        new = fork_at_moment(run, t, uid(request), rewind=request.POST.get("rewind") == "1")
    except Rejected as err:
        if request.headers.get("HX-Request"):
            return HttpResponse(f'<span class="bad" role="alert">{escape(err.message)}</span>', status=err.status)
        return render_permalink_error(request, err)
    url = run_url(new)
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)
