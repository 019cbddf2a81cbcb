"""Bulkhead: a slow dependency stalls everything behind one shared pool, and only its own pool with bulkheads."""

import pytest

from simulations.kernel import SimError

from ..simhelpers import check, events, run, step

SLUG = "bulkhead"


def c_answers(lab, after=0):
    return [e for e in events(lab, "answer") if e["dep"] == "C" and e["t"] > after]


def p95(values):
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))]


def pool(lab, name):
    return next(p for p in lab.snapshot()["pools"] if p["name"] == name)


@pytest.mark.parametrize("mode", ["shared", "bulkheads"])
def test_healthy_b_leaves_c_fast_in_both_modes(mode):
    lab = run(SLUG, until="10s", mode=mode)
    assert check(lab, "c-unaffected")["ok"]
    assert p95([e["ms"] for e in c_answers(lab)]) < 100
    assert lab.snapshot()["metrics"]["error"] == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("fault", ["slow B 2000", "hang B"])
def test_slow_b_stalls_c_behind_a_shared_pool_but_not_behind_bulkheads(seed, fault):
    shared = run(SLUG, f"2s {fault}", seed=seed, until="5s", mode="shared")
    busy = []
    for t in range(5500, 15001, 500):
        step(shared, t)
        busy.append(pool(shared, "shared")["busy"])
    bulk = run(SLUG, f"2s {fault}", seed=seed, until="15s", mode="bulkheads")
    # Shared pool: B's requests take every thread and C's requests wait (or are turned away).
    assert not check(shared, "c-unaffected")["ok"] and check(shared, "c-unaffected")["seq"] is not None
    stalled = c_answers(shared, after=5000)
    assert p95([e["ms"] for e in stalled]) > 250 or any(e["outcome"] != "ok" for e in stalled)
    assert max(busy) == 10 and sum(busy) / len(busy) > 8  # the pool is (nearly) always full
    # Bulkheads: B's pool fills and rejects; C's requests keep their latency.
    assert check(bulk, "c-unaffected")["ok"], check(bulk, "c-unaffected")
    calm = c_answers(bulk, after=5000)
    assert calm and all(e["outcome"] == "ok" for e in calm)
    assert p95([e["ms"] for e in calm]) < 100
    assert pool(bulk, "B")["busy"] == 4 and pool(bulk, "B")["rejected"] > 0
    assert pool(bulk, "C")["rejected"] == 0
    b_failures = [e for e in events(bulk, "answer") if e["dep"] == "B" and e["outcome"] != "ok"]
    assert any("pool B full" in e.get("why", "") for e in b_failures)


def test_pool_views_show_slots_and_queue():
    # Every request needs B, so B's pool and queue are full well before the first timeout (at 5 s).
    lab = run(SLUG, "2s hang B", until="4.5s", mode="bulkheads", mix=100)
    b = pool(lab, "B")
    assert [s["busy"] for s in b["slots"]] == [True] * 4 and {s["dep"] for s in b["slots"]} == {"B"}
    assert b["queued"] == b["queue_limit"] == 10 and set(b["queue"]) == {"B"}
    c = pool(lab, "C")
    assert len(c["slots"]) == 6 and c["queued"] == 0
    shared = run(SLUG, "2s hang B", until="5s", mode="shared")  # the hung calls hold every thread
    queue = pool(shared, "shared")["queue"]
    assert "C" in queue and "B" in queue  # C's requests wait behind B's


def test_resizing_pools_is_validated_and_takes_effect():
    lab = run(SLUG, "2s hang B", until="4s", mode="bulkheads")
    with pytest.raises(SimError, match="no pool 'shared'"):
        lab.apply("pool", ["shared", "5"])
    with pytest.raises(SimError):
        lab.apply("pool", ["B", "0"])
    step(lab, "5s", "4s pool B 8")
    assert pool(lab, "B")["size"] == 8 and pool(lab, "B")["busy"] == 8  # queued requests took the new slots
    step(lab, "6s", "5s pool B 2")
    slots = pool(lab, "B")["slots"]
    assert len(slots) == 8 and sum(s["retiring"] for s in slots) == 6  # busy ones finish, then go
    step(lab, "12s")
    assert len(pool(lab, "B")["slots"]) == 2
    shared = run(SLUG, until="1s", mode="shared")
    with pytest.raises(SimError, match="no pool 'B'"):
        shared.apply("pool", ["B", "3"])


def test_a_bigger_shared_pool_only_delays_the_stall():
    lab = run(SLUG, "2s slow B 2000", "2s pool shared 30", until="15s", mode="shared", rate=20)
    # 30 threads cover B's 6 req/s x 2 s: C is fine ... until more traffic needs B.
    assert check(lab, "c-unaffected")["ok"]
    step(lab, "30s", "15s mix 80")
    assert not check(lab, "c-unaffected")["ok"]


def test_mix_changes_the_traffic():
    lab = run(SLUG, "1s mix 0", until="6s")
    b_calls = lab.calls["B"]
    step(lab, "10s")
    assert lab.calls["B"] == b_calls
    step(lab, "12s", "10s mix 100")
    assert not [e for e in events(lab, "answer") if e["t"] > 10_500 and e["dep"] == "C"]


def test_recover_heals_a_hung_b():
    lab = run(SLUG, "2s hang B", "6s recover B", until="16s", mode="bulkheads")
    late_b = [e for e in events(lab, "answer") if e["dep"] == "B" and e["t"] > 14_000]
    assert late_b and all(e["outcome"] == "ok" and e["ms"] < 200 for e in late_b)


def test_burst_for_c_and_bad_commands():
    lab = run(SLUG, until="1s", mode="bulkheads")
    before = lab.calls["C"]
    step(lab, "1.5s", "1s request 20 C")
    assert lab.calls["C"] >= before + 20
    for name, args in [("hang", ["A"]), ("hang", ["client"]), ("mix", ["120"]), ("request", ["0"]),
                       ("request", ["5", "D"]), ("crash", ["client"]), ("recover", ["A"])]:
        with pytest.raises(SimError):
            lab.apply(name, args)


def test_c_failing_on_its_own_is_not_blamed_on_b():
    """A fault on C itself (slow, with a one-thread pool and no queue) fails requests for C; no B call
    was in their way, so c-unaffected holds, in either mode."""
    for mode in ("bulkheads", "shared"):
        lab = run(SLUG, "1s slow C 500", until="6s", mode=mode, mix=0, c_threads=1, threads=1, queue=0)
        assert lab.stats["C"]["error"] > 0 and lab.metrics["c_own_trouble"] > 0
        assert check(lab, "c-unaffected")["ok"], check(lab, "c-unaffected")


def test_a_c_request_stuck_behind_b_calls_in_a_shared_pool_names_them():
    lab = run(SLUG, "1s slow B 2000", until="8s", mode="shared")
    broken = check(lab, "c-unaffected")
    assert not broken["ok"] and "B calls" in broken["detail"]
