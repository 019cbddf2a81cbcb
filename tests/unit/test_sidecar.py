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
    assert svc.latency_summary()["mean"] > side.latency_summary()["mean"] + 5  # a network round trip per line
    down = run("sidecar", "1s crash sidecar", until="5s", mode="service")
    assert check(down, "app-survives")["ok"]
    assert down.latency_summary()["p95"] >= 150  # every request waits for the dead service's timeout


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [1, 2])
def test_after_a_store_outage_every_line_arrives_exactly_once(mode, seed):
    lab = run("sidecar", "2s outage 3s", seed=seed, until="4s", mode=mode)
    assert lab.snapshot()["log"]["backlog"] >= 10
    step(lab, "9s", "8s traffic 0")
    docs, once = stored_once(lab)
    assert once and sorted(docs) == sorted(lab.all_lines)
    assert check(lab, "exactly-once")["ok"]
    assert events(lab, "ship-failed")  # batches were retried


@pytest.mark.parametrize("mode", MODES)
def test_committing_the_offset_before_the_ack_loses_lines(mode):
    lab = run("sidecar", "2s outage 3s", "8s traffic 0", until="9s", mode=mode, commit="before-ack")
    docs, _ = stored_once(lab)
    assert len(docs) < len(lab.all_lines)
    assert not check(lab, "exactly-once")["ok"]
    assert lab.metrics["lost"] > 0


def test_a_lost_ack_is_resent_and_the_store_dedupes_it():
    lab = run("sidecar", "2s drop-next store sidecar", "5s traffic 0", until="6s")
    docs, once = stored_once(lab)
    assert once and sorted(docs) == sorted(lab.all_lines)
    assert check(lab, "exactly-once")["ok"]
    nodedupe = run("sidecar", "2s drop-next store sidecar", "5s traffic 0", until="6s", dedupe="off")
    assert not check(nodedupe, "exactly-once")["ok"]
    assert nodedupe.metrics["duplicates"] > 0


def test_the_offset_survives_a_sidecar_crash_on_the_shared_volume():
    lab = run("sidecar", "2s outage 2s", "3s crash sidecar", until="3.1s")
    offset = lab.volume["offset"]
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
