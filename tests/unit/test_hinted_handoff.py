"""Hinted handoff: stand-ins keep writes for a down replica and hand them off when it returns."""

import pytest

from ..simhelpers import check, events, run, step
from .labfuzz import fuzz

SLUG = "hinted-handoff"


def replica(lab, node, key):
    return lab.nodes[node].data.get(key, {"value": None, "version": 0})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stand_in_keeps_the_write_and_hands_it_off(seed):
    """The article's bank example: alice's balance is set to 100 while n3, one of her replicas, is down."""
    lab = run(SLUG, "500ms crash n3", "1s write alice 100", seed=seed, until="3.9s", rate=0)
    ok = events(lab, "write-ok")[0]
    assert ok["key"] == "alice" and "n3" not in ok["acks"].split(",")
    stored = events(lab, "hint-stored")
    assert [(e["node"], e["intended"]) for e in stored] == [("n4", "n3")]  # next node along the ring
    assert lab.nodes["n4"].data.get("alice") is None  # the hint is kept apart from n4's own data
    step(lab, "4s", "4s restart n3")
    assert replica(lab, "n3", "alice")["version"] == 0  # stale until the handoff
    step(lab, "7s")
    delivered = events(lab, "hint-delivered")
    assert delivered and delivered[0]["intended"] == "n3"
    assert delivered[0]["t"] - 4000 < 100  # handed off right after n3's HELLO
    assert replica(lab, "n3", "alice")["value"] == "100"
    assert lab.nodes["n4"].hints == []
    assert check(lab, "replicas-converge")["ok"] and check(lab, "writes-available")["ok"]


def test_expired_hint_leaves_the_replica_stale_until_read_repair():
    lab = run(SLUG, "500ms crash n3", "1s write alice 100", "5s restart n3", until="8s", rate=0, hint_ttl=2000)
    assert events(lab, "hint-expired") and not events(lab, "hint-delivered")
    assert replica(lab, "n3", "alice")["version"] == 0
    converge = check(lab, "replicas-converge")  # expected of an expired hint: not a broken handoff
    assert converge["ok"] and "1 left stale by an expired hint" in converge["detail"]
    assert lab.metrics["stale_after_expiry"] == 1
    step(lab, "9s", "8s read alice")
    repairs = events(lab, "read-repair")
    assert repairs and repairs[0]["node"] == "n3"
    assert replica(lab, "n3", "alice")["value"] == "100"
    assert check(lab, "replicas-converge")["ok"]  # repaired by the read


def test_expired_hint_repaired_by_anti_entropy():
    lab = run(SLUG, "500ms crash n3", "1s write alice 100", "5s restart n3", until="8s", rate=0, hint_ttl=2000)
    assert replica(lab, "n3", "alice")["version"] == 0
    step(lab, "9s", "8s anti-entropy")
    assert any(e["node"] == "n3" for e in events(lab, "repaired"))
    assert check(lab, "replicas-converge")["ok"]


def test_hint_ttl_action_changes_expiry_live():
    lab = run(SLUG, "500ms crash n3", "1s write alice 100", "1.5s hint-ttl 1s", "5s restart n3", until="8s",
              rate=0, hint_ttl=60000)
    assert events(lab, "hint-expired")
    assert replica(lab, "n3", "alice")["version"] == 0 and lab.metrics["stale_after_expiry"] == 1


def test_without_hints_the_returning_replica_stays_stale():
    lab = run(SLUG, "500ms crash n3", "1s write alice 100", "3s restart n3", until="6s", rate=0, quorum="strict")
    assert not events(lab, "hint-stored")
    assert events(lab, "write-ok")  # W = 2 preferred replicas were up
    assert replica(lab, "n3", "alice")["version"] == 0
    assert not check(lab, "replicas-converge")["ok"]


@pytest.mark.parametrize("quorum, available", [("sloppy", True), ("strict", False)])
def test_sloppy_quorum_keeps_writes_available(quorum, available):
    lab = run(SLUG, "500ms crash n2", "500ms crash n3", "1s write alice 100", until="3s", rate=0, quorum=quorum)
    assert bool(events(lab, "write-ok")) == available
    assert check(lab, "writes-available")["ok"] == available
    if available:
        assert sorted(e["intended"] for e in events(lab, "hint-stored")) == ["n2", "n3"]


def test_crashed_hint_holder_hands_off_after_its_own_restart():
    lab = run(SLUG, "500ms crash n3", "1s write alice 100", "2s crash n4", "3s restart n3", until="5s", rate=0)
    assert lab.nodes["n4"].hints  # the hint survived the crash: it is on n4's disk
    assert replica(lab, "n3", "alice")["version"] == 0
    assert check(lab, "replicas-converge")["ok"]  # not judged while its hint is still pending
    step(lab, "8s", "5s restart n4")
    assert replica(lab, "n3", "alice")["value"] == "100"
    assert check(lab, "replicas-converge")["ok"]


