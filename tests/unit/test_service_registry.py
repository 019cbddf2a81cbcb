"""Service registry: leases, graceful deregistration, caches and discovery modes."""

import pytest

from ..simhelpers import check, events, nodes, run, step
from .labfuzz import fuzz

MODES = ["client-side", "server-side"]


def table(lab):
    return {row["addr"]: row for row in lab.snapshot()["registry"]["leases"]}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_crashed_instance_expires_within_the_ttl(mode, seed):
    lab = run("service-registry", "2s crash s2", seed=seed, until="2.1s", mode=mode)
    addr = lab.nodes["s2"].addr
    assert addr in table(lab)  # a crash says nothing: the entry is still there
    step(lab, "6s")
    expired = [e for e in events(lab, "expire") if e["addr"] == addr]
    assert expired and expired[0]["t"] - 2000 <= 1500 + 150
    assert addr not in table(lab)
    assert check(lab, "crashed-expires")["ok"]
    # callers hit the dead address until the lease expired and their list was refreshed
    dead_hits = [e for e in events(lab, "error") if e["addr"] == addr]
    assert dead_hits and all(e["t"] <= expired[0]["t"] + 1000 + 400 for e in dead_hits)


def test_without_a_ttl_the_dead_instance_stays_listed():
    lab = run("service-registry", "2s crash s2", until="8s", ttl=0)
    assert lab.nodes["s2"].addr in table(lab)
    assert not check(lab, "crashed-expires")["ok"]
    assert len([e for e in events(lab, "error") if e["instance"] == "s2"]) >= 10


@pytest.mark.parametrize("mode", MODES)
def test_graceful_shutdown_deregisters_at_once_and_loses_nothing(mode):
    lab = run("service-registry", "2s shutdown s2", until="6s", mode=mode)
    dereg = events(lab, "deregister")
    assert dereg and dereg[0]["t"] - 2000 < 50
    assert check(lab, "graceful-at-once")["ok"]
    assert "s2" not in lab.nodes  # exited after draining
    assert [e for e in events(lab, "error") if e["instance"] == "s2"] == []


def test_a_lost_deregistration_leaves_the_entry_until_the_ttl():
    lab = run("service-registry", "1.9s drop-next s2 registry", "2s shutdown s2", until="6s")
    assert not check(lab, "graceful-at-once")["ok"]
    assert any(e["instance"] == "s2" for e in events(lab, "expire"))  # the TTL is the backstop


@pytest.mark.parametrize("mode", MODES)
def test_clients_keep_working_from_their_cache_while_the_registry_is_down(mode):
    lab = run("service-registry", "2s crash registry", until="8s", mode=mode)
    assert check(lab, "cache-survives")["ok"]
    assert lab.outage["served"] >= 30 and lab.outage["failed"] == 0
    nocache = run("service-registry", "2s crash registry", until="8s", mode=mode, cache="off")
    assert not check(nocache, "cache-survives")["ok"]
    assert nocache.metrics["registry_errors"] >= 30


def test_restarted_registry_is_refilled_by_heartbeats():
    lab = run("service-registry", "2s crash registry", "3s restart registry", until="5s")
    assert len(table(lab)) == 3
    assert all(row["alive"] for row in table(lab).values())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [1, 2])
def test_new_instance_gets_traffic_once_registered(mode, seed):
    lab = run("service-registry", "2s scale-up", seed=seed, until="6s", mode=mode)
    reg = [e for e in events(lab, "register") if e["instance"] == "s4"]
    first = [e for e in events(lab, "first-traffic") if e["node"] == "s4"]
    assert reg and first and first[0]["t"] > reg[0]["t"]
    assert first[0]["t"] - reg[0]["t"] <= lab.traffic_bound()
    assert check(lab, "new-gets-traffic")["ok"]
    never = run("service-registry", "2s scale-up", seed=seed, until="8s", mode=mode, refresh=0)
    assert not check(never, "new-gets-traffic")["ok"]
    assert never.stats["s4"]["served"] == 0


def test_a_restarted_instance_comes_back_at_a_new_address():
    lab = run("service-registry", "2s crash s1", until="2.1s")
    old = lab.nodes["s1"].addr
    step(lab, "6s", "3s restart s1")
    new = lab.nodes["s1"].addr
    assert new != old and new in table(lab) and old not in table(lab)
    refused = [e for e in events(lab, "error") if e["outcome"] == "refused" and e["addr"] == old]
    assert all(e["t"] > 3000 for e in refused)  # the old address now answers nobody


