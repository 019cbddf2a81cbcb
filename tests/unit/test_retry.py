"""Retry: strategies, idempotency keys, permanent errors and the jitter comparison."""

import pytest

from pattern_lab.runs.layouts import positions

from ..simhelpers import check, events, run, step

SEEDS = [1, 2, 3]


def retried(lab):
    return [r for r in lab.requests.values() if len(r["attempts"]) > 1]


@pytest.mark.parametrize("seed", SEEDS)
def test_lost_responses_with_keys_charge_exactly_once(seed):
    lab = run("retry", "1s lose-responses 50", "3s lose-responses 0", seed=seed, until="8s", idempotency="on")
    lost = [e for e in events(lab, "drop") if e["type"] == "RESULT"]
    assert lost, "some answers were lost"
    again = retried(lab)
    assert again, "a lost answer makes the client try again"
    # The service did charge before the answer was lost, and never charged again.
    assert all(r["charges"] <= 1 for r in lab.requests.values())
    assert all(r["charges"] == 1 for r in lab.requests.values() if r["status"] == "paid")
    assert any(e["code"] == 200 and e["n"] > 1 for e in events(lab, "answer")), "a retry got the stored answer"
    assert lab.metrics["duplicate_charges"] == 0
    assert check(lab, "no-duplicate-charges")["ok"]


@pytest.mark.parametrize("seed", SEEDS)
def test_lost_responses_without_keys_charge_twice(seed):
    lab = run("retry", "1s lose-responses 50", "3s lose-responses 0", seed=seed, until="8s", idempotency="off")
    doubled = [r for r in lab.requests.values() if r["charges"] > 1]
    assert doubled and lab.metrics["duplicate_charges"] >= len(doubled)
    assert lab.metrics["charges"] > lab.metrics["succeeded"]
    broken = check(lab, "no-duplicate-charges")
    assert not broken["ok"] and broken["seq"] is not None
    assert "charged" in broken["detail"]


@pytest.mark.parametrize("idempotency, duplicates", [("on", False), ("off", True)])
def test_slow_service_and_short_timeout(idempotency, duplicates):
    """The client gives up waiting while the first attempt is still queued: with a key the
    repeat is recognised (409 or the stored answer), without it the card is charged again."""
    lab = run("retry", "1s slow service 600", "3s slow service 0", seed=4, until="8s",
              idempotency=idempotency, timeout_ms=300)
    assert retried(lab)
    assert (lab.metrics["duplicate_charges"] > 0) == duplicates
    assert check(lab, "no-duplicate-charges")["ok"] != duplicates


def test_permanent_error_is_not_retried():
    lab = run("retry", "1s unauthorized 3", until="4s")
    refused = [r for r in lab.requests.values() if r["token"] == "expired"]
    assert len(refused) == 3
    for r in refused:
        assert r["status"] == "failed" and len(r["attempts"]) == 1 and r["attempts"][0][1] == 401
    assert check(lab, "permanent-not-retried")["ok"]
    assert lab.metrics["succeeded"] > 0, "the other payments went through"


def test_retrying_a_401_breaks_the_check():
    lab = run("retry", "1s unauthorized 1", until="6s", retry_on="any", max_attempts=4)
    refused = next(r for r in lab.requests.values() if r["token"] == "expired")
    assert len(refused["attempts"]) == 4 and all(code == 401 for _, code in refused["attempts"])
    broken = check(lab, "permanent-not-retried")
    assert not broken["ok"] and refused["id"] in broken["detail"]


@pytest.mark.parametrize("strategy, expected", [
    ("none", []),
    ("immediate", [0, 0, 0]),
    ("fixed", [100, 100, 100]),
    ("exponential", [100, 200, 400]),
])
def test_backoff_schedules(strategy, expected):
    lab = run("retry", "500ms fail 100", "600ms request c1", until="3s", strategy=strategy, rate=0, max_attempts=4)
    delays = [e["delay"] for e in events(lab, "retry")]
    assert delays == expected
    req = lab.requests["r1"]
    assert req["status"] == "failed" and len(req["attempts"]) == len(expected) + 1


