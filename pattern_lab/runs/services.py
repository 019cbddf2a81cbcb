"""The one path every command takes, whether it came from a form POST or the
websocket: check who sends it, how fast, and that it is well formed; store it
(the run's write-ahead log); wake the run's actor; wait briefly for its verdict."""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError

from pattern_lab.limits import SCENARIO_MAX_KB, too_big
from simulations import get_lab
from simulations.kernel import SimError, parse_time

from . import keys
from .models import Command, Run

VERDICT_WAIT_S = 1.5
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
log = logging.getLogger(__name__)
RESTARTING = "The live service is restarting; try again in a few seconds."


@dataclass
class Rejected(Exception):
    """A command or request we refuse, with the message the user sees."""

    message: str
    status: int = 422

    def __str__(self):
        return self.message


def new_seed() -> int:
    return secrets.randbelow(1_000_000)


def lab_or_404(slug: str):
    try:
        return get_lab(slug)
    except SimError as err:
        raise Rejected(str(err), 404) from None


def start_run(slug: str, raw_params: dict, seed, owner: str) -> Run:
    lab_cls = lab_or_404(slug)
    try:
        params = lab_cls.parse_params(raw_params)
    except SimError as err:
        raise Rejected(str(err), 400) from None
    if seed in (None, ""):
        seed = new_seed()
    try:
        seed = int(seed)
        if not 0 <= seed < 2**31:
            raise ValueError
    except (TypeError, ValueError):
        raise Rejected("seed must be a whole number from 0 to 2147483647", 400) from None
    return Run.objects.create(lab=slug, params=params, seed=seed, owner=owner)


def check_shape(lab_cls, action: str, tokens: list[str]) -> None:
    """Validate what can be validated without the run's current state: the
    action exists, the argument count and formats fit.  (Whether node n7
    exists right now is for the actor to say, against the live state.)"""
    try:
        spec = lab_cls.spec(action)
        spec.check_count(tokens)
    except SimError as err:
        raise Rejected(str(err)) from None
    for arg, tok in zip(spec.args, tokens):
        try:
            arg.check_shape(tok)
        except SimError as err:
            raise Rejected(str(err)) from None


def normalise_args(args) -> list[str]:
    if args is None:
        return []
    if isinstance(args, str):
        args = [args]
    if not isinstance(args, list) or len(args) > 8:
        raise Rejected("args must be a short list of words")
    tokens: list[str] = []
    for item in args:
        if not isinstance(item, (str, int, float)) or isinstance(item, bool):
            raise Rejected("args must be words or numbers")
        tokens += str(item).split()
    if len(tokens) > 8 or any(len(t) > 200 for t in tokens):
        raise Rejected("too many or too long arguments")
    return tokens


def rate_limit(run_id: str, who: str) -> None:
    """At most 2 x COMMANDS_PER_S commands in any two seconds (a sliding
    window: every attempt counts, refused ones too, so a flood stays out)."""
    per_s = settings.PATTERN_LAB["COMMANDS_PER_S"]
    key = f"rl:{run_id}:{who}"
    now = time.time()
    r = keys.client()
    try:
        _, _, count, _ = (r.pipeline().zremrangebyscore(key, 0, now - 2).zadd(key, {secrets.token_hex(4): now})
                          .zcard(key).expire(key, 3).execute())
    except REDIS_DOWN:
        raise Rejected(RESTARTING, 503) from None
    if count > per_s * 2:
        raise Rejected(f"Slow down: at most {per_s * 2} commands every two seconds on one run.", 429)


def submit_command(run: Run, who: str, action, args, wait: bool = True) -> tuple[Command, str | None]:
    """Store and dispatch one command.  Returns (command, error): error is the
    actor's rejection, if it gave one within the wait."""
    if run.owner != who:
        raise Rejected("This run belongs to someone else. Fork it to experiment on your own copy.", 403)
    rate_limit(run.id, who)  # before anything else: a flood of bad commands is a flood too
    if run.kind == "lesson" and (Run.objects.filter(id=run.id).values_list("watch", flat=True).first() or {}).get("locked"):
        raise Rejected("Make your prediction first: choose an answer in the lesson panel.", 409)
    if not isinstance(action, str) or not action:
        raise Rejected("a command needs an action")
    tokens = normalise_args(args)
    check_shape(lab_or_404(run.lab), action, tokens)
    with transaction.atomic():
        cmd = Command.objects.create(run=run, action=action, args=tokens, author=who)
    r = keys.client()
    try:
        wake(run.id, "cmd")
        ensure_actor(run.id)
        if not wait:
            return cmd, None
        reply = r.blpop([f"cmd:{cmd.id}:verdict"], timeout=VERDICT_WAIT_S)
    except REDIS_DOWN:  # stored: the run applies it when the live service is back
        return cmd, None
    return cmd, (reply[1].decode() or None) if reply else None


