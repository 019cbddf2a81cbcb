"""Circuit breaker: the state machine, its checks, and the cascade it prevents."""

import statistics

import pytest

from simulations.kernel import SimError

from ..simhelpers import check, events, nodes, run, step

SLUG = "circuit-breaker"


def breaker(lab, edge):
    return next(b for b in lab.snapshot()["breakers"] if b["id"] == edge)


def transitions(lab, edge):
    return [(e["src"], e["dst"]) for e in events(lab, "breaker") if e["id"] == edge]


def all_checks_ok(lab):
    return {c["name"]: c["ok"] for c in lab.snapshot()["checks"]}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_crash_c_opens_b_c_and_c_gets_no_calls_while_open(seed):
    lab = run(SLUG, "1s crash C", seed=seed, until="4s")
    assert breaker(lab, "B->C")["state"] == "open"
    assert breaker(lab, "A->B")["state"] == "closed"  # B answers A with a fallback, so A's breaker stays closed
    assert nodes(lab)["B"]["role"] == "open" and nodes(lab)["A"]["role"] == "closed"
    opened = next(e for e in events(lab, "breaker") if e["dst"] == "open")
    assert "5 failures in a row" in opened["why"]
    # While it is open, not one call reaches C.
    calls_open = nodes(lab)["C"]["calls"]
    step(lab, opened["t"] + 2000 - 5)  # open_ms = 2000
    assert breaker(lab, "B->C")["state"] == "open"
    assert nodes(lab)["C"]["calls"] == calls_open
    # C comes back: the next half-open trial succeeds and the breaker closes.
    step(lab, "14s", "6s restart C")
    assert transitions(lab, "B->C")[-2:] == [("open", "half-open"), ("half-open", "closed")]
    assert breaker(lab, "B->C")["state"] == "closed" and nodes(lab)["B"]["role"] == "closed"
    assert nodes(lab)["C"]["calls"] > calls_open + 20  # traffic flows to C again
    assert all(all_checks_ok(lab).values()), lab.snapshot()["checks"]


def test_a_failed_trial_reopens_and_waits_another_open_timeout():
    lab = run(SLUG, "1s crash C", until="9s", open_ms=2000)
    path = transitions(lab, "B->C")
    assert path[:4] == [("closed", "open"), ("open", "half-open"), ("half-open", "open"), ("open", "half-open")]
    times = [e["t"] for e in events(lab, "breaker")]
    assert times[1] - times[0] == pytest.approx(2000)  # open for open_ms
    assert times[3] - times[2] == pytest.approx(2000)
    # exactly one trial per half-open period (trials=1), and it failed by timing out
    trials = events(lab, "trial")
    assert [t["t"] for t in trials if times[1] <= t["t"] < times[2]] and len(
        [t for t in trials if times[1] <= t["t"] < times[2]]) == 1
    assert "trial call failed" in events(lab, "breaker")[2]["why"]
    assert check(lab, "trial-outcome")["ok"] and check(lab, "trial-limit")["ok"]


