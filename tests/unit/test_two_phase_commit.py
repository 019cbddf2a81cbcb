"""Two-phase commit: blocking, recovery from the logs and atomicity in every fault case of PATTERNS.md."""

import pytest

from simulations.kernel import SimError

from ..simhelpers import check, events, run, step

PARTS = ("inventory", "payment", "shipping")
INITIAL = {"inventory": 20, "payment": 300, "shipping": 10}
AFTER_ONE = {"inventory": 19, "payment": 270, "shipping": 9}


def tx(lab, tx_id):
    return next(t for t in lab.snapshot()["transactions"] if t["id"] == tx_id)


def states(lab, tx_id):
    return {p["p"]: p["state"] for p in tx(lab, tx_id)["parts"]}


def participants(lab):
    return {p["id"]: p for p in lab.snapshot()["participants"]}


def values(lab):
    return {p: v["value"] for p, v in participants(lab).items()}


def all_checks_ok(lab):
    return {c["name"]: c["ok"] for c in lab.snapshot()["checks"]} == {
        "atomicity": True, "yes-voter-waits": True, "coordinator-recovers": True, "timeout-aborts": True}


def test_happy_path_commits_everywhere_and_prepares_in_parallel():
    lab = run("two-phase-commit", "1s begin", until="3s")
    assert tx(lab, "T1")["phase"] == "committed"
    assert set(states(lab, "T1").values()) == {"committed"}
    assert values(lab) == AFTER_ONE
    assert all(p["lock"] is None for p in participants(lab).values())
    prepares = [e for e in events(lab, "send") if e["type"] == "PREPARE"]
    assert len(prepares) == 3 and len({e["t"] for e in prepares}) == 1  # all sent at the same instant
    assert all_checks_ok(lab)


@pytest.mark.parametrize("when, second", [("next", "committed"), ("always", "aborted")])
def test_a_no_vote_aborts_everyone(when, second):
    lab = run("two-phase-commit", f"500ms vote-no payment {when}", "1s begin", "3s begin", until="5s")
    assert tx(lab, "T1")["phase"] == "aborted" and tx(lab, "T1")["decision"] == "abort"
    assert set(states(lab, "T1").values()) == {"aborted"}
    assert tx(lab, "T2")["phase"] == second
    assert all_checks_ok(lab)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_timeout_before_the_vote_aborts(seed):
    lab = run("two-phase-commit", "500ms crash-participant payment before-vote", "1s begin", "5s restart payment",
              seed=seed, until="8s")
    t1 = tx(lab, "T1")
    assert t1["decision"] == "abort" and "timeout: no vote from payment" in t1["why"]
    decided = next(e for e in events(lab, "log") if e["node"] == "coordinator" and e["rec"] == "abort")
    assert 2500 <= decided["t"] <= 2600  # begin at 1s + the 1500 ms vote timeout
    assert set(states(lab, "T1").values()) == {"aborted"} and t1["phase"] == "aborted"
    assert values(lab) == INITIAL
    timeout = check(lab, "timeout-aborts")
    assert timeout["ok"] and "no vote from payment" in timeout["detail"]
    assert all_checks_ok(lab)


def test_participant_crashing_after_its_yes_recovers_in_doubt_and_commits():
    lab = run("two-phase-commit", "500ms crash-participant payment after-vote", "1s begin", until="4s")
    assert tx(lab, "T1")["decision"] == "commit"  # its YES left before the crash
    assert states(lab, "T1")["payment"] == "down"  # it does not know yet
    step(lab, "8s", "5s restart payment")
    assert any(e["node"] == "payment" and e["why"] == "recovered from the log" for e in events(lab, "in-doubt"))
    assert set(states(lab, "T1").values()) == {"committed"} and values(lab) == AFTER_ONE
    assert all_checks_ok(lab)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_yes_voters_keep_their_locks_in_doubt_while_the_coordinator_is_down(seed):
    lab = run("two-phase-commit", "500ms crash-coordinator after-prepare", "1s begin", seed=seed, until="9s")
    assert lab.nodes["coordinator"].status == "down"
    parts = participants(lab)
    for p in PARTS:  # eight seconds later, still blocked
        assert parts[p]["in_doubt"] == ["T1"] and parts[p]["lock"] == "T1"
    assert set(states(lab, "T1").values()) == {"in doubt"}
    assert tx(lab, "T1")["blocked"] == ["coordinator down, participants in doubt"]
    assert lab.metrics["longest_doubt_ms"] >= 7500
    assert check(lab, "yes-voter-waits")["ok"]
    asked = [e for e in events(lab, "drop") if e["type"] == "STATUS?"]
    assert len(asked) >= 3 * 6  # they keep asking
    # A participant that crashes and restarts meanwhile takes its lock again from its log.
    step(lab, "10s", "9s crash payment", "9.5s restart payment")
    assert participants(lab)["payment"]["lock"] == "T1"
    with pytest.raises(SimError, match="coordinator is down"):
        lab.apply("begin", [])
    # The restarted coordinator finds BEGIN without a decision: presumed abort.
    step(lab, "13s", "10s restart coordinator")
    assert set(states(lab, "T1").values()) == {"aborted"} and tx(lab, "T1")["phase"] == "aborted"
    assert all(p["lock"] is None for p in participants(lab).values())
    recovers = check(lab, "coordinator-recovers")
    assert recovers["ok"] and "T1 (abort)" in recovers["detail"]
    assert all_checks_ok(lab)


