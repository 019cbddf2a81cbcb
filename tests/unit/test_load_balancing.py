"""Load balancing: the checks of PATTERNS.md, each shown holding and breaking."""

import pytest

from ..simhelpers import check, events, nodes, run, step

SEEDS = [1, 2, 3]


def replica(lab, rid):
    return next(r for r in lab.snapshot()["replicas"] if r["id"] == rid)


@pytest.mark.parametrize("seed", SEEDS)
def test_round_robin_splits_evenly_and_random_does_not(seed):
    rr = run("load-balancing", seed=seed, until="20s", algorithm="round-robin")
    assert check(rr, "even-split")["ok"]
    picks = [replica(rr, r)["picks"] for r in ("a1", "a2", "a3")]
    assert max(picks) - min(picks) <= 1
    rnd = run("load-balancing", seed=seed, until="20s", algorithm="random")
    assert not check(rnd, "even-split")["ok"]
    assert check(rnd, "even-split")["seq"] is not None


@pytest.mark.parametrize("seed", SEEDS)
def test_weighted_follows_the_weights(seed):
    lab = run("load-balancing", seed=seed, until="30s", algorithm="weighted")
    assert check(lab, "even-split")["ok"]
    a1, a3 = replica(lab, "a1")["picks"], replica(lab, "a3")["picks"]  # weights 3 and 1
    assert abs(a1 - 3 * a3) <= 4


@pytest.mark.parametrize("seed", SEEDS)
def test_crashed_replica_is_taken_out_and_errors_stay_in_the_window(seed):
    lab = run("load-balancing", "1s crash a2", seed=seed, until="10s")
    taken_out = [e for e in events(lab, "health") if e["replica"] == "a2" and not e["up"]]
    assert taken_out and taken_out[0]["after_ms"] <= lab.detection_bound()
    detected = taken_out[0]["t"]
    late = [e for e in events(lab, "send") if e["dst"] == "a2" and e["type"] == "REQ" and e["t"] > detected]
    assert late == []
    errors = events(lab, "error")
    assert all(1000 <= e["t"] <= 1000 + lab.detection_bound() + 1100 for e in errors)  # + upstream timeout
    assert check(lab, "crash-contained")["ok"]
    # and after a restart, two good probes bring it back
    step(lab, "14s", "10s restart a2")
    assert replica(lab, "a2")["health"] == "up"
    assert any(e["replica"] == "a2" and e["up"] for e in events(lab, "health"))


def test_without_health_checks_the_dead_replica_keeps_getting_traffic():
    lab = run("load-balancing", "1s crash a2", "1s health off", until="10s")
    assert not check(lab, "crash-contained")["ok"]
    late = [e for e in events(lab, "send") if e["dst"] == "a2" and e["type"] == "REQ" and e["t"] > 5000]
    assert late
    assert lab.metrics["errors"] >= 10


@pytest.mark.parametrize("seed", SEEDS)
def test_least_connections_steers_away_from_a_slow_replica(seed):
    lc = run("load-balancing", "1s slow a2 400", seed=seed, until="20s", algorithm="least-connections")
    assert check(lc, "steers-away")["ok"]
    share = lc.slow_share["a2"]
    assert share["mine"] < share["peer_mean"]
    for algorithm in ("round-robin", "random"):
        other = run("load-balancing", "1s slow a2 400", seed=seed, until="20s", algorithm=algorithm)
        assert not check(other, "steers-away")["ok"]
    # health checks do not see slowness: a2 stays in rotation everywhere
    assert replica(lc, "a2")["health"] == "up"


def test_path_routing_keeps_pools_apart():
    lab = run("load-balancing", until="5s")
    reqs = [e for e in events(lab, "send") if e["type"] == "REQ" and e["src"] == "lb"]
    assert reqs
    for e in reqs:
        assert e["dst"].startswith("f" if e["path"] == "/frontend" else "a")


def test_sticky_sessions_send_a_user_back_to_the_same_replica():
    lab = run("load-balancing", until="10s", sticky="on")
    seen = {}
    for e in events(lab, "send"):
        if e["type"] == "REQ" and e["src"] == "lb":
            seen.setdefault(f"{e['user']}{e['path']}", []).append(e["dst"])
    assert len(seen) >= 8
    assert all(len(set(dsts)) == 1 for dsts in seen.values())
    plain = run("load-balancing", until="10s")
    moved = {}
    for e in events(plain, "send"):
        if e["type"] == "REQ" and e["src"] == "lb":
            moved.setdefault(f"{e['user']}{e['path']}", set()).add(e["dst"])
    assert any(len(dsts) > 1 for dsts in moved.values())


def test_sticky_user_moves_when_its_replica_dies():
    lab = run("load-balancing", "2s crash a1", until="8s", sticky="on")
    after = [e for e in events(lab, "send") if e["type"] == "REQ" and e["src"] == "lb" and e["t"] > 4000]
    assert after and all(e["dst"] != "a1" for e in after)


def test_balancer_is_a_single_point_of_failure_unless_a_standby_takes_over():
    alone = run("load-balancing", "1s crash lb", until="6s")
    assert alone.metrics["errors_no_balancer"] >= 25
    paired = run("load-balancing", "1s crash lb", until="6s", standby="on")
    failover = events(paired, "failover")
    assert failover and failover[0]["node"] == "lb2" and failover[0]["t"] - 1000 <= 800
    assert paired.metrics["errors_no_balancer"] < 12
    assert nodes(paired)["lb2"]["role"] == "active"
    step(paired, "9s", "7s restart lb")
    assert nodes(paired)["lb"]["role"] == "standby"


def test_add_remove_and_traffic_actions():
    lab = run("load-balancing", "1s add api 2", "2s remove f2", "3s traffic 0", until="6s")
    assert "a4" in lab.pools["api"] and "f2" not in lab.nodes
    assert replica(lab, "a4")["picks"] > 0
    before = lab.metrics["requests"]
    step(lab, "8s")
    assert lab.metrics["requests"] == before
    with pytest.raises(Exception, match="last replica"):
        lab.apply("remove", ["f1"])
