"""A small random-schedule loop for the lab tests: random faults from the
palette and the lab's own actions, many seeds.  Each run must finish within a
bounded number of events, raise nothing, and keep the checks the lab claims
must hold under the given settings.  A failure prints the command line that
replays it."""

from __future__ import annotations

import random

from simulations import get_lab

MAX_EVENTS = 200_000


def _args(spec, lab, rng) -> list[str]:
    nodes = [n for n in lab.nodes if n not in lab.UNFAULTABLE]
    out = []
    for arg in spec.args:
        if arg.optional and rng.random() < 0.4:
            break
        if arg.kind == "node":
            out.append(rng.choice(nodes))
        elif arg.kind == "int":
            lo = int(arg.lo if arg.lo is not None else 0)
            out.append(str(rng.randint(lo, int(min(arg.hi if arg.hi is not None else 50, lo + 50)))))
        elif arg.kind == "ms":
            out.append(str(rng.choice([0, 50, 300, 1000, 3000])))
        elif arg.kind == "percent":
            out.append(str(rng.choice([10, 50, 100])))
        elif arg.kind == "word":
            out.append(rng.choice(arg.choices))
        elif arg.kind == "text":
            out.append(rng.choice(["x", "y", "alice", "bob", "u00001", "u95406"]))
        elif arg.kind == "groups":
            rng.shuffle(nodes)
            cut = rng.randint(1, len(nodes) - 1)
            out.append(",".join(nodes[:cut]) + "|" + ",".join(nodes[cut:]))
    return out


def schedule(slug: str, seed: int, commands: int = 14, skip: tuple[str, ...] = ()) -> list:
    cls = get_lab(slug)
    probe = cls({}, 0)
    rng = random.Random(seed)
    names = [n for n in cls.ACTIONS if n not in skip]
    t, out = 0, []
    for _ in range(commands):
        t += rng.choice([1, 20, 100, 400, 1500])
        name = rng.choice(names)
        out.append((t, name, _args(cls.ACTIONS[name], probe, rng)))
    return out


def fuzz(slug: str, params: dict, seeds, hold: tuple[str, ...] = (), skip: tuple[str, ...] = (),
         settle: float = 8000) -> None:
    for seed in seeds:
        commands = schedule(slug, seed, skip=skip)
        end = commands[-1][0] + settle
        replay = (f"python -m simulations run {slug} --seed {seed} "
                  + " ".join(f"--param {k}={v}" for k, v in params.items()) + " "
                  + " ".join(f'--do "{t} {n} {" ".join(a)}"'.rstrip() for t, n, a in commands)
                  + f" --until {end:.0f}")
        lab = get_lab(slug)({k: str(v) for k, v in params.items()}, seed)
        try:
            for t, name, args in commands:
                lab.run_until(t)
                lab.command(name, args)
                lab.drain()
            while lab.now < end:
                lab.run_until(min(end, lab.now + 250))
                lab.drain()
                assert lab.seq < MAX_EVENTS, f"more than {MAX_EVENTS} events"
            lab.snapshot()
        except Exception as err:
            raise AssertionError(f"{type(err).__name__}: {err}\n  replay: {replay}") from err
        for check in lab.checks.values():
            if check.name in hold:
                assert check.ok, f"{check.name} went red: {check.detail}\n  replay: {replay}"
