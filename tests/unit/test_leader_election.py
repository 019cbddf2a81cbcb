"""Leader election: bully and ring, as PATTERNS.md asks."""

import pytest

from ..simhelpers import check, events, nodes, run, step


@pytest.mark.parametrize("algorithm", ["bully", "ring"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_leader_crash_elects_the_highest_live_id(algorithm, seed):
    lab = run("leader-election", "1s crash n5", seed=seed, until="10s", algorithm=algorithm, nodes=5)
    live = {i: n for i, n in nodes(lab).items() if n["status"] == "up"}
    assert {n["leader"] for n in live.values()} == {"n4"}
    assert live["n4"]["role"] == "leader"
    assert check(lab, "agreement")["ok"] and check(lab, "highest-leads")["ok"]
    assert lab.snapshot()["metrics"]["messages"] > 0


@pytest.mark.parametrize("algorithm", ["bully", "ring"])
def test_restarted_higher_id_takes_over(algorithm):
    lab = run("leader-election", "1s crash n5", "5s restart n5", until="10s", algorithm=algorithm)
    assert {n["leader"] for n in nodes(lab).values()} == {"n5"}
    assert nodes(lab)["n5"]["role"] == "leader"


def test_message_counts_bully_quadratic_ring_linear_acks_included():
    """The lowest node noticing first is bully's worst case; the ring stays near 2n hops (4n messages)."""
    n = 9
    bully = run("leader-election", "1s crash n9", "1s elect n1", until="8s", algorithm="bully", nodes=n)
    ring = run("leader-election", "1s crash n9", "1s elect n1", until="8s", algorithm="ring", nodes=n)
    bully_msgs = bully.snapshot()["elections"][-1]["messages"]
    ring_msgs = ring.snapshot()["elections"][-1]["messages"]
    assert bully_msgs > ring_msgs
    assert bully_msgs >= (n - 2) * 3  # many ELECTION/OK pairs
    # About 2n token hops (one round to collect ids, one to announce), each acknowledged.
    assert 4 * (n - 1) <= ring_msgs <= 5 * n
    assert ring.snapshot()["metrics"]["acks"] >= 2 * (n - 2)


def test_partition_then_heal_converges_on_one_leader():
    lab = run("leader-election", "500ms partition n1,n2|n3,n4,n5", until="5s", algorithm="bully")
    sides = nodes(lab)
    assert sides["n2"]["leader"] == "n2" and sides["n5"]["leader"] == "n5"  # each side has a leader
    step(lab, "12s", "5s heal")
    assert {n["leader"] for n in nodes(lab).values()} == {"n5"}
    assert check(lab, "agreement")["ok"]


def test_election_is_recorded_with_its_cost():
    lab = run("leader-election", "1s crash n5", until="6s")
    elected = events(lab, "elected")
    assert elected and elected[-1]["leader"] == "n4" and elected[-1]["messages"] > 0


def test_agreement_check_catches_a_node_that_ignores_the_protocol():
    """A buggy node that never listens keeps a stale belief: the live check must say so."""
    lab = run("leader-election", until="1s")
    lab.nodes["n1"].leader = "n2"
    lab.nodes["n1"].on_message = lambda msg: None
    lab.nodes["n1"].cancel("suspect")
    lab.run_until(5000)
    assert not check(lab, "agreement")["ok"]
    assert check(lab, "agreement")["seq"] is not None


# -- the ring's defects of issue 7 (each test named after what it proves) ---------------------

def ring(*do, seed=7, nodes=5, until="15s"):
    return run("leader-election", *do, seed=seed, until=until, algorithm="ring", nodes=nodes)


def agreed_leader(lab):
    live = [n for n in nodes(lab).values() if n["status"] == "up"]
    beliefs = {n["leader"] for n in live}
    leaders = [n["id"] for n in live if n["role"] == "leader"]
    return beliefs.pop() if len(beliefs) == 1 and leaders == list({*leaders}) and len(leaders) == 1 else None


def elected_at(lab):
    return events(lab, "elected")[-1]["t"]


@pytest.mark.parametrize("seed", [1, 7])
def test_ring_token_orphaned_by_a_crashed_starter_is_dropped_and_a_new_election_finishes(seed):
    # n3 starts an election and crashes while its token is on its way round.
    lab = ring("1s crash n9", "1.001s elect n3", "1.03s crash n3", nodes=9, until="60s", seed=seed)
    assert events(lab, "token-dropped")
    assert agreed_leader(lab) == "n8" and elected_at(lab) < 4000
    assert lab.snapshot()["metrics"]["messages"] < 200  # was 2,044 and counting
    assert all(c["ok"] for c in lab.snapshot()["checks"])


def test_ring_token_never_grows_past_one_round():
    lab = ring("1.001s elect n1", "1.02s crash n1", nodes=9, until="10s")
    sizes = [len(e["ids"].split(",")) for e in lab.log if e["kind"] == "send" and e["type"] == "ELECTION"]
    assert max(sizes) <= 9  # was 1,618 ids
    assert agreed_leader(lab) == "n9" and elected_at(lab) < 2000


def test_ring_announcement_whose_announcer_crashed_goes_round_once():
    lab = ring("1s elect n1", "1.06s crash n1", until="3s")
    assert len([e for e in lab.log if e["kind"] == "leader"]) <= 1  # n5 "became leader" 15 times in 2 s
    coordinator_sends = [e for e in lab.log if e["kind"] == "send" and e["type"] == "COORDINATOR"]
    assert len(coordinator_sends) <= 6  # one round: four live hops, the dead n1 tried once, n2 again
    assert agreed_leader(lab) == "n5"


def test_ring_recovers_a_leader_after_repeated_crashes_and_a_restart():
    lab = ring("2217 crash n4", "3195 restart n4", "3268 crash n4", "6011 crash n6", seed=16, nodes=6, until="36s")
    assert agreed_leader(lab) == "n5" and elected_at(lab) < 10_000  # no leader for 30 s before
    assert all(c["ok"] for c in lab.snapshot()["checks"])


def test_ring_late_ack_cannot_cancel_another_hops_skip_timer():
    lab = ring("1s crash n5", "1.001s elect n1", "1.02s crash n1", until="15s")
    assert agreed_leader(lab) == "n4"
    assert elected_at(lab) - 1000 < 800  # 3.9 s before, when one timer served every hop


def test_leader_elected_check_goes_red_while_an_election_never_ends():
    """A node that swallows every token keeps the election open: the check must say so, not skip it."""
    lab = ring(until="500ms")
    lab.nodes["n3"].on_message = lambda msg: None  # a broken node: ACKs nothing, forwards nothing
    lab.nodes["n3"].cancel("suspect")
    step(lab, "12s", "600ms crash n5")
    elected = check(lab, "leader-elected")
    assert not elected["ok"]
    assert "still running" in elected["detail"] or "no single live leader" in elected["detail"]


def test_leader_elected_check_holds_after_a_normal_election():
    lab = run("leader-election", "1s crash n5", until="12s", algorithm="bully")
    assert check(lab, "leader-elected")["ok"] and "n4 leads" in check(lab, "leader-elected")["detail"]
