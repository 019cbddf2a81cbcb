"""Golden event traces: what every lab did, event by event, in a fixed set of runs.

A refactoring of the kernel or of a lab must not change what a run does.  This
module replays a fixed set of scenarios per lab (every "What to try" step, and
fault-fuzzer schedules in every mode) and compares the complete event stream of
each with the one recorded in `tests/golden/traces.json` (a digest per run, so
the file stays small).

    python -m tests.golden record [--dump DIR] [--keep-inputs]  # write the digests (and full traces to DIR)
    python -m tests.golden compare [--dump DIR] [--lab SLUG]  # replay; with DIR, show the first differing event

A change that alters behaviour on purpose re-records the file in the same
commit, and says why in the commit message.  `tests/unit/test_golden.py` runs
the comparison in the suite.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from simulations import get_lab, labs
from simulations.kernel import parse_time

HERE = Path(__file__).resolve().parent / "golden"
FILE = HERE / "traces.json"
FUZZ_SEEDS = (1, 2)


def scenarios() -> list[dict]:
    """The runs to trace: their commands are fixed here, not redrawn, so a lab whose
    behaviour changes is compared on the same inputs."""
    from pattern_lab.catalog import tries  # plain YAML + JMESPath, no Django needed

    from .fuzz import mode_id, modes, run_schedule

    out: list[dict] = []
    for slug in labs():
        for item in tries.items(slug) if slug in tries.slugs_with_items() else ():
            out.append({"id": f"{slug}/try-{item.index}", "lab": slug, "params": dict(item.params),
                        "seed": item.seed if item.seed is not None else 7,
                        "commands": [[int(c.at), c.action, list(c.args)] for c in item.commands],
                        "until": int(item.until)})
        for mode in modes(get_lab(slug)):
            for seed in FUZZ_SEEDS:
                sched = run_schedule(slug, mode, seed).schedule
                out.append({"id": f"{slug}/fuzz-{mode_id(mode)}-{seed}", "lab": slug,
                            "params": dict(sched.params), "seed": sched.seed,
                            "commands": [[t, name, list(args)] for t, name, args in sched.commands],
                            "until": int(sched.until)})
    return out


def trace(scenario: dict) -> list[str]:
    """Every event of the run, one JSON line each, and the checks at the end."""
    lab = get_lab(scenario["lab"])(scenario["params"], scenario["seed"])
    lines: list[str] = []
    for t, name, args in scenario["commands"]:
        lab.run_until(parse_time(t))
        lab.command(name, list(args))
    lab.run_until(float(scenario["until"]))
    lines += [json.dumps(e, sort_keys=True) for e in lab.drain()]
    lines.append(json.dumps({"checks": [[c.name, c.ok, c.detail] for c in lab.checks.values()],
                             "metrics": lab.snapshot()["metrics"]}, sort_keys=True, default=str))
    return lines


def digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:20]


def record(dump: Path | None, keep_inputs: bool = False) -> None:
    """Record every scenario's trace; with keep_inputs, the runs already in the file
    (same commands, same seeds) are traced again, so a change of behaviour is recorded
    on exactly the inputs it was compared on."""
    runs = []
    stored = [{k: v for k, v in r.items() if k not in ("events", "digest")} for r in json.loads(FILE.read_text())]
    for sc in stored if keep_inputs else scenarios():
        lines = trace(sc)
        runs.append({**sc, "events": len(lines) - 1, "digest": digest(lines)})
        if dump:
            _dump(dump, sc["id"], lines)
    HERE.mkdir(exist_ok=True)
    FILE.write_text(json.dumps(runs, indent=0, sort_keys=True) + "\n")
    print(f"recorded {len(runs)} runs in {FILE}")


def compare(dump: Path | None = None, only: set[str] | None = None) -> list[str]:
    """The ids of the runs whose trace differs, with the first differing line when
    the earlier full traces are in `dump` (only the labs in `only`, when given)."""
    problems = []
    for run in json.loads(FILE.read_text()):
        if only and run["lab"] not in only:
            continue
        lines = trace(run)
        if digest(lines) == run["digest"]:
            continue
        msg = f"{run['id']}: {len(lines) - 1} events, recorded {run['events']}"
        old_file = dump / (run["id"].replace("/", "__") + ".jsonl") if dump else None
        if old_file and old_file.exists():
            old = old_file.read_text().splitlines()
            for i, (a, b) in enumerate(zip(old, lines)):
                if a != b:
                    msg += f"\n  first difference at line {i}:\n  was {a}\n  now {b}"
                    break
            else:
                msg += "\n  one trace is a prefix of the other"
            _dump(dump / "now", run["id"], lines)
        problems.append(msg)
    return problems


def _dump(folder: Path, run_id: str, lines: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / (run_id.replace("/", "__") + ".jsonl")).write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.golden")
    ap.add_argument("what", choices=["record", "compare"])
    ap.add_argument("--dump", type=Path, help="folder for the full traces")
    ap.add_argument("--keep-inputs", action="store_true", help="record: trace the stored runs again")
    ap.add_argument("--lab", action="append", help="compare only this lab's runs (repeatable)")
    opts = ap.parse_args(argv)
    if opts.what == "record":
        record(opts.dump, opts.keep_inputs)
        return 0
    problems = compare(opts.dump, set(opts.lab) if opts.lab else None)
    for p in problems:
        print(p)
    print(f"{len(problems)} runs differ" if problems else "every trace matches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
