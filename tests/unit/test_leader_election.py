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


def test_message_counts_bully_quadratic_ring_linear():
    """The lowest node noticing first is bully's worst case; the ring stays near 2n hops."""
    n = 9
    bully = run("leader-election", "1s crash n9", "1s elect n1", until="8s", algorithm="bully", nodes=n)
    ring = run("leader-election", "1s crash n9", "1s elect n1", until="8s", algorithm="ring", nodes=n)
    bully_msgs = bully.elections[-1]["messages"]
    ring_msgs = ring.elections[-1]["messages"]
    assert bully_msgs > ring_msgs
    assert bully_msgs >= (n - 2) * 3  # many ELECTION/OK pairs
    assert 2 * (n - 1) <= ring_msgs <= 3 * n  # about 2n token hops


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
    lab.nodes["n1"].cancel_timer("suspect")
    lab.run_until(5000)
    assert not check(lab, "agreement")["ok"]
    assert check(lab, "agreement")["seq"] is not None
