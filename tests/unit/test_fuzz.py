"""The fault fuzzer: for every lab and every mode, seeded random schedules of the
fault palette and the lab's own actions (see tests/fuzz.py).  Each run must end
within its step and CPU-time budget, raise nothing, and keep every check the
lab declares an invariant in that mode (`Lab.INVARIANTS`).

`PATTERN_LAB_FUZZ=N` runs N schedules per lab and mode (default 10);
`PATTERN_LAB_FUZZ_FROM=S` starts at seed S.  A failure prints the command that
reproduces it.
"""

from __future__ import annotations

import json
import os

import pytest

from simulations import labs
from simulations.kernel import Arg, Check, Lab, Node, Param, action, replay

from ..fuzz import mode_id, modes, run_schedule

N = int(os.environ.get("PATTERN_LAB_FUZZ", "10"))
FIRST = int(os.environ.get("PATTERN_LAB_FUZZ_FROM", "1"))

# Lab/mode pairs with known findings, being fixed in their labs (issue 7): one reproducer each.
KNOWN: dict[tuple[str, str], str] = {}


def cases():
    out = []
    for slug, lab_cls in labs().items():
        for mode in modes(lab_cls):
            known = KNOWN.get((slug, mode_id(mode)))
            marks = [pytest.mark.xfail(strict=False, reason=f"known finding: {known}")] if known else []
            out.append(pytest.param(slug, mode, id=f"{slug}[{mode_id(mode)}]", marks=marks))
    return out


@pytest.mark.parametrize("slug, mode", cases())
def test_fault_schedules_keep_the_invariants(slug, mode):
    failures = []
    for seed in range(FIRST, FIRST + N):
        outcome = run_schedule(slug, mode, seed)
        if outcome.problem:
            failures.append(f"seed {seed}: {outcome.problem}\n    reproduce: {outcome.schedule.command_line()}")
    assert not failures, f"{len(failures)} of {N} schedules failed:\n" + "\n".join(failures[:5])


@pytest.mark.parametrize("slug", sorted(labs()))
def test_a_schedule_replays_to_the_same_state(slug):
    """What the fuzzer ran is what its printed command runs: same commands, same times, same end."""
    mode = modes(labs()[slug])[0]
    for seed in (1, 2):
        outcome = run_schedule(slug, mode, seed)
        if outcome.problem:
            continue
        sched = outcome.schedule
        lab = replay(labs()[slug], sched.params, seed, sched.commands, float(sched.until))
        assert json.dumps(lab.snapshot()) == outcome.snapshot, sched.command_line()


@pytest.mark.parametrize("slug", sorted(labs()))
def test_invariants_name_real_checks_and_modes(slug):
    lab_cls = labs()[slug]
    lab = lab_cls(None, 1)
    values = {str(v) for p in lab_cls.PARAMS if p.choices for v in p.choices}
    flags = {p.name for p in lab_cls.PARAMS}
    assert lab_cls.INVARIANTS, f"{slug} declares no invariant"
    for name, conditions in lab_cls.INVARIANTS.items():
        assert name in lab.checks, f"{slug}: no check named {name}"
        for condition in conditions:
            for part in condition.split("+"):
                assert part == "*" or part in values or part.split("=")[0] in flags, f"{slug}: what is '{part}'?"


# -- the fuzzer itself must be able to fail ------------------------------------------------


class Flaky(Node):
    def on_message(self, msg):
        if self.lab.mode == "loops" and msg.type == "PING":
            while True:  # a protocol bug: never returns
                pass
        if self.lab.mode == "raises" and msg.type == "PING":
            raise KeyError(msg.id)


class Broken(Lab):
    slug = ""  # not a real lab
    INVARIANTS = {"never-paused": ("honest",)}
    PARAMS = (Param("mode", "honest", "", choices=("honest", "raises", "loops")),)

    def setup(self):
        self.mode = self.params["mode"]
        for name in ("a", "b"):
            self.add_node(Flaky(self, name))
        self.add_check("never-paused", "")

    @action("ping", Arg("from"), Arg("to"))
    def do_ping(self, src, dst):
        self.nodes[src].send(dst, "PING")

    def after_fault(self, fault, node_id):
        if fault == "pause":
            self.fail("never-paused", f"{node_id} was paused")


def first_problem(mode: str, wall: float = 10.0) -> str:
    for seed in range(1, 40):
        outcome = run_schedule("broken", {"mode": mode}, seed, lab_cls=Broken, wall_limit=wall)
        if outcome.problem:
            assert "python -m simulations run broken --seed" in outcome.schedule.command_line()
            return outcome.problem
    return ""


def test_the_fuzzer_reports_a_broken_invariant_an_exception_and_a_hang():
    assert isinstance(Broken(None, 1).checks["never-paused"], Check)
    assert first_problem("honest").startswith("check never-paused went red")
    assert first_problem("raises").startswith("raised KeyError")
    assert first_problem("loops", wall=0.3).startswith("hang")