SPEED_MIN, SPEED_MAX = 0.05, 4.0


def control(run: Run, who: str, what: str, value=None) -> None:
    """Run-level controls: freeze / play the clock, change the speed, and
    while frozen step one event at a time."""
    if run.owner != who:
        raise Rejected("Only the run's owner can change its clock.", 403)
    if what == "step":
        if not run.frozen:
            raise Rejected("Freeze the clock first; then each step shows one event.")
        r = keys.client()
        try:
            r.pipeline().incr(keys.steps(run.id)).expire(keys.steps(run.id), 60).execute()
            wake(run.id, "step")
            ensure_actor(run.id)
        except REDIS_DOWN:
            raise Rejected(RESTARTING, 503) from None
        return
    if what == "freeze":
        run.frozen = True
    elif what == "play":
        run.frozen = False
    elif what == "speed":
        try:
            speed = float(value)
        except (TypeError, ValueError):
            raise Rejected(f"speed must be a number from {SPEED_MIN:g} to {SPEED_MAX:g}") from None
        if not SPEED_MIN <= speed <= SPEED_MAX:  # also refuses nan and inf
            raise Rejected(f"speed must be from {SPEED_MIN:g} to {SPEED_MAX:g}")
        run.speed = speed
    else:
        raise Rejected("unknown control; use freeze, play, step or speed")
    run.save(update_fields=["frozen", "speed", "updated"])
    try:
        wake(run.id, "ctl")
        ensure_actor(run.id)
    except REDIS_DOWN:  # stored: the run reads it when the live service is back
        pass


def wake(run_id: str, what: str) -> bool:
    """Tell the worker driving the run (if one does) that something changed."""
    r = keys.client()
    return bool(r.register_script(keys.WAKE)(keys=[keys.inbox(run_id)], args=[f"{run_id} {what}"]))


def ensure_actor(run_id: str) -> None:
    """Make sure some worker drives the run: queue a "drive run X" message
    unless a worker holds its lease (then wake it: a viewer may have just
    arrived) or a message was queued a moment ago.  The worker checks, when it
    takes the message, that somebody still watches the run."""
    from .tasks import drive_run

    r = keys.client()
    try:
        if r.exists(keys.lease(run_id)):
            wake(run_id, "view")
        elif r.set(keys.starting(run_id), "1", nx=True, px=4000):
            drive_run.delay(run_id)
    except (*REDIS_DOWN, OperationalError):
        # Redis is restarting: the page still loads; daphne's watchdog asks
        # again every second for each run that has viewers.
        log.warning("run %s: Redis unavailable, cannot queue it now", run_id)


def fork(run: Run, owner: str, change: dict | None = None) -> Run:
    """A private copy of a run: same lab, params, seed and command log, so it
    replays to the same state and continues from there.  `change` overrides
    params (the other mode of a side-by-side comparison)."""
    params = run.params
    if change:
        try:
            params = lab_or_404(run.lab).parse_params({**run.params, **change})
        except SimError as err:
            raise Rejected(str(err), 400) from None
    sim_t = position(run)
    with transaction.atomic():
        copy = Run.objects.create(lab=run.lab, params=params, seed=run.seed, owner=owner, sim_t=sim_t)
        Command.objects.bulk_create(
            Command(run=copy, action=c.action, args=c.args, t=c.t, n=c.n, error=c.error, author=c.author,
                    due=c.due, note=c.note)
            # what was applied, in order, then a scenario's commands still to come
            for c in [*run.commands.exclude(t=None).order_by("n", "id"),
                      *run.commands.filter(t=None).exclude(due=None).order_by("due", "id")]
        )
    return copy


SCENARIO_MAX_COMMANDS = 500
SCENARIO_MAX_T = 3_600_000  # one hour of simulated time


SCENARIO_FIELDS = ("lab", "params", "seed", "commands")
EXPORT_FIELDS = ("cli", "status", "sim_t")  # written by the Scenario link; ignored when played
COMMAND_FIELDS = ("t", "action", "args", "note")


