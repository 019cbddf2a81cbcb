"""A fault fuzzer for the labs.

One schedule = a lab, a mode, params (often at their bounds), a seed and a list
of commands drawn from the fault palette and the lab's own actions, each built
from the lab's ACTIONS specs against the state of the run at that moment (a
crash picks a node that is up, a restart one that is down, partitions split
the real node ids, numbers stay within their bounds).  Half the schedules end
with a calm phase (heal, resume, restart, normal speed) and then run long
enough for the checks that wait for a quiet network to judge.

Each run must finish within a bounded number of scheduled steps and of CPU
time, raise nothing, and keep every check that the lab declares an invariant
in that mode (`Lab.INVARIANTS`).  A failure is reported with the exact
`python -m simulations run ...` command that reproduces it.
"""

from __future__ import annotations

import itertools
import json
import random
import shlex
import signal
import time
from dataclasses import dataclass, field

from simulations import get_lab
from simulations.kernel import Lab, SimError

MAX_STEPS_PER_SECOND = 200_000  # scheduled callbacks per simulated second before we call it a hang
WALL_LIMIT_S = 10.0  # one run may not take longer than this (they take well under a second)
SLICE_MS = 250.0  # run_until in slices, counting steps between them
TEXTS = ("a", "b", "k1", "k2", "x", "alice", "bob", "u95406", "v1", "7")


class Hang(Exception):
    pass


def modes(lab_cls: type[Lab]) -> list[dict[str, str]]:
    """Every combination of the lab's choice params (its modes)."""
    choice = [p for p in lab_cls.PARAMS if p.choices]
    return [dict(zip([p.name for p in choice], combo)) for combo in itertools.product(*(p.choices for p in choice))]


def mode_id(mode: dict[str, str]) -> str:
    return ",".join(mode.values()) or "default"


@dataclass
class Schedule:
    slug: str
    seed: int
    params: dict[str, str]
    commands: list[tuple[int, str, list[str]]] = field(default_factory=list)
    until: int = 0

    def command_line(self) -> str:
        parts = ["python", "-m", "simulations", "run", self.slug, "--seed", str(self.seed)]
        for k, v in self.params.items():
            parts += ["--param", f"{k}={v}"]
        for t, name, args in self.commands:
            parts += ["--do", " ".join([str(t), name, *args])]
        parts += ["--until", str(self.until)]
        return shlex.join(parts)


def draw_params(lab_cls: type[Lab], mode: dict[str, str], rng: random.Random) -> dict[str, str]:
    """The mode's choices; other params at their default, a bound, or anywhere between."""
    out = dict(mode)
    for p in lab_cls.PARAMS:
        if p.choices:
            continue
        roll = rng.random()
        if p.kind == "bool":
            if roll < 0.5:
                out[p.name] = rng.choice(["true", "false"])
            continue
        if roll < 0.45 or p.lo is None:
            continue  # the default
        if roll < 0.65:
            value = p.lo
        elif roll < 0.8:
            value = p.hi
        else:
            value = p.lo + (p.hi - p.lo) * rng.random() ** 3  # mostly small
        out[p.name] = str(int(value)) if p.kind == "int" else f"{value:g}"
    return out


def _ms(arg, rng: random.Random) -> str:
    lo = arg.lo if arg.lo is not None else 0
    hi = arg.hi if arg.hi is not None else 10_000
    roll = rng.random()
    if roll < 0.1:
        return str(int(lo))
    if roll < 0.15:
        return str(int(hi))
    return str(int(lo + (min(hi, lo + 3000) - lo) * rng.random() ** 2))


def _int(arg, rng: random.Random) -> str:
    lo = int(arg.lo) if arg.lo is not None else 0
    hi = int(arg.hi) if arg.hi is not None else lo + 20
    roll = rng.random()
    if roll < 0.15:
        return str(lo)
    if roll < 0.25:
        return str(hi)
    return str(int(lo + (hi - lo) * rng.random() ** 2))


def _groups(lab: Lab, rng: random.Random) -> str:
    ids = list(lab.nodes)
    rng.shuffle(ids)
    if rng.random() < 0.3 and len(ids) > 2:
        ids = ids[: rng.randint(2, len(ids) - 1)]  # leave some nodes unnamed
    cut = rng.randint(1, len(ids) - 1)
    sides = [ids[:cut], ids[cut:]]
    if len(sides[1]) > 1 and rng.random() < 0.2:
        c2 = rng.randint(1, len(sides[1]) - 1)
        sides = [sides[0], sides[1][:c2], sides[1][c2:]]
    return "|".join(",".join(side) for side in sides)


def draw_command(lab: Lab, rng: random.Random) -> tuple[str, list[str]] | None:
    """One command that makes sense now: a fault (about half the time) or a lab action."""
    faults = [n for n, s in lab.ACTIONS.items() if s.group == "fault"]
    own = [n for n, s in lab.ACTIONS.items() if s.group != "fault"]
    faultable = [n for n in lab.nodes if n not in lab.UNFAULTABLE]
    name = rng.choice(faults if (rng.random() < 0.55 or not own) and faults else own)
    spec = lab.ACTIONS[name]
    by_status = {"crash": "up", "pause": "up", "restart": "down", "resume": "paused"}
    if name in by_status:
        fit = [n for n in faultable if lab.nodes[n].status == by_status[name]]
        return (name, [rng.choice(fit)]) if fit else None
    args: list[str] = []
    nodes_used: list[str] = []
    for i, arg in enumerate(spec.args):
        if arg.optional and rng.random() < 0.5:
            break
        if arg.kind == "node":
            pool = faultable if spec.group == "fault" and i == 0 else list(lab.nodes)
            if i == 0 and spec.group != "fault":
                pool = lab.targets(name) or pool
            if i > 0 and spec.group == "fault":  # the far end of a link: any other node
                pool = [n for n in pool if n not in nodes_used]
                if not pool:
                    return None
            value = rng.choice(pool)
            nodes_used.append(value)
        elif arg.kind == "word":
            value = rng.choice(arg.choices)
        elif arg.kind == "text":
            value = rng.choice(TEXTS)
        elif arg.kind == "groups":
            value = _groups(lab, rng)
        elif arg.kind == "ms":
            value = _ms(arg, rng)
        elif arg.kind == "percent":
            value = str(rng.choice([0, 10, 30, 50, 100, rng.randint(0, 100)]))
        else:
            value = _int(arg, rng)
        args.append(value)
    return name, args


