"""HTTP endpoints of a run: commands, clock controls, restart, fork, export."""

from __future__ import annotations

import io
import json

import segno
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_POST

from simulations.kernel import fmt_ms

from .identity import uid
from .lifecycle import export_scenario, run_url, set_up_step, step_reached
from .models import Run
from .services import Rejected, control, fork, submit_command
from .services import restart as restart_run


def flash(text: str, status: int = 200, ok: bool = True) -> HttpResponse:
    cls = "ok" if ok else "bad"
    role = "status" if ok else "alert"
    return HttpResponse(f'<span class="{cls}" role="{role}">{escape(text)}</span>', status=status)


def get_run(run_id: str) -> Run:
    run = Run.objects.filter(id=run_id).first()
    if run is None:
        raise Rejected(f"There is no run '{run_id[:20]}'. It may have been deleted; open the lab again.", 404)
    return run


@require_POST
def command(request, run_id: str):
    try:
        run = get_run(run_id)
        args = request.POST.getlist("args")
        cmd, error = submit_command(run, uid(request), request.POST.get("action", ""), args)
    except Rejected as err:
        return flash(err.message, err.status, ok=False)
    text = " ".join([cmd.action, *cmd.args])
    if error:
        return flash(f"{text}: {error}", 422, ok=False)
    cmd.refresh_from_db(fields=["t"])
    when = f" at {fmt_ms(cmd.t)}" if cmd.t is not None else " (queued; the cluster is starting)"
    return flash(f"{text} — done{when}")


@require_POST
def clock(request, run_id: str):
    try:
        run = get_run(run_id)
        what = request.POST.get("control", "")
        control(run, uid(request), what, request.POST.get("speed"))
    except Rejected as err:
        return flash(err.message, err.status, ok=False)
    return flash({"freeze": "Clock frozen.", "play": "Clock running.", "step": "One event on."}.get(what, f"Speed {run.speed:g}×."))


@require_POST
def restart(request, run_id: str):
    """A fresh run with the same lab, params and seed (an empty command log)."""
    return new_run_from(request, run_id, restart_run)


@require_POST
def fork_run(request, run_id: str):
    """A private copy of the run, command log included."""
    return new_run_from(request, run_id, fork)


def new_run_from(request, run_id: str, make):
    try:
        new = make(get_run(run_id), uid(request))
    except Rejected as err:
        return flash(err.message, err.status, ok=False)
    return redirect(run_url(new))


@require_GET
def export(request, run_id: str):
    """The run as a scenario file, downloaded, named after the lab and the run."""
    try:
        run = get_run(run_id)
    except Rejected as err:
        return JsonResponse({"error": err.message}, status=err.status)
    response = HttpResponse(json.dumps(export_scenario(run), indent=2), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{run.lab}-{run.id}.json"'
    return response


@require_GET
def qr(request, run_id: str):
    """The run's share link as a QR code (SVG), for a room to scan."""
    try:
        run = get_run(run_id)
    except Rejected as err:
        return flash(err.message, err.status, ok=False)
    url = request.build_absolute_uri(run_url(run))
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=4, dark="#1d232b", light="#ffffff",
                                    xmldecl=False, title=f"QR code of {url}")
    response = HttpResponse(out.getvalue(), content_type="image/svg+xml")
    response["Cache-Control"] = "max-age=86400"
    return response


@require_POST
def set_up(request, run_id: str, index: str):
    """What to try's Set this up (see lifecycle.set_up_step)."""
    try:
        new, step = set_up_step(get_run(run_id), index, uid(request))
    except Rejected as err:
        return flash(err.message, err.status, ok=False)
    return redirect(run_url(new, step=step.index))


@require_GET
def reached(request, run_id: str, index: str):
    """Whether the run has reached the state a step describes (polled by the page)."""
    try:
        return JsonResponse(step_reached(get_run(run_id), index, request.GET.get("t")))
    except Rejected as err:
        return JsonResponse({"error": err.message}, status=err.status)
