"""Bloom filter: no false negatives, a measured FP rate that matches the formula."""

import json
import math

import pytest

from pattern_lab.runs.charts import bloom_chart
from simulations.kernel import SimError

from ..simhelpers import check, events, nodes, run, step


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_measured_fp_rate_matches_the_formula(seed):
    lab = run("bloom-filter", "1s measure", "2s insert-random 150", seed=seed, until="3s")
    first, second = events(lab, "measured")
    for result in (first, second):
        expected = (1 - math.exp(-4 * result["n"] / 1024)) ** 4
        assert result["formula"] == pytest.approx(expected, abs=1e-5)
        assert result["queries"] == 10_000 and result["false_negatives"] == 0
        assert abs(result["measured"] - expected) <= result["tolerance"]
        assert result["tolerance"] < 0.6 * expected  # a real test, not a free pass
    assert 0.004 < first["measured"] < 0.022  # about 1% at the design load (100 items in 1024 bits)
    assert second["measured"] > 3 * first["measured"]  # more items, more false positives
    assert check(lab, "fp-rate")["ok"] and check(lab, "no-false-negatives")["ok"]
    assert len([e for e in lab.log if e["kind"] in ("measured", "inserted")]) == 3  # one summary each


@pytest.mark.parametrize("seed", [1, 2])
def test_overfilling_tracks_the_curve(seed):
    lab = run("bloom-filter", "1s overfill", seed=seed, until="2s")
    measured = events(lab, "measured")
    assert len(measured) == 6 and all(r["ok"] and r["queries"] == 5000 for r in measured)
    rates = [r["measured"] for r in measured]
    assert rates == sorted(rates) and rates[-1] > 0.3
    assert check(lab, "fp-rate")["ok"]
    chart = bloom_chart(lab.snapshot())
    assert len(chart["points"]) == 6 and chart["curve"].startswith("M0 150")


def test_the_best_k_is_near_m_over_n_ln2():
    fp = {}
    for k in (1, 7, 16):  # (1024 / 100) ln 2 = 7.1
        lab = run("bloom-filter", "1s measure 20000", until="2s", k=k, items=100, rate=0)
        fp[k] = events(lab, "measured")[0]["measured"]
        assert events(lab, "measured")[0]["best_k"] == pytest.approx(1024 / 100 * math.log(2), abs=0.01)
    assert fp[7] < fp[1] and fp[7] < fp[16]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_false_negatives_under_traffic_and_a_filter_restart(seed):
    lab = run("bloom-filter", "1s insert-random 200", "3s crash filter", "3200ms restart filter",
              seed=seed, until="12s", rate=20, present=60)
    answers = events(lab, "answer")
    inserted = set(lab.client.inserted)
    members = [a for a in answers if a["item"] in inserted]
    assert len(members) > 50
    assert all(a["answer"] != "definitely not" for a in members)
    assert any(a["answer"] == "maybe (rebuilding)" for a in answers)  # the empty filter never said no
    assert events(lab, "rebuilt")[0]["items"] == 300
    assert nodes(lab)["filter"]["state"] == "ready"
    assert check(lab, "no-false-negatives")["ok"]
    assert lab.metrics["false_negatives"] == 0


def test_naive_delete_creates_false_negatives():
    lab = run("bloom-filter", until="1s", items=300, rate=0)
    victims = lab.client.inserted[:3]
    step(lab, "3s", *[f"1s delete {v}" for v in victims], "2s measure")
    result = events(lab, "measured")[-1]
    assert result["false_negatives"] > 0 and result["members"] == 297
    assert not check(lab, "no-false-negatives")["ok"]
    assert check(lab, "no-false-negatives")["seq"] is not None


def test_definitely_not_saves_store_lookups_and_maybe_goes_to_the_store():
    lab = run("bloom-filter", "1s query nobody-here", "1100ms insert alice", "1500ms query alice",
              until="2s", rate=0)
    nope, alice = [a for a in events(lab, "answer")]
    assert nope["answer"] == "definitely not" and nope["outcome"] == "no lookup"
    assert alice["answer"] == "maybe" and alice["outcome"] == "found"
    assert alice["ms"] > 40 > nope["ms"]  # the store is slow
    last = lab.snapshot()["last"]
    assert last["item"] == "alice" and len(last["bits"]) == 4 and all(b["lit"] for b in last["bits"])


