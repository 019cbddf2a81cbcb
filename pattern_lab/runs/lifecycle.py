"""Where runs come from: the run a lab page shows, and the runs made from
other runs.  Views parse the request, call one of these, and render; these
raise Rejected (with the message the user sees) for anything they refuse.

  open_run         the run a lab page shows: the one named in the link, else
                   your latest run with these settings (rejoin_run), else a new one
  compare_runs     the other side of a side-by-side comparison: a fork in another mode
  comparison_side  that other side again, when the page is reloaded
  set_up_step      What to try's "Set this up": a new run that plays the step
  step_reached     whether a run has got to the state a step describes
  fork_at          a new run from one moment of another (time travel's fork and rewind)
  start_from_scenario  a new run from a pasted or uploaded scenario file
  export_scenario  a run written down as a scenario file
  initial_snapshot the state a run starts from (the page's static controls read it)
  run_url          the lab page that shows a run

(Runs copied as they are, restarted, or started from parsed settings are in
services.py: fork, restart, start_run, play_scenario.)"""

from __future__ import annotations

import json
from functools import lru_cache
from urllib.parse import urlencode

from django.db import transaction
from django.urls import reverse

from pattern_lab.catalog.tries import items as try_items
from pattern_lab.limits import SCENARIO_MAX_BYTES, SCENARIO_MAX_KB
from simulations import get_lab
from simulations.kernel import SimError, replay

from .models import Command, Run
from .services import Rejected, ensure_actor, fork, lab_or_404, play_scenario, position, start_run, start_scenario


def run_url(run: Run, **query) -> str:
    """The lab page showing `run` (plus any other query: vs, step)."""
    return reverse("catalog:lab", args=[run.lab]) + "?" + urlencode({"run": run.id, **query})


def open_run(slug: str, owner: str, *, run_id: str = "", settings: dict | None = None, seed=None,
             fresh: bool = False) -> Run:
    """The run a lab page shows.  A link naming a run shows that run (anyone
    may watch it).  Otherwise coming back to a lab rejoins your latest run
    with the same settings, unless the page asks for a fresh run or a seed:
    then a new run starts.  `settings` are the raw query values."""
    lab_cls = lab_or_404(slug)
    if run_id:
        run = Run.objects.filter(id=run_id[:16], lab=slug).first()
        if run is None:
            raise Rejected(f"There is no {lab_cls.title.lower()} run '{run_id[:16]}'. "
                           "The link may be old; start a new run below.", 404)
        return run
    settings = settings or {}
    names = {p.name for p in lab_cls.PARAMS}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise Rejected(f"'{unknown[0][:30]}' is not a setting of this lab "
                       f"(settings: {', '.join(sorted(names)) or 'none'}, seed).", 400)
    if not fresh and not seed:
        run = rejoin_run(slug, settings, owner)
        if run is not None:
            return run
    return start_run(slug, settings, seed, owner)


def rejoin_run(slug: str, settings: dict, owner: str) -> Run | None:
    """Your latest run of this lab with these settings, if any."""
    try:
        params = lab_or_404(slug).parse_params(settings)
    except SimError as err:
        raise Rejected(str(err), 400) from None
    return Run.objects.filter(owner=owner, lab=slug, params=params).order_by("-created").first()


def compare_param(lab_cls):
    """The lab's modes: its first param with a fixed set of choices (None if it has none)."""
    return next((p for p in lab_cls.PARAMS if p.choices), None)


def compare_runs(run: Run, owner: str, choice: str) -> Run:
    """Side by side: a copy of your run in another mode, same seed and commands."""
    mode = compare_param(lab_or_404(run.lab))
    if mode is None or run.owner != owner:
        raise Rejected("This lab has no modes to compare, or the run is not yours.", 400)
    return fork(run, owner, {mode.name: choice[:40]})


def comparison_side(slug: str, run_id: str) -> Run:
    other = Run.objects.filter(id=run_id[:16], lab=slug).first()
    if other is None:
        raise Rejected("The run to compare with is gone; open the comparison again.", 404)
    return other


def show(*runs: Run | None) -> None:
    """The page is about to show these runs: make sure a worker drives each."""
    for run in runs:
        if run is not None:
            ensure_actor(run.id)


def try_item(run: Run, index: str):
    """One step of the lab's What to try list, by its index in the URL."""
    steps = try_items(run.lab)
    try:
        return steps[int(index)]
    except (ValueError, IndexError):
        raise Rejected(f"This lab has no step {str(index)[:8]} to try.", 404) from None


