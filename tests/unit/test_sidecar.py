"""Sidecar: blast radius of the shipping code, and exactly-once delivery of log lines."""

import pytest

from ..simhelpers import check, events, nodes, run, step

MODES = ["sidecar", "service", "in-process"]


def stored_once(lab):
    docs = lab.nodes["store"].disk["docs"]
    return docs, all(c == 1 for c in docs.values())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_sidecar_crash_does_not_stop_the_app(seed):
    lab = run("sidecar", "2s crash sidecar", seed=seed, until="5s", mode="sidecar")
    assert nodes(lab)["app"]["status"] == "up"
    assert lab.metrics["failed"] == 0 and lab.metrics["ok"] >= 30
    assert check(lab, "app-survives")["ok"]
    backlog = lab.snapshot()["log"]["backlog"]
    assert backlog >= 15  # lines wait on the shared volume
    step(lab, "10s", "5s restart sidecar")
    docs, once = stored_once(lab)
    assert once and lab.snapshot()["log"]["backlog"] <= 2  # the restarted sidecar caught up from its offset
    assert check(lab, "exactly-once")["ok"]


def test_in_process_the_logging_crash_takes_the_app_down():
    lab = run("sidecar", "2s crash sidecar", until="4s", mode="in-process")
    assert nodes(lab)["app"]["status"] == "down"
    assert not check(lab, "app-survives")["ok"]
    assert lab.metrics["failed"] > 0


def test_as_a_service_the_app_survives_but_pays_in_latency():
    side = run("sidecar", until="5s", mode="sidecar")
    svc = run("sidecar", until="5s", mode="service")
    assert svc.view()["latency"]["mean"] > side.view()["latency"]["mean"] + 5  # a network round trip per line
    down = run("sidecar", "1s crash sidecar", until="5s", mode="service")
    assert check(down, "app-survives")["ok"]
    assert down.view()["latency"]["p95"] >= 150  # every request waits for the dead service's timeout


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [1, 2])
def test_after_a_store_outage_every_line_arrives_exactly_once(mode, seed):
    lab = run("sidecar", "2s outage 3s", seed=seed, until="4s", mode=mode)
    assert lab.snapshot()["log"]["backlog"] >= 10
    step(lab, "9s", "8s traffic 0")
    docs, once = stored_once(lab)
    assert once and len(docs) == lab.metrics["lines"]
    assert check(lab, "exactly-once")["ok"]
    assert events(lab, "ship-failed")  # batches were retried


@pytest.mark.parametrize("mode", MODES)
def test_committing_the_offset_before_the_ack_loses_lines(mode):
    lab = run("sidecar", "2s outage 3s", "8s traffic 0", until="9s", mode=mode, commit="before-ack")
    docs, _ = stored_once(lab)
    assert len(docs) < lab.metrics["lines"]
    assert not check(lab, "exactly-once")["ok"]
    assert lab.metrics["lost"] > 0


def test_a_lost_ack_is_resent_and_the_store_dedupes_it():
    lab = run("sidecar", "2s drop-next store sidecar", "5s traffic 0", until="6s")
    docs, once = stored_once(lab)
    assert once and len(docs) == lab.metrics["lines"]
    assert check(lab, "exactly-once")["ok"]
    nodedupe = run("sidecar", "2s drop-next store sidecar", "5s traffic 0", until="6s", dedupe="off")
    assert not check(nodedupe, "exactly-once")["ok"]
    assert nodedupe.metrics["duplicates"] > 0


def test_the_offset_survives_a_sidecar_crash_on_the_shared_volume():
    lab = run("sidecar", "2s outage 2s", "3s crash sidecar", until="3.1s")
    offset = lab.snapshot()["log"]["offset"]
    step(lab, "8s", "4.5s restart sidecar", "7s traffic 0")
    commits = [e for e in events(lab, "commit") if e["t"] > 4500]
    assert commits and commits[0]["offset"] > offset  # resumed from the stored offset, not from zero
    assert check(lab, "exactly-once")["ok"]