def test_a_definitely_not_shows_an_unlit_bit():
    lab = run("bloom-filter", "1s query nobody-here", until="2s", rate=0)
    last = lab.snapshot()["last"]
    assert last["answer"] == "definitely not" and not all(b["lit"] for b in last["bits"])


def test_filter_versus_no_filter_store_lookups():
    bloom = run("bloom-filter", until="20s", rate=10, present=20, mode="bloom")
    plain = run("bloom-filter", until="20s", rate=10, present=20, mode="no-filter")
    assert plain.metrics["lookups_saved"] == 0
    assert plain.metrics["store_lookups"] == plain.metrics["queries"] > 150
    saved = bloom.metrics["lookups_saved"] / bloom.metrics["queries"]
    assert 0.65 < saved < 0.92  # about 80% absent items, most answered from memory
    assert bloom.snapshot()["saved_share"] == pytest.approx(saved, abs=1e-4)


def test_store_outage_still_answers_definitely_not():
    lab = run("bloom-filter", "1s crash store", until="10s", rate=10, present=0, items=300)  # a fuller filter: some "maybe"s
    late = [a for a in events(lab, "answer") if a["ms"] and a["item"].startswith("user:")]
    assert any(a["outcome"] == "no lookup" for a in late)
    assert any(a["outcome"] == "no answer" for a in late)  # every "maybe" waits for the dead store


def test_resize_rebuilds_from_the_store():
    lab = run("bloom-filter", "1s measure", "2s resize 4096 7", "3s measure", until="4s", rate=0)
    before, after = events(lab, "measured")
    assert after["n"] == before["n"] == 100
    assert after["measured"] < before["measured"]
    snap = lab.snapshot()
    assert (snap["m"], snap["k"]) == (4096, 7) and len(snap["chart"]["points"]) == 1
    assert events(lab, "rebuilt")


def test_memory_against_a_hash_set():
    snap = run("bloom-filter", until="1s", items=1000, m=8192).snapshot()
    mem = snap["memory"]
    assert mem["bloom"] == 1024 and mem["hash_set"] > 10 * mem["bloom"]
    assert mem["bits_per_item"] == pytest.approx(8.2, abs=0.1)
    assert len(json.dumps(snap)) < 40_000


def test_bad_commands_change_nothing():
    lab = run("bloom-filter", "500ms crash filter", until="1s")
    before = json.dumps(lab.snapshot())
    for name, args in [("measure", []), ("insert-random", ["10"]), ("overfill", []), ("resize", ["1024", "4"]),
                       ("delete", ["not-stored"]), ("measure", ["5"]), ("crash", ["client"]),
                       ("resize", ["10", "4"]), ("insert-random", ["0"])]:
        with pytest.raises(SimError):
            lab.apply(name, args)
    assert json.dumps(lab.snapshot()) == before


def test_background_traffic_does_not_replace_the_learners_item():
    lab = run("bloom-filter", "1s query alice", until="5s", rate=10)
    assert lab.snapshot()["last"]["item"] == "alice"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_small_filter_with_many_hashes_matches_the_formula(seed):
    # Issue 7, point 14: m=128, k=16, four items: independent hashes stay near the formula.
    lab = run("bloom-filter", "100 measure 20000", seed=seed, until="1s", m=128, k=16, items=4, rate=0)
    assert check(lab, "fp-rate")["ok"], check(lab, "fp-rate")["detail"]


def test_the_fp_rate_check_catches_the_double_hashing_floor(monkeypatch):
    """The check is not blind: the same filter with plain double hashing (two
    items that agree on h1 and h2 mod m share all k bits) measures far above it."""
    import hashlib

    from simulations.bloom_filter import Bloom

    def double_hashing(self, item):
        h = int.from_bytes(hashlib.blake2b(item.encode(), digest_size=16).digest(), "big")
        h1, h2 = h >> 64, h & 0xFFFF_FFFF_FFFF_FFFF
        return [(h1 + i * h2) % self.m for i in range(self.k)]

    monkeypatch.setattr(Bloom, "positions", double_hashing)
    lab = run("bloom-filter", "100 measure 20000", seed=1, until="1s", m=128, k=16, items=4, rate=0)
    assert not check(lab, "fp-rate")["ok"]


def test_hash_functions_are_independent_per_position():
    from simulations.bloom_filter import hash_values

    values = hash_values("user:42", 20)
    assert len(values) == 20 and len(set(values)) == 20  # a second digest (another salt) beyond 16
    assert hash_values("user:42", 4) == values[:4]  # deterministic, and k=4 is a prefix of k=20
