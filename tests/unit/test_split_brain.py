"""Split brain: naive, generation numbers and quorum, as PATTERNS.md asks."""

import pytest

from pattern_lab.runs.layouts import LAYOUTS
from simulations.kernel import SimError

from ..simhelpers import check, events, nodes, run, step
from .labfuzz import fuzz

SPLIT = "1s partition n1,n2|n3,n4,n5"
WRITES_BOTH_SIDES = ("4s write n1 11", "4s write n3 22", "4.5s write n2 12")
HEAL = "5s heal"


def split_and_heal(mode, seed, until="10s"):
    return run("split-brain", SPLIT, *WRITES_BOTH_SIDES, HEAL, seed=seed, until=until, mode=mode)


def writes(lab):
    return {w["value"]: w for w in lab.snapshot()["writes"]}


def values(lab):
    return {n["value"] for n in nodes(lab).values() if n["status"] == "up"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_naive_two_leaders_accept_writes_and_heal_loses_one(seed):
    lab = run("split-brain", SPLIT, *WRITES_BOTH_SIDES, seed=seed, until="4.8s", mode="naive")
    # During the partition each side has its own leader and both acknowledge writes.
    sides = lab.snapshot()["sides"]
    assert [len(side["leaders"]) for side in sides] == [1, 1]
    assert lab.metrics["leaders_now"] == 2
    assert {w["client"] for w in writes(lab).values()} == {"ok"}
    assert len(values(lab)) == 2  # values diverge
    assert not check(lab, "single-writer")["ok"]

    step(lab, "10s", HEAL)
    assert lab.metrics["leaders_now"] == 1
    assert len(values(lab)) == 1  # everyone copies the surviving leader...
    lost = check(lab, "no-lost-write")
    assert not lost["ok"] and lost["seq"] is not None  # ...and an acknowledged write is gone
    broke = next(e for e in lab.log if e["seq"] == lost["seq"])
    assert broke["kind"] == "check" and broke["t"] >= 5000
    before = next(e for e in lab.log if e["seq"] == lost["seq"] - 1)
    assert before["kind"] == "write-lost"
    outcomes = {w["outcome"] for w in writes(lab).values()}
    assert outcomes == {"kept", "overwritten"}
    assert any(w["lost"] for w in writes(lab).values())
    assert lab.metrics["lost"] >= 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quorum_one_writer_and_no_acknowledged_write_lost(seed):
    lab = split_and_heal("quorum", seed)
    for name in ("single-writer", "stale-leader-fenced", "no-lost-write"):
        assert check(lab, name)["ok"], check(lab, name)
    w = writes(lab)
    assert w[22]["client"] == "ok" and w[22]["outcome"] == "kept"  # the majority side works
    for minority in (11, 12):  # the minority side cannot elect a leader nor commit
        assert w[minority]["client"] in ("rejected", "failed")
        assert w[minority]["outcome"] in ("rejected", "overwritten")
    assert values(lab) == {22}
    assert lab.metrics["most_leaders"] == 1
    # Pre-vote: the cut-off minority never bumped its generation.
    assert {n["generation"] for n in nodes(lab).values()} == {1}


def test_quorum_minority_leader_steps_down_and_majority_elects_a_higher_generation():
    lab = run("split-brain", "1s partition n5|n1,n2,n3,n4", "4s write n5 5", "4s write n1 1", "6s heal",
              until="9s", mode="quorum")
    step_downs = [e for e in events(lab, "step-down") if e["node"] == "n5"]
    assert step_downs and step_downs[0]["why"] == "cannot hear a majority"
    leader = next(n for n in nodes(lab).values() if n["role"] == "leader")
    assert leader["id"] != "n5" and leader["generation"] == 2
    w = writes(lab)
    assert w[5]["client"] == "rejected" and w[1]["client"] == "ok"
    assert values(lab) == {1}
    assert all(c["ok"] for c in lab.snapshot()["checks"])


@pytest.mark.parametrize("seed", [1, 2])
def test_generation_rejects_the_stale_leader_which_steps_down(seed):
    # A long pause (think GC) makes n5 a stale leader: the others move on to generation 2.  A write
    # that reached n5 during the pause is handled first when it resumes, still as generation 1.
    lab = run("split-brain", "1s pause n5", "2s write n5 7", "4s resume n5", "4.5s write n1 3", seed=seed, until="7s",
              mode="generation")
    rejects = [e for e in events(lab, "reject") if e["src"] == "n5"]
    assert rejects and all(e["gen"] == 1 and e["mine"] == 2 for e in rejects)
    assert any(e["node"] == "n5" for e in events(lab, "step-down"))
    fenced = check(lab, "stale-leader-fenced")
    assert fenced["ok"] and "n5" in fenced["detail"]
    assert nodes(lab)["n5"]["role"] == "follower" and nodes(lab)["n5"]["generation"] == 2
    assert check(lab, "single-writer")["ok"]
    assert values(lab) == {3}


def test_naive_follows_the_stale_leader_back():
    lab = run("split-brain", "1s pause n5", "4s resume n5", until="6s", mode="naive")
    assert not check(lab, "stale-leader-fenced")["ok"]
    assert nodes(lab)["n5"]["role"] == "leader"  # the old leader wins by id, not by generation


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generation_fences_on_heal_but_without_quorum_writes_are_overwritten(seed):
    lab = split_and_heal("generation", seed)
    assert check(lab, "single-writer")["ok"]  # two leaders, but in different generations
    assert check(lab, "stale-leader-fenced")["ok"]
    n5 = [e for e in events(lab, "step-down") if e["node"] == "n5"]
    assert n5 and n5[0]["t"] >= 5000 and n5[0]["gen"] == 2
    # The higher generation wins: the majority side's acknowledged write is overwritten.
    assert writes(lab)[22]["outcome"] == "overwritten" and writes(lab)[22]["client"] == "ok"
    assert not check(lab, "no-lost-write")["ok"]
    assert values(lab) == {12}


def test_generation_is_persisted_across_a_crash():
    lab = run("split-brain", "1s crash n5", until="5s", mode="generation")
    leader = next(n for n in nodes(lab).values() if n["role"] == "leader")
    assert leader["generation"] == 2
    step(lab, "12s", f"5s crash {leader['id']}", f"8s restart {leader['id']}", "8s restart n5")
    assert nodes(lab)[leader["id"]]["generation"] >= 2  # from its disk, never back to 1
    new_leaders = [n for n in nodes(lab).values() if n["role"] == "leader"]
    assert len(new_leaders) == 1 and new_leaders[0]["generation"] == 3
    assert {n["generation"] for n in nodes(lab).values()} == {3}


@pytest.mark.parametrize("mode", ["naive", "generation", "quorum"])
def test_leader_crash_fails_over_and_writes_go_on(mode):
    lab = run("split-brain", "1s write n1 1", "1.5s crash n5", "5s write n2 2", "6s restart n5", "7s write n5 3",
              until="9s", mode=mode)
    assert values(lab) == {3}
    assert {w["client"] for w in writes(lab).values()} == {"ok"}
    assert all(c["ok"] for c in lab.snapshot()["checks"])
    assert lab.metrics["leaders_now"] == 1


def test_write_log_and_views():
    lab = run("split-brain", SPLIT, "4s write n1 11", until="4.5s", mode="naive")
    snap = lab.snapshot()
    assert [r["name"] for r in snap["racks"]] == ["rack A", "rack B"]
    assert snap["racks"][1]["leaders"] == [{"id": "n5", "gen": None}]
    row = snap["writes"][0]
    assert row["id"] == "w1" and row["node"] == "n1" and row["outcome"] == "kept"
    assert set(LAYOUTS["split-brain"](snap)) == set(lab.nodes)
    assert all(len(n["label"]) <= 24 for n in snap["nodes"])


def test_bad_writes_are_refused_without_changes():
    lab = run("split-brain", "1s crash n2", until="2s")
    with pytest.raises(SimError, match="down"):
        lab.apply("write", ["n2", "4"])
    with pytest.raises(SimError, match="between 0 and 9999"):
        lab.apply("write", ["n1", "-3"])
    assert lab.metrics["writes"] == 0


@pytest.mark.parametrize("mode", ["naive", "generation", "quorum"])
def test_duplicated_forward_applies_once_and_never_hangs(mode):
    # The network delivers n2's FORWARD to the leader n5 twice: the write id
    # is recognised, the second copy is answered but not applied again.
    lab = run("split-brain", "1s duplicate-next n2 n5", "1s write n2 5", seed=1, until="3s", mode=mode)
    leader_applies = [e for e in events(lab, "apply") if e["node"] == "n5" and e["wid"] == 1]
    assert len(leader_applies) == 1
    assert [e["wid"] for e in events(lab, "duplicate")] == [1]
    assert writes(lab)[5]["client"] == "ok"
    assert {n["value"] for n in nodes(lab).values()} == {5}
    for name in ("single-writer", "stale-leader-fenced", "no-lost-write"):
        assert check(lab, name)["ok"]


@pytest.mark.parametrize("mode", ["naive", "quorum"])
def test_duplicates_among_faults_finish_and_keep_the_quorum_checks(mode):
    # Schedules the random fault loop once found hanging (a write applied twice
    # became its own predecessor); they must end, and quorum must stay safe.
    schedules = {
        "naive": ["30 pause n2", "130 resume n2", "1630 write n5 197", "3130 write n3 8", "4530 write n3 116",
                  "4531 duplicate-next n3 n5", "5231 write n3 134", "5331 heal", "5431 write n1 107",
                  "5568 crash n3", "5668 restart n3", "6733 duplicate-next n2 n3", "7443 write n2 108"],
        "quorum": ["5 write n3 199", "6 write n5 131", "1007 duplicate-next n1 n4", "1707 write n3 85",
                   "3308 delay n5 n1 200", "3608 write n3 36", "5611 duplicate-next n3 n5", "5641 write n3 26",
                   "5646 write n5 54", "5747 write n2 163"],
    }
    lab = run("split-brain", *schedules[mode], seed=130 if mode == "naive" else 207, until="20s", mode=mode)
    applied = {}
    for e in events(lab, "apply"):
        if e["why"] == "write":
            applied[e["wid"]] = applied.get(e["wid"], 0) + 1
    assert all(count == 1 for count in applied.values()), applied
    if mode == "quorum":
        for name in ("single-writer", "stale-leader-fenced", "no-lost-write"):
            assert check(lab, name)["ok"]


@pytest.mark.parametrize("mode", ["naive", "generation", "quorum"])
def test_random_fault_schedules_finish_and_quorum_keeps_its_promises(mode):
    hold = ("single-writer", "stale-leader-fenced", "no-lost-write") if mode == "quorum" else ()
    fuzz("split-brain", {"mode": mode}, seeds=range(1, 31), hold=hold)