@pytest.mark.parametrize("point", ["after-decision", "mid-commit"])
def test_restarted_coordinator_finishes_the_commit_from_its_log(point):
    lab = run("two-phase-commit", f"500ms crash-coordinator {point}", "1s begin", until="6s")
    assert tx(lab, "T1")["decision"] == "commit"
    before = states(lab, "T1")
    if point == "mid-commit":
        assert list(before.values()).count("committed") == 1 and list(before.values()).count("in doubt") == 2
    else:
        assert set(before.values()) == {"in doubt"}
    assert check(lab, "atomicity")["ok"]  # in doubt is not aborted: still atomic
    step(lab, "10s", "6s restart coordinator")
    assert any(e["found"] == "commit" and e["action"] == "resend" for e in events(lab, "recover"))
    assert set(states(lab, "T1").values()) == {"committed"} and tx(lab, "T1")["phase"] == "committed"
    assert values(lab) == AFTER_ONE
    assert all_checks_ok(lab)


FAULT_CASES = [
    ("vote-no", ["500ms vote-no shipping next"]),
    ("participant before vote", ["500ms crash-participant inventory before-vote", "4s restart inventory"]),
    ("participant after vote", ["500ms crash-participant shipping after-vote", "4s restart shipping"]),
    ("coordinator after prepare", ["500ms crash-coordinator after-prepare", "4s restart coordinator"]),
    ("coordinator after decision", ["500ms crash-coordinator after-decision", "4s restart coordinator"]),
    ("coordinator mid-commit", ["500ms crash-coordinator mid-commit", "4s restart coordinator"]),
    ("slow link", ["500ms delay coordinator payment 2s"]),
    ("lost decision", ["500ms drop-next coordinator inventory", "500ms drop-next coordinator shipping"]),
    ("partition", ["1005ms partition coordinator|inventory,payment,shipping", "4s heal"]),
]


@pytest.mark.parametrize("name, faults", FAULT_CASES, ids=[c[0] for c in FAULT_CASES])
@pytest.mark.parametrize("seed", [1, 2])
def test_atomicity_holds_in_every_fault_case(name, faults, seed):
    lab = run("two-phase-commit", *faults, "1s begin", "1.2s begin", "8s begin", seed=seed, until="14s")
    for t in lab.snapshot()["transactions"]:
        outcome = set(states(lab, t["id"]).values())
        assert outcome in ({"committed"}, {"aborted"}), (t["id"], outcome)
        assert t["phase"] == ("committed" if outcome == {"committed"} else "aborted")
    committed = sum(1 for t in lab.snapshot()["transactions"] if t["phase"] == "committed")
    assert values(lab) == {p: INITIAL[p] + committed * (AFTER_ONE[p] - INITIAL[p]) for p in PARTS}
    assert all(p["lock"] is None and not p["in_doubt"] for p in participants(lab).values())
    assert all_checks_ok(lab)


def test_a_lock_held_in_doubt_blocks_the_next_transaction():
    # payment's YES takes 3 s to arrive: it sits in doubt on T1, holding its lock.
    lab = run("two-phase-commit", "500ms delay payment coordinator 3s", "1s begin", "1.5s begin", until="2s")
    assert "payment waits for lock held by T1" in tx(lab, "T2")["blocked"]
    assert states(lab, "T2")["payment"] == "waiting"
    assert participants(lab)["payment"]["lock"] == "T1" and participants(lab)["payment"]["in_doubt"] == ["T1"]
    step(lab, "8s")
    assert "timeout: no vote from payment" in tx(lab, "T1")["why"]
    assert tx(lab, "T1")["phase"] == "aborted" and tx(lab, "T2")["phase"] == "aborted"
    step(lab, "10s", "8s heal", "8.5s begin")
    assert tx(lab, "T3")["phase"] == "committed"
    assert all_checks_ok(lab)


