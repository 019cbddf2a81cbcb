"""HTTP endpoints of a run: commands, clock controls, restart, fork, export."""

from __future__ import annotations

import json

from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_POST

from simulations.kernel import fmt_ms

from .identity import uid
from .models import Run
from .services import Rejected, control, fork, start_run, submit_command


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
    return new_run_from(request, run_id, lambda run, who: start_run(run.lab, run.params, run.seed, who))


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
    """The run as a scenario: enough to replay it with the CLI or share it."""
    try:
        run = get_run(run_id)
    except Rejected as err:
        return JsonResponse({"error": err.message}, status=err.status)
    commands = [{"t": c.t, "action": c.action, "args": c.args} for c in run.commands.exclude(t=None).order_by("n", "id")]
    cli = ["python -m simulations run", run.lab, f"--seed {run.seed}"]
    cli += [f"--param {k}={v}" for k, v in run.params.items()]
    cli += [f'--do "{c["t"]:g} {" ".join([c["action"], *c["args"]])}"' for c in commands]
    body = {"lab": run.lab, "params": run.params, "seed": run.seed, "status": run.status, "sim_t": run.sim_t,
            "commands": commands, "cli": " ".join(cli)}
    return HttpResponse(json.dumps(body, indent=2), content_type="application/json")