def test_in_process_a_crash_loses_the_lines_in_memory():
    lab = run("sidecar", "2s outage 3s", "3s crash app", until="4s", mode="in-process")
    assert not check(lab, "exactly-once")["ok"]
    assert lab.metrics["lost"] >= 5
    same = run("sidecar", "2s outage 3s", "3s crash app", "3.5s restart app", "7s traffic 0", until="9s")
    assert check(same, "exactly-once")["ok"]  # as a sidecar, the lines wait on the volume


# -- kind=proxy: outbound calls through a local proxy -------------------------------------


def test_proxy_latency_added_per_call_in_each_mode():
    added = {m: run("sidecar", until="5s", kind="proxy", mode=m).snapshot()["proxy"]["added"] for m in MODES}
    assert added["in-process"] < added["sidecar"] < 2  # a function call, then a loopback hop: under 2 ms
    assert added["service"] > added["sidecar"] + 5  # two network hops per call


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_proxy_sidecar_crash_fails_calls_fast_and_the_app_keeps_serving(seed):
    lab = run("sidecar", "2s crash sidecar", seed=seed, until="5s", kind="proxy", mode="sidecar")
    assert nodes(lab)["app"]["status"] == "up"
    assert lab.metrics["refused"] >= 5 and lab.metrics["failed"] == 0  # errors, but every request is answered
    down = [e for e in events(lab, "call") if e["t"] > 2000]
    assert all(e["via"] == "refused" for e in down)  # refused (or reset, if open at the crash) at once
    assert all(e["ms"] < 1 for e in down if e["t"] - e["ms"] > 2000)
    assert lab.metrics["ok"] > lab.metrics["errors"]  # requests without a downstream call still succeed
    assert check(lab, "app-survives")["ok"] and check(lab, "calls-fail-fast")["ok"]
    assert check(lab, "exactly-once")["ok"] and "log shipper" in check(lab, "exactly-once")["detail"]
    step(lab, "8s", "5s restart sidecar")
    assert all(e["ok"] for e in events(lab, "call") if e["t"] > 5100)


def test_proxy_as_a_remote_service_makes_calls_wait_for_the_timeout():
    lab = run("sidecar", "2s crash sidecar", until="5s", kind="proxy", mode="service")
    assert not check(lab, "calls-fail-fast")["ok"]
    assert lab.snapshot()["proxy"]["longest_down"] >= 600  # nobody refuses: the app's own timeout
    assert check(lab, "app-survives")["ok"]  # slow errors, but the app answers


def test_proxy_in_process_a_crash_takes_the_app_down():
    lab = run("sidecar", "2s crash sidecar", until="4s", kind="proxy", mode="in-process")
    assert nodes(lab)["app"]["status"] == "down"
    assert not check(lab, "app-survives")["ok"] and lab.metrics["failed"] > 0


@pytest.mark.parametrize("seed", [1, 2])
def test_proxy_retries_once_and_keeps_calls_within_the_budget(seed):
    flaky = run("sidecar", "1s flaky 50", seed=seed, until="8s", kind="proxy")
    assert flaky.metrics["retries"] >= 5 and events(flaky, "retry")
    assert flaky.metrics["calls_ok"] > flaky.metrics["calls_failed"]  # most errors are retried away
    out = run("sidecar", "2s outage 3s", seed=seed, until="6s", kind="proxy")
    failed = [e for e in events(out, "call") if not e["ok"]]
    assert failed and all(150 < e["ms"] < 250 for e in failed)  # two tries of 100 ms, then an error
    assert check(out, "calls-fail-fast")["ok"]


# -- kind=cache: a local cache in front of a slow backend -------------------------------------