@pytest.mark.parametrize("seed", [1, 4])
def test_half_open_lets_through_only_the_configured_trials(seed):
    lab = run(SLUG, "1s crash C", "5s restart C", seed=seed, until="12s", trials=3, rate=20)
    half_opens = [e for e in events(lab, "breaker") if e["dst"] == "half-open"]
    ends = [e for e in events(lab, "breaker") if e["src"] == "half-open"]
    for start, end in zip(half_opens, ends):
        crossed = [t for t in events(lab, "trial") if start["t"] <= t["t"] <= end["t"]]
        assert 1 <= len(crossed) <= 3
    # the last half-open period ended closed after 3 successful trials
    assert ends[-1]["dst"] == "closed" and "succeeded" in ends[-1]["why"]
    assert breaker(lab, "B->C")["short_circuited"] > 0  # the others got the fallback meanwhile
    assert check(lab, "trial-limit")["ok"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_breakers_off_c_outage_cascades_to_the_client(seed):
    off = run(SLUG, "1s crash C", seed=seed, until="12s", breakers="off")
    on = run(SLUG, "1s crash C", seed=seed, until="12s", breakers="on")
    assert not check(off, "no-cascade")["ok"] and check(off, "no-cascade")["seq"] is not None
    assert check(on, "no-cascade")["ok"]
    # Measured: without breakers every failure waits out a timeout and A's threads stay full.
    off_answers = [e for e in events(off, "answer") if e["t"] > 3000]
    assert off_answers and all(e["outcome"] == "error" for e in off_answers)
    assert statistics.median(e["ms"] for e in off_answers) >= 1000  # the call timeout
    threads = off.snapshot()["params"]["threads"]
    assert off.snapshot()["chart"]["a_threads"][-20:] == [threads] * 20
    # With breakers the client gets quick fallbacks and A's threads are free.
    on_answers = [e for e in events(on, "answer") if e["t"] > 5000]
    assert on_answers and all(e["outcome"] == "fallback" for e in on_answers)
    assert statistics.median(e["ms"] for e in on_answers) < 100
    assert max(on.snapshot()["chart"]["a_threads"][-20:]) <= 2
    assert on.snapshot()["metrics"]["fallback"] > 50


def test_failing_c_trips_on_errors_and_fails_fast_without_cascade():
    on = run(SLUG, "1s fail C 100", until="6s")
    assert transitions(on, "B->C")[0] == ("closed", "open")
    assert "C failed" in events(on, "breaker")[0]["why"]
    assert on.snapshot()["metrics"]["error"] == 0 and on.snapshot()["metrics"]["fallback"] > 30
    off = run(SLUG, "1s fail C 100", until="6s", breakers="off")
    assert off.snapshot()["metrics"]["error"] > 30
    assert check(off, "no-cascade")["ok"]  # fast failures: bad, but not a cascade of slowness


def test_half_failing_c_serves_fallbacks_and_recover_heals():
    lab = run(SLUG, "1s fail C 50", until="20s", rate=20)
    metrics = lab.snapshot()["metrics"]
    assert metrics["ok"] > 0 and metrics["fallback"] > 0 and metrics["error"] == 0
    step(lab, "30s", "20s recover C")
    assert breaker(lab, "B->C")["state"] == "closed"
    late = [e for e in events(lab, "answer") if e["t"] > 26_000]
    assert late and all(e["outcome"] == "ok" for e in late)


def test_recover_restarts_a_crashed_service():
    lab = run(SLUG, "1s crash C", "5s recover C", until="12s")
    assert nodes(lab)["C"]["status"] == "up"
    assert breaker(lab, "B->C")["state"] == "closed"


def test_slow_c_raises_a_latency_without_tripping():
    # C serves one request at a time: at 2 requests/s a 500 ms handler keeps up (at 10/s it would queue).
    base = run(SLUG, until="6s", rate=2)
    slow = run(SLUG, "1s slow C 500", until="6s", rate=2)
    assert not events(slow, "breaker")
    assert statistics.mean(slow.snapshot()["chart"]["a_latency"][-8:]) > 500
    assert statistics.mean(base.snapshot()["chart"]["a_latency"][-8:]) < 100
    assert slow.snapshot()["metrics"]["error"] == 0


def test_crashing_b_opens_a_b():
    lab = run(SLUG, "1s crash B", until="4s")
    assert breaker(lab, "A->B")["state"] == "open" and nodes(lab)["A"]["role"] == "open"
    assert "B did not answer" in events(lab, "breaker")[0]["why"]


def test_burst_of_requests():
    lab = run(SLUG, until="1s")
    before = nodes(lab)["A"]["calls"]
    step(lab, "1.2s", "1s request 20")
    assert nodes(lab)["A"]["calls"] >= before + 20


def test_off_mode_has_no_breaker_roles():
    lab = run(SLUG, until="1s", breakers="off")
    assert nodes(lab)["A"]["role"] == "service"
    assert [b["enabled"] for b in lab.snapshot()["breakers"]] == [False, False]


def test_bad_commands_are_refused_before_changing_anything():
    lab = run(SLUG, until="1s")
    for name, args in [("fail", ["client", "50"]), ("fail", ["C", "150"]), ("request", ["0"]),
                       ("request", ["500"]), ("recover", ["client"]), ("crash", ["client"])]:
        with pytest.raises(SimError):
            lab.apply(name, args)
    lab.apply("crash", ["C"])
    with pytest.raises(SimError, match="restart it first"):
        lab.apply("fail", ["C", "50"])


# -- the checks catch a breaker that breaks its own rules ---------------------


def test_open_blocks_catches_a_breaker_that_lets_calls_through():
    lab = run(SLUG, until="500ms")
    lab.breakers["B->C"].allow = lambda: "call"  # a buggy breaker: never refuses
    step(lab, "4s", "1s crash C")
    assert breaker(lab, "B->C")["state"] == "open"
    assert not check(lab, "open-blocks")["ok"] and check(lab, "open-blocks")["seq"] is not None


def test_trial_limit_catches_a_half_open_breaker_that_lets_everything_through():
    lab = run(SLUG, "1s crash C", until="4.3s")
    lab.breakers["B->C"].allow = lambda: "trial" if lab.breakers["B->C"].state == "half-open" else None
    step(lab, "5s")
    assert not check(lab, "trial-limit")["ok"]


def test_trial_outcome_catches_a_breaker_that_stays_half_open_after_a_failed_trial():
    lab = run(SLUG, "1s crash C", until="4s")
    lab.breakers["B->C"].trip = lambda why: None  # a buggy breaker: does not re-open
    step(lab, "7s")
    assert not check(lab, "trial-outcome")["ok"]
    assert "failed" in check(lab, "trial-outcome")["detail"]


# -- each check goes red for a flawed breaker chosen by a param (issue 7, point 16) --


@pytest.mark.parametrize("seed", [1, 2])
def test_a_dry_run_breaker_lets_calls_cross_while_open(seed):
    lab = run(SLUG, "1s crash C", seed=seed, until="4s", variant="dry-run")
    assert breaker(lab, "B->C")["state"] == "open"  # it knows...
    assert not check(lab, "open-blocks")["ok"]  # ...and lets calls through anyway
    assert "while it was open" in check(lab, "open-blocks")["detail"]


def test_a_dry_run_breaker_lets_more_than_the_trials_cross_when_half_open():
    lab = run(SLUG, "1s crash C", until="8s", variant="dry-run", trials=1, rate=20)
    assert not check(lab, "trial-limit")["ok"]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_breaker_without_half_open_floods_the_dependency_and_ignores_the_failed_trial(seed):
    lab = run(SLUG, "1s crash C", seed=seed, until="8s", variant="no-half-open")
    assert ("open", "closed") in transitions(lab, "B->C")
    assert not check(lab, "trial-limit")["ok"]  # every waiting call rushed to C
    assert not check(lab, "trial-outcome")["ok"]  # the first one failed, and it stayed closed
    assert "failed but it is closed" in check(lab, "trial-outcome")["detail"]


@pytest.mark.parametrize("seed", range(1, 7))
def test_the_nygard_breaker_keeps_its_three_rules_under_random_faults(seed):
    import random

    r = random.Random(seed)
    faults = ["crash C", "restart C", "crash B", "restart B", "pause B", "resume B", "slow C 1500", "slow C 0",
              "fail C 60", "fail C 0", "delay C B 900", "heal", "duplicate-next C B", "drop-next B C", "request 10"]
    cmds, t = [], 300
    for _ in range(14):
        t += r.choice([50, 200, 600, 1500])
        cmds.append(f"{t} {r.choice(faults)}")
    lab = run(SLUG, *cmds, seed=seed, until=t + 6000, trials=r.choice([1, 2, 3]), open_ms=r.choice([200, 800]),
              threshold=r.choice([1, 3]), rate=20)
    for name in ("open-blocks", "trial-limit", "trial-outcome"):
        assert check(lab, name)["ok"], (name, check(lab, name)["detail"], cmds)


def test_a_trial_from_an_earlier_half_open_period_does_not_count_in_the_next():
    # Issue 7, point 17.
    lab = run(SLUG, until="100ms", trials=2)
    b = lab.breakers["B->C"]
    b.trip("test")
    b.half_open()
    first = b.period
    assert b.allow() == "trial" and b.allow() == "trial"
    b.outcome(False, "C failed", "trial", first)  # one trial failed: open again
    b.half_open()
    assert b.state == "half-open" and b.period == first + 1
    b.outcome(True, "", "trial", first)  # the other trial of the first period answers late
    b.outcome(True, "", "trial", first)
    assert b.state == "half-open" and b.trials_ok == 0
    b.outcome(False, "late failure", "trial", first)
    assert b.state == "half-open"
    b.outcome(True, "", "trial", b.period)
    b.outcome(True, "", "trial", b.period)
    assert b.state == "closed"


def test_a_paused_or_unreachable_a_is_not_an_outage_behind_a():
    lab = run(SLUG, "1s pause A", "6s resume A", until="9s")
    assert check(lab, "no-cascade")["ok"]
    lab = run(SLUG, "1s partition client|A,B,C", "6s heal", until="9s")
    assert check(lab, "no-cascade")["ok"]
