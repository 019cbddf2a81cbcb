"""HTTP endpoints of a run: commands, clock controls, restart, fork, export."""

from __future__ import annotations

import io
import json

import segno
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_POST

from pattern_lab.catalog.tries import items as try_items
from simulations import get_lab
from simulations.kernel import fmt_ms, replay

from .identity import uid
from .models import Run
from .services import Rejected, control, fork, play_scenario, position, submit_command
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
    return redirect(f"/patterns/{new.lab}/?run={new.id}")


@require_GET
def export(request, run_id: str):
    """The run as a scenario file: enough to replay it with the CLI or play
    it again on the page.  Downloaded, named after the lab and the run."""
    try:
        run = get_run(run_id)
    except Rejected as err:
        return JsonResponse({"error": err.message}, status=err.status)
    commands = []
    for c in run.commands.exclude(t=None).order_by("n", "id"):
        item = {"t": round(c.t), "action": c.action, "args": c.args}
        if c.note:
            item["note"] = c.note
        commands.append(item)
    cli = ["python -m simulations run", run.lab, f"--seed {run.seed}"]
    cli += [f"--param {k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in run.params.items()]
    cli += [f'--do "{c["t"]}ms {" ".join([c["action"], *c["args"]])}"' for c in commands]
    body = {"lab": run.lab, "params": run.params, "seed": run.seed, "status": run.status,
            "sim_t": round(position(run)), "commands": commands, "cli": " ".join(cli)}
    response = HttpResponse(json.dumps(body, indent=2), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{run.lab}-{run.id}.json"'
    return response


@require_GET
def qr(request, run_id: str):
    """The run's share link as a QR code (SVG), for a room to scan."""
    try:
        run = get_run(run_id)
    except Rejected as err:
        return flash(err.message, err.status, ok=False)
    url = request.build_absolute_uri(f"/patterns/{run.lab}/?run={run.id}")
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=4, dark="#1d232b", light="#ffffff",
                                    xmldecl=False, title=f"QR code of {url}")
    response = HttpResponse(out.getvalue(), content_type="image/svg+xml")
    response["Cache-Control"] = "max-age=86400"
    return response


def try_item(run: Run, index: str):
    steps = try_items(run.lab)
    try:
        return steps[int(index)]
    except (ValueError, IndexError):
        raise Rejected(f"This lab has no step {str(index)[:8]} to try.", 404) from None


@require_POST
def set_up(request, run_id: str, index: str):
    """Set this up: a new run with the lab's default settings plus the step's,
    the run's seed (or the step's), that applies the step's commands at their
    times."""
    try:
        run = get_run(run_id)
        if run.owner != uid(request):
            raise Rejected("This run belongs to someone else. Fork it to experiment on your own copy.", 403)
        step = try_item(run, index)
        new = play_scenario(run.lab, step.scenario(run.seed), uid(request))
        # The learner's chosen speed carries over (slowed down to explain, or sped up).
        Run.objects.filter(id=new.id).update(speed=run.speed)
    except Rejected as err:
        return flash(err.message, err.status, ok=False)
    return redirect(f"/patterns/{new.lab}/?run={new.id}&step={step.index}")


@require_GET
def reached(request, run_id: str, index: str):
    """Whether the run has reached the state a step describes: the run is
    rebuilt from its log up to the actor's position and the step's condition
    is evaluated on its snapshot."""
    try:
        run = get_run(run_id)
        step = try_item(run, index)
    except Rejected as err:
        return JsonResponse({"error": err.message}, status=err.status)
    now = position(run)
    # A state can change without an event (a timer-driven view), and a quiet
    # run sends no frames: the page may say how far its clock has got since
    # the last frame, up to a few seconds past it.
    try:
        now = min(max(now, float(request.GET.get("t", now))), now + 5000)
    except ValueError:
        pass
    applied = [c.as_tuple() for c in run.commands.exclude(t=None).filter(t__lte=now).order_by("n", "id")]
    lab = replay(get_lab(run.lab), run.params, run.seed, applied, now)
    return JsonResponse({"reached": step.reached(lab.snapshot()), "t": round(now), "expect": step.expect})