def test_cache_hits_are_fast_and_the_ttl_sets_the_hit_rate():
    lab = run("sidecar", until="10s", kind="cache")
    c = lab.snapshot()["cache"]
    assert c["hit_rate"] >= 50 and c["hit_ms"] < 2 and c["miss_ms"] > 40
    short = run("sidecar", until="10s", kind="cache", ttl=200).snapshot()["cache"]
    assert short["hit_rate"] < c["hit_rate"] - 20
    assert lab.view()["latency"]["mean"] < run("sidecar", until="10s", kind="cache", ttl=0).view()["latency"]["mean"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cache_sidecar_crash_loses_the_cache_and_the_app_goes_to_the_backend(seed):
    lab = run("sidecar", "3s crash sidecar", seed=seed, until="5s", kind="cache")
    assert nodes(lab)["app"]["status"] == "up" and check(lab, "app-survives")["ok"]
    assert lab.metrics["fallback"] >= 5 and lab.metrics["failed"] == 0 and lab.metrics["calls_failed"] == 0
    assert lab.snapshot()["cache"]["size"] == 0
    step(lab, "5.5s", "5s restart sidecar")
    cold = [e for e in events(lab, "call") if 5000 < e["t"] and e.get("hit") is not None]
    assert cold and not cold[0]["hit"]  # the restarted cache starts empty
    assert check(lab, "cache-consistent")["ok"]


def test_cache_in_process_a_crash_takes_the_app_down():
    lab = run("sidecar", "2s crash sidecar", until="4s", kind="cache", mode="in-process")
    assert nodes(lab)["app"]["status"] == "down" and not check(lab, "app-survives")["ok"]


@pytest.mark.parametrize("seed", [1, 2])
def test_cache_never_serves_past_the_ttl_unless_told_to_serve_stale(seed):
    lab = run("sidecar", "2s outage 3s", seed=seed, until="8s", kind="cache", ttl=1000)
    assert check(lab, "cache-consistent")["ok"] and lab.metrics["hits"] > 0
    assert lab.metrics["calls_failed"] > 0  # misses during the outage fail instead
    stale = run("sidecar", "2s outage 3s", seed=seed, until="8s", kind="cache", ttl=1000, serve_stale="on")
    assert not check(stale, "cache-consistent")["ok"] and stale.metrics["stale_served"] > 0
    assert stale.metrics["calls_failed"] < lab.metrics["calls_failed"]  # the shortcut buys answers


def test_proxy_pause_and_resume_of_the_sidecar_raises_nothing_and_every_call_ends():
    # Issue 7, point 7: a try timer that fired while the proxy was paused used to
    # run after the call had ended (KeyError in Proxy.try_again).
    lab = run("sidecar", "1.05s pause sidecar", "1.6s resume sidecar", until="4s", kind="proxy", rate=20)
    assert lab.metrics["calls"] > 20
    assert not lab.nodes["sidecar"].calls and not lab.nodes["app"].calls  # nothing left hanging
    assert check(lab, "app-survives")["ok"]


@pytest.mark.parametrize("seed", range(1, 9))
def test_a_failure_caused_by_a_fault_on_the_app_is_not_blamed_on_the_sidecar(seed):
    lab = run("sidecar", "1s crash sidecar", "1.2s cut app client", "2s heal", until="4s", seed=seed)
    assert lab.metrics["failed_while_sidecar_down"] > 0  # the cut lost answers meanwhile
    assert check(lab, "app-survives")["ok"]


@pytest.mark.parametrize("kind", ["log-shipper", "proxy", "cache"])
def test_failures_of_an_overloaded_slowed_app_are_not_blamed_on_a_sidecar_crash(kind):
    # the app is slowed long before the crash and stays slow: its backlog, not the sidecar, fails requests
    lab = run("sidecar", "1s slow app 300", "3s crash sidecar", until="6s", kind=kind, mode="sidecar")
    assert lab.metrics["failed_while_sidecar_down"] > 0
    assert check(lab, "app-survives")["ok"]