def start_scenario(slug: str, text: str, owner: str) -> Run:
    """A new run from a scenario file (the format the Scenario link exports):
    {"lab", "params", "seed", "commands": [{"t", "action", "args", "note"}]}.
    Each command is stored with its due time and applied when the run gets
    there.  Anything wrong is refused as a whole, saying where."""
    if too_big(text):
        raise Rejected(f"A scenario may be at most {SCENARIO_MAX_KB} kB.", 400)
    try:
        data = json.loads(text)
    except ValueError as err:
        raise Rejected(f"The scenario is not valid JSON ({err.msg} at line {err.lineno}).", 400) from None
    return play_scenario(slug, data, owner)


def play_scenario(slug: str, data, owner: str) -> Run:
    """Validate a parsed scenario and start its run (Set this up uses it too)."""
    lab_cls = lab_or_404(slug)
    if not isinstance(data, dict):
        raise Rejected('A scenario is a JSON object like {"seed": 1, "commands": [...]}.', 400)
    unknown = sorted(set(data) - set(SCENARIO_FIELDS) - set(EXPORT_FIELDS))
    if unknown:
        raise Rejected(f"Unknown field '{unknown[0][:30]}' in the scenario (fields: {', '.join(SCENARIO_FIELDS)}).", 400)
    if data.get("lab", slug) != slug:
        raise Rejected(f"This scenario is for the '{str(data['lab'])[:40]}' lab, not '{slug}'.", 400)
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise Rejected("params must be an object of name: value.", 400)
    commands = data.get("commands") or []
    if not isinstance(commands, list) or len(commands) > SCENARIO_MAX_COMMANDS:
        raise Rejected(f"commands must be a list of at most {SCENARIO_MAX_COMMANDS} commands.", 400)
    parsed = []
    for i, item in enumerate(commands, start=1):
        where = f"Command {i}"
        if not isinstance(item, dict):
            raise Rejected(f'{where} must look like {{"t": "1.5s", "action": "crash", "args": ["n1"]}}.', 400)
        extra = sorted(set(item) - set(COMMAND_FIELDS) - {"error"})
        if extra:
            raise Rejected(f"{where}: unknown field '{extra[0][:30]}' (fields: {', '.join(COMMAND_FIELDS)}).", 400)
        try:
            t = parse_time(item.get("t", 0))
        except SimError as err:
            raise Rejected(f"{where}: {err}", 400) from None
        if t > SCENARIO_MAX_T:
            raise Rejected(f"{where}: times may go up to one hour (3600s).", 400)
        action = item.get("action")
        if not isinstance(action, str):
            raise Rejected(f"{where} needs an action.", 400)
        note = item.get("note", "")
        if not isinstance(note, str) or len(note) > 200:
            raise Rejected(f"{where}: a note is a short text (at most 200 characters).", 400)
        try:
            tokens = normalise_args(item.get("args", []))
            check_shape(lab_cls, action, tokens)
        except Rejected as err:
            raise Rejected(f"{where}: {err.message}", 400) from None
        parsed.append((round(t), action, tokens, note.strip()))
    with transaction.atomic():
        run = start_run(slug, {k: v for k, v in params.items()}, data.get("seed"), owner)
        Command.objects.bulk_create(Command(run=run, action=a, args=tok, due=t, note=note, author=owner)
                                    for t, a, tok, note in sorted(parsed, key=lambda c: c[0]))
    return run


def restart(run: Run, owner: str) -> Run:
    """The same lab, settings and seed from t = 0.  A run that played a
    scenario (or a Set this up step) plays it again; learners' own commands
    are not replayed."""
    with transaction.atomic():
        new = start_run(run.lab, run.params, run.seed, owner)
        Command.objects.bulk_create(Command(run=new, action=c.action, args=c.args, due=c.due, note=c.note, author=owner)
                                    for c in run.commands.exclude(due=None).order_by("due", "id"))
    return new


def scripted(run: Run) -> list[dict]:
    """A scenario run's timed commands, for the page's "what comes next"."""
    return [{"t": round(c.due), "do": " ".join([c.action, *c.args]), "note": c.note}
            for c in run.commands.exclude(due=None).order_by("due", "id")]


def position(run: Run) -> float:
    """The run's simulated time now: the actor's last published position, or
    where it stopped."""
    pos = keys.client().get(keys.pos(run.id))
    return max(float(pos.split()[0]) if pos else 0.0, run.sim_t)