def set_up_step(run: Run, index: str, owner: str):
    """Set this up: a new run with the lab's default settings plus the step's,
    the run's seed (or the step's), that applies the step's commands at their
    times.  -> (the new run, the step)."""
    if run.owner != owner:
        raise Rejected("This run belongs to someone else. Fork it to experiment on your own copy.", 403)
    step = try_item(run, index)
    new = play_scenario(run.lab, step.scenario(run.seed), owner)
    # The learner's chosen speed carries over (slowed down to explain, or sped up).
    Run.objects.filter(id=new.id).update(speed=run.speed)
    return new, step


def step_reached(run: Run, index: str, seen_t=None) -> dict:
    """Whether the run has reached the state a step describes: the run is
    rebuilt from its log up to the actor's position and the step's condition
    is evaluated on its snapshot."""
    step = try_item(run, index)
    now = position(run)
    # A state can change without an event (a timer-driven view), and a quiet
    # run sends no frames: the page may say how far its clock has got since
    # the last frame, up to a few seconds past it.
    try:
        now = min(max(now, float(now if seen_t is None else seen_t)), now + 5000)
    except ValueError:
        pass
    applied = [c.as_tuple() for c in run.commands.exclude(t=None).filter(t__lte=now).order_by("n", "id")]
    lab = replay(get_lab(run.lab), run.params, run.seed, applied, now)
    return {"reached": step.reached(lab.snapshot()), "t": round(now), "expect": step.expect}


def fork_at(run: Run, t: float, owner: str, rewind: bool = False) -> Run:
    """A new run from moment t: same lab, params, seed and the commands applied
    up to t.  `rewind` is the owner's rewind (their page switches to it)."""
    if rewind and run.owner != owner:
        raise Rejected("Only the run's owner can rewind it; fork it instead.", 403)
    with transaction.atomic():
        new = Run.objects.create(lab=run.lab, params=run.params, seed=run.seed, owner=owner, sim_t=t,
                                 speed=run.speed)
        Command.objects.bulk_create(
            Command(run=new, action=c.action, args=c.args, t=c.t, n=c.n, error=c.error, author=c.author)
            for c in run.commands.exclude(t=None).filter(t__lte=t).order_by("n", "id"))
    ensure_actor(new.id)
    return new


def start_from_scenario(slug: str, owner: str, pasted: str = "", upload=None) -> Run:
    """A new run from a scenario: an uploaded .json file, or else pasted JSON."""
    if upload is not None:
        if upload.size > SCENARIO_MAX_BYTES:
            raise Rejected(f"A scenario may be at most {SCENARIO_MAX_KB} kB.", 400)
        try:
            text = upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected("The scenario file is not UTF-8 text.", 400) from None
    else:
        text = pasted or ""
    if not text.strip():
        raise Rejected("Paste a scenario or choose a .json file first.", 400)
    return start_scenario(slug, text, owner)


def export_scenario(run: Run) -> dict:
    """The run as a scenario file: enough to replay it with the CLI or play
    it again on the page."""
    commands = []
    for c in run.commands.exclude(t=None).order_by("n", "id"):
        item = {"t": round(c.t), "action": c.action, "args": c.args}
        if c.note:
            item["note"] = c.note
        commands.append(item)
    cli = ["python -m simulations run", run.lab, f"--seed {run.seed}"]
    cli += [f"--param {k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in run.params.items()]
    cli += [f'--do "{c["t"]}ms {" ".join([c["action"], *c["args"]])}"' for c in commands]
    return {"lab": run.lab, "params": run.params, "seed": run.seed, "status": run.status,
            "sim_t": round(position(run)), "commands": commands, "cli": " ".join(cli)}


def initial_snapshot(run: Run) -> dict:
    """The state the run starts from, which a few labs' quick controls read
    (the mode, the first node's id).  The workers keep only rendered frames
    (run:<id>:full is HTML), so the lab has to be built here; some labs do
    real work when built (retry measures its strategies, about 0.1 s), so it
    is built once per lab, settings and seed and kept: reloads, rejoins and a
    class's students following one run all read the same copy.  Read-only."""
    return _initial_snapshot(run.lab, json.dumps(run.params, sort_keys=True), run.seed)


@lru_cache(maxsize=64)
def _initial_snapshot(slug: str, params_json: str, seed: int) -> dict:
    return get_lab(slug)(json.loads(params_json), seed).snapshot()
