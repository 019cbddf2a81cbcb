"""CQRS: a write side with an event log, a projector, read models; PATTERNS.md's checks."""

import pytest

from pattern_lab.runs.layouts import LAYOUTS
from simulations.cqrs import project
from simulations.kernel import SimError

from ..simhelpers import check, events, run, step

QUIET = {"commands": 0, "queries": 0}  # only the test's own commands and queries


def replicas(lab):
    return {r["id"]: r for r in lab.snapshot()["replicas"]}


def balances(model):
    return {a: row["balance"] for a, row in model.items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_read_models_converge_on_the_projection_of_the_log(seed):
    lab = run("cqrs", seed=seed, until="20s")  # random deposits, withdrawals and queries
    snap = lab.snapshot()
    assert snap["metrics"]["commands"] >= 10 and snap["metrics"]["reads"] >= 20
    truth = project(lab.write.log)
    assert balances(truth) == snap["accounts"]  # the projection of the log is the write model
    caught_up = [r for r in snap["replicas"] if r["behind"] == 0]
    assert caught_up and all(r["model"] == truth for r in caught_up)
    assert check(lab, "read-models-converge")["ok"]


def test_paused_projector_makes_reads_stale_and_lag_grow_then_catches_up():
    lab = run("cqrs", "1s pause projector", "1500ms deposit alice 50", "1600ms deposit bob 20",
              "2s query alice read1", until="3s", **QUIET)
    assert lab.snapshot()["lag"] == {"read1": 2, "read2": 2}
    read = events(lab, "read")[-1]
    assert read["stale"] and read["balance"] == 100 and read["truth"] == 150
    step(lab, "5s", "3s resume projector", "4s query alice read2")
    assert lab.snapshot()["lag"] == {"read1": 0, "read2": 0}
    assert not events(lab, "read")[-1]["stale"] and events(lab, "read")[-1]["balance"] == 150
    assert all(balances(r["model"]) == {"alice": 150, "bob": 120, "carol": 100} for r in replicas(lab).values())
    assert lab.snapshot()["metrics"]["stale_reads"] == 1
    assert check(lab, "read-models-converge")["ok"]


def test_slow_projector_lags_more_than_a_fast_one():
    fast = run("cqrs", *[f"{i * 100}ms deposit carol 1" for i in range(1, 20)], until="2050ms", **QUIET)
    slow = run("cqrs", "0 slow projector 400", *[f"{i * 100}ms deposit carol 1" for i in range(1, 20)],
               until="2050ms", **QUIET)
    assert max(slow.snapshot()["lag"].values()) > max(fast.snapshot()["lag"].values())


# -- a rejected command never reaches the read side ------------------------------------------


def test_overdraft_is_rejected_and_never_read():
    lab = run("cqrs", "1s withdraw alice 500", "2s query alice read1", "2s query alice read2", until="4s", **QUIET)
    assert events(lab, "rejected-command") and events(lab, "answer")[-1]["status"] == "rejected"
    assert [e["balance"] for e in events(lab, "read")] == [100, 100]
    assert all("c1" not in lab.nodes[r].disk["applied"] for r in ("read1", "read2"))
    assert check(lab, "rejected-never-read")["ok"]


def test_dual_write_leaks_the_rejected_overdraft_to_the_read_side():
    lab = run("cqrs", "1s withdraw alice 500", "2s query alice read1", until="4s", mode="dual-write", **QUIET)
    assert events(lab, "answer")[-1]["status"] == "rejected"
    assert events(lab, "read")[-1]["balance"] == -400  # the read side shows money that never left
    assert not check(lab, "rejected-never-read")["ok"]
    assert not check(lab, "read-models-converge")["ok"]
    assert lab.snapshot()["accounts"]["alice"] == 100


def test_dual_write_never_makes_up_for_a_lost_update():
    lab = run("cqrs", "1s drop-next write read2", "1s deposit bob 30", until="5s", mode="dual-write", **QUIET)
    assert balances(lab.nodes["read2"].model)["bob"] == 100 and lab.snapshot()["accounts"]["bob"] == 130
    assert not check(lab, "read-models-converge")["ok"]


def test_projector_makes_up_for_a_lost_update():
    lab = run("cqrs", "1s drop-next projector read2", "1s deposit bob 30", until="4s", **QUIET)
    assert [e for e in lab.log if e["kind"] == "drop" and e["reason"] == "dropped"]
    assert balances(lab.nodes["read2"].model)["bob"] == 130
    assert check(lab, "read-models-converge")["ok"]


# -- idempotent read models ----------------------------------------------------------------------


@pytest.mark.parametrize("idempotent", ["on", "off"])
def test_duplicated_update_is_harmless_only_when_read_models_are_idempotent(idempotent):
    lab = run("cqrs", "1s duplicate-next projector read1", "1s deposit bob 30", until="4s", idempotent=idempotent,
              **QUIET)
    assert [e for e in lab.log if e["kind"] == "send" and e.get("copy")]
    bob = balances(lab.nodes["read1"].model)["bob"]
    if idempotent == "on":
        assert bob == 130 and check(lab, "read-models-converge")["ok"]
    else:
        assert bob == 160 and not check(lab, "read-models-converge")["ok"]


# -- rebuilding a read model from the log ---------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rebuild_from_the_log_gives_the_identical_read_model(seed):
    lab = run("cqrs", "8s rebuild read1", seed=seed, until="12s")
    rebuilt = events(lab, "rebuilt")
    assert rebuilt and rebuilt[0]["identical"] and rebuilt[0]["position"] >= 3
    assert check(lab, "rebuild-identical")["ok"]
    assert lab.snapshot()["metrics"]["rebuilds"] == 1


def test_rebuild_survives_a_projector_outage():
    lab = run("cqrs", "1s deposit carol 5", "2s crash projector", "2500ms rebuild read2", "4s restart projector",
              until="9s", **QUIET)
    assert events(lab, "rebuilt") and check(lab, "rebuild-identical")["ok"]
    assert replicas(lab)["read2"]["behind"] == 0 and not replicas(lab)["read2"]["rebuilding"]


# -- read replicas: crash, add ---------------------------------------------------------------------


def test_crashed_read_replica_catches_up_from_its_position_after_restart():
    lab = run("cqrs", "1s crash read2", "1500ms deposit alice 10", "2s deposit alice 10", "2500ms query alice",
              "3s query alice", until="4s", **QUIET)
    assert [e["replica"] for e in events(lab, "read")] == ["read1", "read1"]  # the balancer skips the dead one
    assert replicas(lab)["read2"]["behind"] == 2
    step(lab, "6s", "5s restart read2")
    assert replicas(lab)["read2"]["behind"] == 0 and replicas(lab)["read2"]["matches"]


def test_added_replica_fills_up_from_the_event_log():
    lab = run("cqrs", "1s deposit bob 1", "2s add-replica", "2s add-replica", until="4s", **QUIET)
    reps = replicas(lab)
    assert list(reps) == ["read1", "read2", "read3", "read4"]
    assert all(r["matches"] and r["behind"] == 0 for r in reps.values())
    snap = lab.snapshot()
    assert "read4" in LAYOUTS["cqrs"](snap) and ["projector", "read4"] in snap["edges"]  # drawn, and fed


def test_actions_validate_before_changing_anything():
    lab = run("cqrs", until="500ms", **QUIET)
    for name, args in [("rebuild", ["read9"]), ("query", ["alice", "write"]), ("withdraw", ["dave", "5"]),
                       ("deposit", ["alice", "0"]), ("crash", ["client"])]:
        with pytest.raises(SimError):
            lab.apply(name, args)
    for _ in range(3):
        lab.apply("add-replica", [])
    with pytest.raises(SimError, match="at most"):
        lab.apply("add-replica", [])
    dual = run("cqrs", until="500ms", mode="dual-write", **QUIET)
    with pytest.raises(SimError, match="rebuild"):
        dual.apply("rebuild", ["read1"])
    assert "projector" not in dual.nodes


def test_a_rebuild_that_repairs_a_corrupted_read_model_is_not_blamed():
    # Issue 7, point 17: a duplicated UPDATE without idempotence double-applies a deposit;
    # the rebuild replays the log and gives the right model, which differs from the broken one.
    lab = run("cqrs", "1s duplicate-next projector read1", "1.1s deposit alice 50", "3s rebuild read1", until="8s",
              idempotent="false")
    assert not check(lab, "read-models-converge")["ok"]  # the damage before the rebuild was caught
    rebuilt = events(lab, "rebuilt")[0]
    assert rebuilt["identical"] is False and rebuilt["correct"] is True
    ok = check(lab, "rebuild-identical")
    assert ok["ok"] and "repaired" in ok["detail"]


def test_a_rebuild_that_double_applies_a_replayed_batch_goes_red():
    lab = run("cqrs", "4s rebuild read1", "4s duplicate-next projector read1", until="9s", idempotent="false",
              commands=10)
    assert not check(lab, "rebuild-identical")["ok"]
    same = run("cqrs", "4s rebuild read1", "4s duplicate-next projector read1", until="9s", commands=10)
    assert check(same, "rebuild-identical")["ok"]  # idempotent read models skip the repeated batch
