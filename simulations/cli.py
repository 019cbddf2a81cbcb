"""The command-line front door.

    python -m simulations list
    python -m simulations describe leader-election
    python -m simulations run leader-election --seed 7 --param nodes=5 \\
        --do "1s crash n5" --do "5s restart n5" --until 10s

`run` prints every event as one JSON line, then one `{"snapshot": ...}` line.
The same arguments always print the same bytes.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import get_lab, labs
from .kernel import SimError, parse_time, replay


def parse_do(text: str) -> tuple[float, str, list[str]]:
    """'1.5s crash n3' -> (1500.0, 'crash', ['n3'])."""
    parts = text.split()
    if len(parts) < 2:
        raise SimError(f"--do needs a time and an action, like \"1s crash n3\"; got '{text}'")
    return parse_time(parts[0]), parts[1], parts[2:]


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulations", description="Run Pattern Lab's simulations.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="name the labs")
    describe = sub.add_parser("describe", help="a lab's params and actions")
    describe.add_argument("lab")
    run = sub.add_parser("run", help="run a lab and print its events as JSON lines")
    run.add_argument("lab")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--param", action="append", default=[], metavar="K=V")
    run.add_argument("--do", action="append", default=[], metavar='"T ACTION [ARGS]"')
    run.add_argument("--until", default=None, help="stop at this time (default: 1s after the last command)")
    run.add_argument("--snapshot-only", action="store_true", help="print only the final snapshot")
    run.add_argument("--at", default=None, help="print the snapshot at this time instead of at the end (e.g. 2.5s)")
    args = parser.parse_args(argv)
    out = sys.stdout
    try:
        if args.cmd == "list":
            for slug, lab in labs().items():
                out.write(f"{slug}\t{lab.title}\n")
            return 0
        if args.cmd == "describe":
            out.write(json.dumps(get_lab(args.lab).describe(), indent=2) + "\n")
            return 0
        lab_cls = get_lab(args.lab)
        params = {}
        for item in args.param:
            if "=" not in item:
                raise SimError(f"--param takes name=value; got '{item}'")
            key, value = item.split("=", 1)
            params[key.strip()] = value.strip()
        commands = sorted((parse_do(d) for d in args.do), key=lambda c: c[0])
        last = commands[-1][0] if commands else 0.0
        until = parse_time(args.until) if args.until else last + 1000
        if until < last:
            raise SimError("--until is before the last --do")
        lab_cls.parse_params(params)
        if args.at is not None:
            # Time travel: the run as it was at that moment (events up to it, then its snapshot).
            at = parse_time(args.at)
            if args.until and at > until:
                raise SimError(f"--at {args.at} is after --until {args.until}")
            commands, until = [c for c in commands if c[0] <= at], at
        lab = replay(lab_cls, params, args.seed, [], None)
        for t, name, tokens in commands:
            lab.run_until(t)
            lab.command(name, tokens)
            if not args.snapshot_only:
                out.writelines(dumps(e) + "\n" for e in lab.drain())
        lab.run_until(until)
        if not args.snapshot_only:
            out.writelines(dumps(e) + "\n" for e in lab.drain())
        out.write(dumps({"snapshot": lab.snapshot()}) + "\n")
        return 0
    except SimError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