def test_heuristic_mode_decides_alone_and_breaks_atomicity():
    lab = run("two-phase-commit", "500ms crash-coordinator mid-commit", "1s begin", "9s restart coordinator",
              until="12s", mode="heuristic")
    atomic, waits = check(lab, "atomicity"), check(lab, "yes-voter-waits")
    assert not atomic["ok"] and not waits["ok"]
    broke = next(e for e in lab.log if e["seq"] == atomic["seq"])
    assert broke["kind"] == "check" and broke["t"] >= 1000 + 3000  # after heuristic_after in doubt
    assert set(states(lab, "T1").values()) == {"committed", "aborted"}
    assert tx(lab, "T1")["phase"] == "half-done"
    # The same run in standard mode stays atomic.
    assert all_checks_ok(run("two-phase-commit", "500ms crash-coordinator mid-commit", "1s begin",
                             "9s restart coordinator", until="12s", mode="standard"))


def test_recovery_check_catches_a_coordinator_that_ignores_its_log():
    lab = run("two-phase-commit", "500ms crash-coordinator after-prepare", "1s begin", until="3s")
    lab.nodes["coordinator"].recover = lambda: None  # a buggy coordinator: no recovery
    step(lab, "12s", "4s restart coordinator")
    recovers = check(lab, "coordinator-recovers")
    assert not recovers["ok"] and "T1" in recovers["detail"]
    assert set(states(lab, "T1").values()) == {"in doubt"}


def test_timeout_check_catches_a_coordinator_that_commits_without_every_vote():
    lab = run("two-phase-commit", "500ms crash-participant payment before-vote", until="900ms")
    coord = lab.nodes["coordinator"]
    coord.decide = (lambda orig: lambda t, d, why: orig(t, "commit", why))(coord.decide)  # buggy: always commit
    step(lab, "4s", "1s begin")
    assert not check(lab, "timeout-aborts")["ok"]


def test_bad_commands_are_refused():
    lab = run("two-phase-commit", until="1s")
    with pytest.raises(SimError, match="participant"):
        lab.apply("vote-no", ["coordinator", "next"])
    with pytest.raises(SimError, match="before-vote"):
        lab.apply("crash-participant", ["payment", "sometime"])
    assert lab.metrics["transactions"] == 0


# -- issue 7: timeout-aborts goes red for a flawed coordinator; presumed abort ----------


@pytest.mark.parametrize("presume", ["nothing", "abort"])
def test_without_a_vote_timeout_a_missing_vote_blocks_and_timeout_aborts_goes_red(presume):
    do = ("100 crash-participant payment before-vote", "200 begin", "3s restart payment", "4s begin")
    lab = run("two-phase-commit", *do, until="8s", mode="no-vote-timeout", presume=presume)
    broken = check(lab, "timeout-aborts")
    assert not broken["ok"] and "T1: no vote from payment" in broken["detail"]
    assert states(lab, "T1")["inventory"] == "in doubt"  # the YES voters keep their locks
    fine = run("two-phase-commit", *do, until="8s", presume=presume)
    assert all_checks_ok(fine) and states(fine, "T2") == {p: "committed" for p in ("inventory", "payment",
                                                                                   "shipping")}


def test_presumed_abort_writes_no_abort_record_and_waits_for_no_ack():
    do = ("100 vote-no payment next", "200 begin", "2s begin")
    basic = run("two-phase-commit", *do, until="4s")
    pra = run("two-phase-commit", *do, until="4s", presume="abort")
    recs = [(r["tx"], r["rec"]) for r in pra.nodes["coordinator"].disk["log"]]
    assert recs == [("T2", "commit"), ("T2", "end")]  # no BEGIN, no abort record for T1
    assert ("T1", "abort") in [(r["tx"], r["rec"]) for r in basic.nodes["coordinator"].disk["log"]]
    acks = [e for e in pra.log if e["kind"] == "send" and e["type"] == "ACK" and e["tx"] == "T1"]
    assert acks == []
    assert pra.metrics["log_writes"] < basic.metrics["log_writes"]
    assert pra.net.sent < basic.net.sent
    for lab in (basic, pra):
        assert all_checks_ok(lab) and set(states(lab, "T1").values()) == {"aborted"}


def test_presumed_abort_a_coordinator_with_no_record_answers_abort_to_the_in_doubt():
    lab = run("two-phase-commit", "500ms crash-coordinator after-prepare", "1s begin", "4s restart coordinator",
              until="9s", presume="abort")
    assert lab.nodes["coordinator"].disk["log"] == []  # it never wrote anything about T1
    assert set(states(lab, "T1").values()) == {"aborted"}  # each asked, and no record means abort
    assert all_checks_ok(lab)


@pytest.mark.parametrize("presume", ["nothing", "abort"])
def test_a_vote_timer_held_while_the_coordinator_was_paused_does_not_decide_twice(presume):
    lab = run("two-phase-commit", "50 vote-no payment next", "100 begin", "101 pause coordinator",
              "2s resume coordinator", until="4s", presume=presume)
    decisions = [e for e in lab.log if e["kind"] == "phase" and e["tx"] == "T1" and e["phase"] == "aborting"]
    assert len(decisions) == 1
    assert all_checks_ok(lab)