def calm_down(lab: Lab) -> list[tuple[str, list[str]]]:
    """Commands that undo every fault still in force."""
    out: list[tuple[str, list[str]]] = []
    if "heal" in lab.ACTIONS:
        out.append(("heal", []))
    for node in lab.nodes.values():
        if node.id in lab.UNFAULTABLE:
            continue
        if node.status == "paused" and "resume" in lab.ACTIONS:
            out.append(("resume", [node.id]))
        elif node.status == "down" and "restart" in lab.ACTIONS:
            out.append(("restart", [node.id]))
        if node.slow_ms and "slow" in lab.ACTIONS:
            out.append(("slow", [node.id, "0"]))
    return out


@dataclass
class Outcome:
    schedule: Schedule
    problem: str | None
    wall: float
    steps: int
    snapshot: str = ""  # the final snapshot as JSON (empty when the run failed)


class _Alarm:
    """Turns a run stuck inside one callback (an endless loop) into an exception."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self):
        def ring(signum, frame):
            raise Hang(f"still running after {self.seconds:.0f} s of CPU time")

        # CPU time of this process, not wall time: a busy machine (other tests,
        # a browser) must not turn a slow run into a "hang".
        self.old = signal.signal(signal.SIGPROF, ring)
        signal.setitimer(signal.ITIMER_PROF, self.seconds)
        return self

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, self.old)
        return False


def advance(lab: Lab, until: float, budget: list[int]) -> None:
    """run_until in slices, failing when the scheduler does too many steps.  Like the CLI, it
    always runs what is due at `until` (even when the clock is there already)."""
    until = float(until)  # the CLI's times are floats: so are ours, for byte-identical snapshots
    while True:
        start = lab.sim._counter
        target = min(until, lab.now + SLICE_MS)
        lab.run_until(target)
        budget[0] -= lab.sim._counter - start
        if budget[0] < 0:
            raise Hang(f"more than {MAX_STEPS_PER_SECOND} scheduled steps per simulated second (at t={lab.now:.0f})")
        if target >= until:
            return


def run_schedule(slug: str, mode: dict[str, str], seed: int, lab_cls: type[Lab] | None = None,
                 wall_limit: float = WALL_LIMIT_S) -> Outcome:
    """Draw one schedule (deterministic in `seed`) and run it, building the commands as it goes."""
    lab_cls = lab_cls or get_lab(slug)
    rng = random.Random(f"{slug}/{mode_id(mode)}/{seed}")
    params = draw_params(lab_cls, mode, rng)
    sched = Schedule(slug, seed, params)
    t0 = time.perf_counter()
    lab: Lab | None = None
    final = ""
    try:
        with _Alarm(wall_limit):
            lab = lab_cls(params, seed)
            invariants = set(lab.invariants())
            calm = rng.random() < 0.5
            end_faults = rng.randint(2000, 8000)
            times = sorted(rng.randint(50, end_faults) for _ in range(rng.randint(2, 10)))
            if rng.random() < 0.3:  # several things at one instant
                times[len(times) // 2:] = [times[len(times) // 2]] * (len(times) - len(times) // 2)
            until = end_faults + (12_000 if calm else rng.randint(500, 4000))
            sched.until = until
            budget = [int(MAX_STEPS_PER_SECOND * until / 1000) + 10_000]
            broken: list[str] = []

            def watch() -> None:
                claimed = invariants & set(lab.invariants())  # a lab may leave a mode live (an action)
                for e in lab.drain():
                    if e["kind"] == "check" and not e["ok"] and e["name"] in claimed:
                        broken.append(f"check {e['name']} went red at t={e['t']}: {e['detail']}")

            for t in times:
                advance(lab, t, budget)
                watch()  # judged in the mode the lab was in when they happened
                drawn = draw_command(lab, rng)
                if drawn is None:
                    continue
                sched.commands.append((t, drawn[0], drawn[1]))
                lab.command(*drawn)
                watch()
            if calm:
                t = end_faults + 500
                advance(lab, t, budget)
                for name, args in calm_down(lab):
                    sched.commands.append((t, name, args))
                    lab.command(name, args)
            advance(lab, until, budget)
            watch()
            final = json.dumps(lab.snapshot())
        problem = broken[0] if broken else None
    except Hang as err:
        problem = f"hang: {err}"
    except SimError as err:
        problem = f"SimError outside a command: {err}"
    except Exception as err:  # noqa: BLE001 - any exception is a finding
        problem = f"raised {type(err).__name__}: {err}"
    if not sched.until:
        sched.until = int(lab.now) + 1 if lab else 1
    steps = lab.sim._counter if lab else 0
    return Outcome(sched, problem, time.perf_counter() - t0, steps, final)