def test_full_jitter_stays_under_the_exponential_ceiling():
    lab = run("retry", "500ms fail 100", "600ms clients 30", until="4s", strategy="jitter", rate=0, max_attempts=4)
    by_attempt = {}
    for e in events(lab, "retry"):
        by_attempt.setdefault(e["after"], []).append(e["delay"])
    for n, delays in by_attempt.items():
        ceiling = 100 * 2 ** (n - 1)
        assert all(0 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1, "clients wait different times"


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_comparison_jitter_lowers_peak_and_total_calls(seed):
    lab = run("retry", until="100ms", seed=seed)
    exp, jit = lab.comparison["rows"]
    assert (exp["strategy"], jit["strategy"]) == ("exponential", "jitter")
    assert jit["peak_retries"] < 0.6 * exp["peak_retries"]
    assert jit["calls"] < 0.95 * exp["calls"]
    assert jit["succeeded"] > exp["succeeded"]
    assert check(lab, "jitter-spreads-load")["ok"]


def test_comparison_with_one_client_has_no_herd():
    lab = run("retry", "1s compare 1 500ms", until="2s")
    broken = check(lab, "jitter-spreads-load")
    assert not broken["ok"] and "no herd" in broken["detail"]
    step_lab = run("retry", "1s compare 1 500ms", "2s compare 80 1s", until="3s")
    assert check(step_lab, "jitter-spreads-load")["ok"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_live_burst_through_outage_jitter_vs_plain_exponential(seed):
    """The same claim measured in the live lab itself (one run each, no averaging)."""
    do = ("500ms outage 500ms", "500ms clients 50")
    exp = run("retry", *do, seed=seed, until="20s", strategy="exponential", rate=0)
    jit = run("retry", *do, seed=seed, until="20s", strategy="jitter", rate=0)
    assert jit.metrics["peak_retries"] < 0.6 * exp.metrics["peak_retries"]
    assert jit.metrics["calls"] < exp.metrics["calls"]
    assert exp.metrics["peak_calls"] >= 50  # the first burst: everyone at once


def test_retry_budget_limits_the_retry_storm():
    do = ("500ms outage 2s", "500ms clients 60")
    free = run("retry", *do, until="15s", rate=0, strategy="immediate")
    budget = run("retry", *do, until="15s", rate=0, strategy="immediate", budget=10)
    assert budget.metrics["budget_refused"] > 0
    assert budget.metrics["retries"] < free.metrics["retries"] / 3


def test_outage_then_recovery():
    lab = run("retry", "1s outage 1s", until="1.9s", strategy="exponential")
    assert any(e["code"] == 503 for e in events(lab, "answer"))
    assert lab.snapshot()["faults"]["outage_ms"] > 0
    lab.run_until(8000)
    assert lab.metrics["succeeded"] >= 30 and lab.metrics["success_rate"] > 90


def test_service_crash_keeps_its_keys_on_disk():
    lab = run("retry", "1s crash service", "2s restart service", until="6s")
    assert any(e["code"] == "timeout" for e in lab.log if e["kind"] == "answer")
    assert lab.nodes["service"].disk["ledger"] and lab.nodes["service"].disk["keys"]
    assert check(lab, "no-duplicate-charges")["ok"]


def test_paused_service_answers_409_to_a_repeat_in_progress():
    """A pause holds the first attempt and its retries; on resume the first claims the key and
    the repeats find it in progress (409), so they are retried later and never charge."""
    lab = run("retry", "1s pause service", "2.5s resume service", until="8s", timeout_ms=300)
    assert any(e["code"] == 409 for e in events(lab, "answer"))
    assert lab.metrics["duplicate_charges"] == 0 and check(lab, "no-duplicate-charges")["ok"]


def test_bad_commands_are_rejected_without_change():
    from simulations.kernel import SimError
    lab = run("retry", until="1s")
    for name, args in [("request", ["service"]), ("clients", ["0"]), ("fail", ["120"]), ("outage", ["soon"]),
                       ("compare", ["500"])]:
        with pytest.raises(SimError):
            lab.apply(name, args)


def test_snapshot_has_the_views():
    lab = run("retry", "1s outage 300ms", until="3s")
    snap = lab.snapshot()
    assert snap["load"]["calls"] and snap["timeline"]["rows"]
    assert {n["role"] for n in snap["nodes"]} == {"service", "client"}
    assert set(positions(snap)) == {"service", "c1", "c2", "c3"}


@pytest.mark.parametrize("budget,retries", [(10, 12), (50, 36), (100, 66)])
def test_the_retry_budget_percentage_caps_retries_in_a_burst(budget, retries):
    # Issue 7, point 13: 60 requests over 3 clients deposit budget% of a token each,
    # on top of a reserve of 2 retries per client: 3 * (2 + 20 * budget / 100).
    lab = run("retry", "100 outage 1s", "100 clients 60", until="6s", rate=0, strategy="immediate", budget=budget)
    assert lab.metrics["retries"] == retries
    assert lab.metrics["budget_refused"] == 60  # every request ends refused: the outage outlasts the budget
    free = run("retry", "100 outage 1s", "100 clients 60", until="6s", rate=0, strategy="immediate")
    assert free.metrics["retries"] == 300  # no budget: 5 retries each


def test_the_retry_budget_refills_after_its_window():
    lab = run("retry", "100 outage 500", "100 clients 30", until="5s", rate=0, strategy="immediate", budget=10)
    spent = lab.metrics["retries"]
    assert lab.nodes["c1"].balance() < 1
    step(lab, "20s", "15s outage 500", "15s clients 30")  # the old deposits and withdrawals have expired
    assert lab.metrics["retries"] == 2 * spent


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_without_contention_jitter_still_lowers_the_peak_and_the_check_does_not_claim_fewer_calls(seed):
    # Issue 7, point 13: capacity=20 takes most of each lock-step wave.
    lab = run("retry", seed=seed, until="1s", capacity=20)
    exp, jit = lab.comparison["rows"]
    assert not lab.comparison["contention"]
    assert jit["peak_retries"] < exp["peak_retries"]
    c = check(lab, "jitter-spreads-load")
    assert c["ok"] and "saves no calls" in c["detail"]


def test_under_contention_jitter_must_save_calls_too():
    lab = run("retry", seed=1, until="1s", capacity=5)
    assert lab.comparison["contention"]
    exp, jit = lab.comparison["rows"]
    assert jit["calls"] < exp["calls"] and check(lab, "jitter-spreads-load")["ok"]