def test_delayed_heartbeats_evict_a_live_instance_until_it_registers_again():
    lab = run("service-registry", "2s delay-heartbeats s1 2000", until="9s")
    assert any(e["instance"] == "s1" for e in events(lab, "expire"))
    assert nodes(lab)["s1"]["status"] == "up"
    assert any(e["instance"] == "s1" and e["t"] > 3000 for e in events(lab, "register"))


def test_scale_down_and_bad_commands():
    lab = run("service-registry", "1s scale-down", "1.5s scale-down", until="5s")
    assert [n for n in lab.nodes if n.startswith("s")] == ["s1"]
    with pytest.raises(Exception, match="only one instance"):
        lab.apply("scale-down", [])
    with pytest.raises(Exception, match="not an instance"):
        lab.apply("shutdown", ["c1"])


@pytest.mark.parametrize("at", ["2s", "2.23s", "2.45s", "3.1s", "4.77s"])
def test_a_lost_deregistration_turns_graceful_at_once_red_whatever_the_timing(at):
    # 'lose-deregistration s2' then 'shutdown s2': exactly the DEREGISTER is lost, however
    # long after a heartbeat (or after the first command) the shutdown comes.
    lab = run("service-registry", "1s lose-deregistration s2", f"{at} shutdown s2", until="9s")
    drops = [e for e in events(lab, "drop") if e["src"] == "s2" and e["dst"] == "registry"]
    assert [e["type"] for e in drops] == ["DEREGISTER"]
    assert not check(lab, "graceful-at-once")["ok"]
    assert any(e["instance"] == "s2" for e in events(lab, "expire"))  # the TTL is the backstop
    assert check(lab, "crashed-expires")["ok"]


def test_crashed_expires_counts_from_the_last_heartbeat_received():
    # s2's heartbeats take 1 s; one sent just before the crash renews the lease after it.
    lab = run("service-registry", "1s delay-heartbeats s2 1000", "3s crash s2", until="8s")
    expired = [e for e in events(lab, "expire") if e["instance"] == "s2"]
    assert expired and expired[0]["t"] > 3000 + 1500  # later than the TTL counted from the crash
    assert check(lab, "crashed-expires")["ok"]
    assert "last heartbeat" in check(lab, "crashed-expires")["detail"]


@pytest.mark.parametrize("mode", MODES)
def test_random_fault_schedules_finish_and_crashed_instances_expire(mode):
    fuzz("service-registry", {"mode": mode}, seeds=range(1, 31), hold=("crashed-expires",))


def test_crashed_expires_does_not_count_the_time_the_registry_is_paused():
    lab = run("service-registry", "2s pause registry", "2.1s crash s2", "6s resume registry", until="10s")
    assert any(e["instance"] == "s2" for e in events(lab, "expire"))
    assert check(lab, "crashed-expires")["ok"]


def test_new_gets_traffic_is_an_invariant_only_when_cached_lists_are_refreshed():
    from simulations import get_lab
    cls = get_lab("service-registry")
    assert "new-gets-traffic" in cls(None, 1).invariants()
    assert "new-gets-traffic" in cls({"cache": "false", "refresh": "0"}, 1).invariants()
    assert "new-gets-traffic" not in cls({"refresh": "0"}, 1).invariants()
    # a network that loses a DEREGISTER keeps the entry until the TTL: shown, never claimed
    assert "graceful-at-once" not in cls(None, 1).invariants()


@pytest.mark.parametrize("mode", ["client-side", "server-side"])
def test_a_new_instance_is_judged_by_a_full_round_of_the_listed_instances(mode):
    # six instances at a low rate: round robin reaches each one only every six requests
    lab = run("service-registry", "3s scale-up", until="10s", mode=mode, instances=6, rate=2, cache="false")
    assert check(lab, "new-gets-traffic")["ok"], check(lab, "new-gets-traffic")
    assert events(lab, "first-traffic")


def test_a_new_instance_is_not_judged_while_the_callers_cannot_reach_the_registry():
    lab = run("service-registry", "1s partition c1,c2|registry,s1,s2,s3", "1.1s scale-up", "5s heal", until="9s")
    assert check(lab, "new-gets-traffic")["ok"], check(lab, "new-gets-traffic")
    assert any(e["node"] == "s4" for e in events(lab, "first-traffic"))


def test_a_caller_that_never_got_a_list_is_not_blamed_on_the_cache():
    # the registry dies before the first lookup: there is nothing cached to fall back on
    lab = run("service-registry", "100ms crash registry", until="3s")
    assert lab.outage["failed"] > 0
    assert check(lab, "cache-survives")["ok"]


def test_crashed_expires_is_claimed_only_with_a_ttl():
    from simulations import get_lab
    cls = get_lab("service-registry")
    assert "crashed-expires" in cls(None, 1).invariants()
    assert "crashed-expires" not in cls({"ttl": "0"}, 1).invariants()