def test_background_traffic_converges_after_a_crash_and_restart():
    lab = run(SLUG, "1s crash n2", "6s restart n2", until="12s", rate=4, hint_ttl=30000)
    assert lab.metrics["hints_stored"] > 0
    assert lab.metrics["hints_delivered"] == lab.metrics["hints_stored"]
    assert check(lab, "replicas-converge")["ok"] and check(lab, "writes-available")["ok"]
    assert lab.metrics["writes_failed"] == 0


def test_bad_commands_are_rejected():
    lab = run(SLUG, until="100ms", rate=0)
    assert lab.command("hint-ttl", ["soon"]) is not None
    assert lab.command("write", ["alice"]) is not None
    for n in ("n1", "n2", "n3", "n4", "n5"):
        lab.command("crash", [n])
    assert "at least two" in lab.command("anti-entropy", [])


def test_any_live_node_coordinates_a_write_under_a_sloppy_quorum():
    # The issue's run: every preferred replica of alice is down, three nodes are up.
    crash_preferred = ("100 crash n1", "100 crash n2", "100 crash n3", "200 write alice 100")
    lab = run("hinted-handoff", *crash_preferred, seed=1, until="5s", rate=0, w=1)
    ok = events(lab, "write-ok")
    assert ok and ok[0]["coordinator"] in ("n4", "n5", "n6")
    assert len(events(lab, "hint-stored")) == 3
    assert check(lab, "writes-available")["ok"]
    # A strict quorum accepts only the preferred replicas: the same write fails, and the check says so.
    strict = run("hinted-handoff", *crash_preferred, seed=1, until="5s", rate=0, w=1, quorum="strict")
    assert not events(strict, "write-ok") and events(strict, "write-failed")
    assert not check(strict, "writes-available")["ok"]


@pytest.mark.parametrize("quorum", ["sloppy", "strict"])
def test_random_fault_schedules_finish_and_sloppy_writes_stay_available(quorum):
    hold = ("writes-available",) if quorum == "sloppy" else ()
    fuzz("hinted-handoff", {"quorum": quorum, "rate": 3}, seeds=range(1, 31), hold=hold)


def test_a_replica_stale_without_an_expired_hint_turns_replicas_converge_red():
    """The check judges the replicas, not the handoff code: a handoff that lost its hint (here the
    holder forgets it) leaves n3 stale with no expired hint to excuse it."""
    lab = run(SLUG, "500ms crash n3", "1s write alice 100", until="2s", rate=0)
    for node in lab.nodes.values():
        if getattr(node, "hints", None):
            node.hints.clear()  # a buggy holder drops its hints silently
    step(lab, "6s", "3s restart n3")
    assert replica(lab, "n3", "alice")["version"] == 0
    assert not check(lab, "replicas-converge")["ok"] and "n3" in check(lab, "replicas-converge")["detail"]


def test_with_nobody_left_to_stand_in_the_coordinator_keeps_the_hint_itself():
    lab = run(SLUG, "500ms partition client,n5|n1,n2,n3,n4,n6", "1s write u95406 v1", "4s heal", until="8s",
              rate=0, w=1)
    assert events(lab, "write-ok")
    kept = [e for e in events(lab, "hint-stored") if e["node"] == "n5"]
    assert {e["intended"] for e in kept} >= {"n6", "n1"}
    assert all(replica(lab, n, "u95406")["value"] == "v1" for n in ("n5", "n6", "n1"))
    assert check(lab, "replicas-converge")["ok"]


def test_a_suspect_written_in_person_after_all_hands_its_stand_in_to_the_replica_still_missing():
    """After a heal n3 still suspects n1 and n5. For bob it picks itself as a stand-in for n5, then
    writes n5 in person after all: the stand-in's hint must name n1, the replica nobody wrote."""
    lab = run(SLUG, "772ms partition n5|n6,n4,n1,n2|client,n3", "898ms anti-entropy", "957ms loss n2 client 1",
              "1996ms anti-entropy", "1996ms read 7", "1996ms hint-ttl 100", "1996ms anti-entropy", "5606ms heal",
              seed=18, until="6.1s", w=3, r=1, hint_ttl=55432)
    # (found by the fault fuzzer; the seed makes n3 coordinate bob's write at 6 s, as it did then)
    sends = [e for e in events(lab, "send") if e.get("key") == "bob" and e["t"] >= 6000]
    assert any(e["type"] == "PUT" and e["dst"] == "n3" for e in sends)
    assert any(e["type"] == "STORE" and e["src"] == "n3" and e["dst"] == "n5" and not e["intended"] for e in sends)
    hinted = {e["intended"] for e in events(lab, "hint-stored") if e["key"] == "bob"}
    assert "n1" in hinted and "n5" not in hinted
