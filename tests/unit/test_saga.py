"""Saga: orchestration and choreography, as PATTERNS.md and the issue ask."""

import pytest

from pattern_lab.runs.layouts import LAYOUTS
from simulations.kernel import SimError

from ..simhelpers import check, events, nodes, run, step

MODES = ["orchestration", "choreography"]
STEPS = ("product", "price", "metadata")


def rows(lab, service):
    return nodes(lab)[service]["rows"]


def sagas(lab):
    return {s["id"]: s for s in lab.snapshot()["sagas"]}


def compensations(saga):
    return [e["service"] for e in saga["steps"] if e["do"] == "compensate"]


# -- the example ----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_failing_price_compensates_and_product_rows_come_back(mode, seed):
    """`fail-step price always` then `create-product`: compensated, product rows as before."""
    lab = run("saga", "500ms create-product", seed=seed, until="3s", mode=mode)
    before = rows(lab, "product")
    assert len(before) == 1 and sagas(lab)["s1"]["status"] == "completed"
    step(lab, "8s", "3s fail-step price always", "3s create-product")
    saga = sagas(lab)["s2"]
    assert saga["status"] == "compensated"
    assert rows(lab, "product") == before  # the product row of s2 was created, then undone
    assert rows(lab, "price") == [r for r in rows(lab, "price") if r["saga"] == "s1"]
    assert [(e["service"], e["do"], e["status"]) for e in saga["steps"]] == [
        ("product", "create", "done"), ("price", "create", "failed"), ("product", "compensate", "done")]
    assert all(c["ok"] for c in lab.snapshot()["checks"])


@pytest.mark.parametrize("mode", MODES)
def test_happy_path_creates_one_row_per_service(mode):
    lab = run("saga", "100ms create-product", "200ms create-product", until="5s", mode=mode)
    assert [s["status"] for s in sagas(lab).values()] == ["completed", "completed"]
    for service in STEPS:
        assert sorted(r["saga"] for r in rows(lab, service)) == ["s1", "s2"]
    snap = lab.snapshot()
    roles = {n["id"]: n["role"] for n in snap["nodes"]}
    assert roles == {("orchestrator" if mode == "orchestration" else "bus"):
                     ("coordinator" if mode == "orchestration" else "bus"),
                     "product": "service", "price": "service", "metadata": "service"}
    assert set(LAYOUTS["saga"](snap)) == set(roles) and len(snap["edges"]) == 3  # the drawing places every node
    assert snap["metrics"]["completed"] == 2


# -- check: completed or fully compensated ------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_metadata_failure_undoes_price_then_product(mode):
    lab = run("saga", "0 fail-step metadata always", "100ms create-product", until="6s", mode=mode)
    saga = sagas(lab)["s1"]
    assert saga["status"] == "compensated"
    assert compensations(saga) == ["price", "product"]  # reverse order
    assert saga["created"] == ["product", "price"] and saga["undone"] == ["price", "product"]
    assert all(rows(lab, s) == [] for s in STEPS)
    assert check(lab, "completed-or-compensated")["ok"] and check(lab, "reverse-order")["ok"]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("mode", MODES)
def test_random_failures_always_end_all_or_nothing(mode, seed):
    do = ["0 fail-step price 30", "0 fail-step metadata 30"] + [f"{i * 250}ms create-product" for i in range(1, 9)]
    lab = run("saga", *do, seed=seed, until="15s", mode=mode)
    statuses = [s["status"] for s in sagas(lab).values()]
    assert set(statuses) <= {"completed", "compensated"} and len(statuses) == 8
    completed = sorted(s for s, v in sagas(lab).items() if v["status"] == "completed")
    for service in STEPS:
        assert sorted(r["saga"] for r in rows(lab, service)) == completed  # never a product without a price
    assert check(lab, "completed-or-compensated")["ok"]


def test_fail_step_next_n_fails_exactly_n_attempts():
    do = ["0 fail-step price next 2"] + [f"{i}s create-product" for i in (1, 3, 5)]
    lab = run("saga", *do, until="8s")
    assert [s["status"] for s in sagas(lab).values()] == ["compensated", "compensated", "completed"]
    assert lab.snapshot()["step_faults"] == {}


def test_a_compensation_that_never_succeeds_fails_the_saga_and_the_check():
    """Price is down for good: the orchestrator gives up on price, cannot undo it, and the
    saga ends failed with the product left behind -- the check says so."""
    lab = run("saga", "50ms crash price", "100ms create-product", until="40s")
    saga = sagas(lab)["s1"]
    assert saga["status"] == "failed"
    assert rows(lab, "product") and not check(lab, "completed-or-compensated")["ok"]
    assert check(lab, "completed-or-compensated")["seq"] is not None


def test_the_same_outage_heals_when_price_comes_back():
    lab = run("saga", "50ms crash price", "100ms create-product", "8s restart price", until="40s")
    saga = sagas(lab)["s1"]
    assert saga["status"] == "compensated"
    assert [e["status"] for e in saga["steps"] if e["do"] == "create" and e["service"] == "price"] == ["timeout"]
    assert compensations(saga) == ["price", "product"]  # price may have run: it is undone too
    assert all(rows(lab, s) == [] for s in STEPS)
    assert check(lab, "completed-or-compensated")["ok"]


# -- check: compensations in reverse order ----------------------------------------------------


def test_reverse_order_check_catches_an_orchestrator_that_undoes_oldest_first():
    lab = run("saga", until="10ms")
    lab.nodes["orchestrator"].compensation_plan = lambda executed: list(executed)  # a buggy plan
    step(lab, "6s", "20ms fail-step metadata always", "100ms create-product")
    assert compensations(sagas(lab)["s1"]) == ["product", "price"]
    assert not check(lab, "reverse-order")["ok"]


def test_reverse_order_check_catches_a_choreography_shortcut():
    """If product also reacted to metadata-failed, it could undo itself before price does."""
    lab = run("saga", until="10ms", mode="choreography")
    lab.subscribers["metadata-failed"] = ["price", "product"]
    step(lab, "8s", "20ms fail-step metadata always", "30ms slow price 600", "100ms create-product")
    assert sagas(lab)["s1"]["undone"][:2] == ["product", "price"]
    assert not check(lab, "reverse-order")["ok"]


# -- check: a restarted orchestrator (or bus) resumes from its log --------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_restarted_orchestrator_resumes_from_its_durable_log(seed):
    lab = run("saga", "100ms create-product", "200ms create-product", "600ms crash orchestrator",
              "2s restart orchestrator", seed=seed, until="8s")
    resumed = [e["saga"] for e in events(lab, "saga-resumed")]
    assert resumed == ["s1", "s2"]
    assert [s["status"] for s in sagas(lab).values()] == ["completed", "completed"]
    assert check(lab, "resumes-from-log")["ok"] and "resumed 2" in check(lab, "resumes-from-log")["detail"]
    assert all(len(rows(lab, s)) == 2 for s in STEPS)


def test_restarted_orchestrator_resumes_a_compensation_in_reverse_order():
    lab = run("saga", "0 fail-step metadata always", "100ms create-product", until="1s")
    # run until the orchestrator has decided to compensate, then crash it
    while sagas(lab)["s1"]["status"] != "compensating":
        step(lab, lab.now + 20)
    step(lab, lab.now + 300, f"{lab.now + 1} crash orchestrator")
    step(lab, lab.now + 6000, f"{lab.now + 1500} restart orchestrator")
    saga = sagas(lab)["s1"]
    assert saga["status"] == "compensated" and saga["undone"] == ["price", "product"]
    assert check(lab, "resumes-from-log")["ok"] and check(lab, "reverse-order")["ok"]


def test_orchestrator_with_a_memory_log_forgets_the_saga():
    """log=memory: the restart loses the saga; the product stays without its metadata."""
    lab = run("saga", "100ms create-product", "600ms crash orchestrator", "2s restart orchestrator",
              until="25s", log="memory")
    assert not check(lab, "resumes-from-log")["ok"]
    assert sagas(lab)["s1"]["status"] == "running"
    assert len(rows(lab, "product")) == 1 and rows(lab, "metadata") == []
    assert not check(lab, "completed-or-compensated")["ok"]  # stuck: a product without a price


def test_restarted_bus_redelivers_from_its_durable_log():
    lab = run("saga", "0 cut bus price", "100ms create-product", "1500ms crash bus", "2s heal",
              "3s restart bus", until="10s", mode="choreography")
    assert sagas(lab)["s1"]["status"] == "completed"
    assert check(lab, "resumes-from-log")["ok"]
    assert all(len(rows(lab, s)) == 1 for s in STEPS)


def test_bus_with_a_memory_log_loses_the_event():
    lab = run("saga", "0 cut bus price", "100ms create-product", "1500ms crash bus", "2s heal",
              "3s restart bus", until="25s", mode="choreography", log="memory")
    assert not check(lab, "resumes-from-log")["ok"]
    assert sagas(lab)["s1"]["status"] == "running" and rows(lab, "price") == []
    assert not check(lab, "completed-or-compensated")["ok"]


# -- check: idempotent handlers, no duplicate rows -------------------------------------------------


@pytest.mark.parametrize("mode, link", [("orchestration", "orchestrator price"), ("choreography", "bus price")])
def test_duplicated_message_is_ignored_by_idempotent_handlers(mode, link):
    lab = run("saga", f"100ms duplicate-next {link}", "100ms create-product", until="5s", mode=mode)
    assert [e for e in lab.log if e["kind"] == "send" and e.get("copy")]
    assert len(rows(lab, "price")) == 1
    assert lab.snapshot()["metrics"]["duplicates_ignored"] >= 1
    assert check(lab, "no-duplicate-rows")["ok"] and check(lab, "completed-or-compensated")["ok"]


@pytest.mark.parametrize("mode, link", [("orchestration", "orchestrator price"), ("choreography", "bus price")])
def test_duplicated_message_creates_a_second_row_without_idempotency(mode, link):
    lab = run("saga", f"100ms duplicate-next {link}", "100ms create-product", until="5s", mode=mode,
              idempotent="off")
    assert len(rows(lab, "price")) == 2
    assert not check(lab, "no-duplicate-rows")["ok"]
    assert not check(lab, "completed-or-compensated")["ok"]


@pytest.mark.parametrize("idempotent, price_rows", [("on", 1), ("off", 2)])
def test_a_slow_service_gets_retries_which_only_idempotency_absorbs(idempotent, price_rows):
    lab = run("saga", "50ms slow price 1200", "100ms create-product", until="10s", idempotent=idempotent)
    assert lab.snapshot()["metrics"]["retries"] >= 1
    assert len(rows(lab, "price")) == price_rows
    assert check(lab, "no-duplicate-rows")["ok"] == (idempotent == "on")


def test_dropped_event_is_redelivered_by_the_bus():
    lab = run("saga", "100ms drop-next bus price", "100ms create-product", until="6s", mode="choreography")
    assert [e for e in lab.log if e["kind"] == "drop" and e["reason"] == "dropped"]
    assert lab.snapshot()["metrics"]["redeliveries"] >= 1
    assert sagas(lab)["s1"]["status"] == "completed"


@pytest.mark.parametrize("idempotent", ["on", "off"])
def test_late_create_after_compensation_is_ignored_thanks_to_the_tombstone(idempotent):
    """Price's CREATEs are held up on a slow link; the orchestrator gives up, the link heals and
    the COMPENSATE overtakes them.  The tombstone makes the late CREATEs no-ops; without
    idempotency they resurrect a price for a product that no longer exists."""
    lab = run("saga", "0 delay orchestrator price 3500", "100ms create-product", "3s heal", until="15s",
              idempotent=idempotent)
    saga = sagas(lab)["s1"]
    assert saga["status"] == "compensated" and rows(lab, "product") == []
    assert [e["status"] for e in saga["steps"] if e["do"] == "create" and e["service"] == "price"] == ["timeout"]
    if idempotent == "on":
        assert rows(lab, "price") == []
        assert check(lab, "completed-or-compensated")["ok"]
    else:
        assert rows(lab, "price")  # a price without a product
        assert not check(lab, "completed-or-compensated")["ok"]


# -- actions and views ---------------------------------------------------------------------------


def test_fail_step_validates_before_changing_anything():
    lab = run("saga", until="100ms")
    for args in (["price", "sometimes"], ["price", "always", "3"], ["price", "150"], ["bus", "always"]):
        with pytest.raises(SimError):
            lab.apply("fail-step", args)
    assert lab.snapshot()["step_faults"] == {}
    lab.apply("fail-step", ["price", "30"])
    lab.apply("fail-step", ["metadata", "next", "2"])
    assert lab.snapshot()["step_faults"] == {"price": "30%", "metadata": "next 2"}
    lab.apply("clear-faults", [])
    assert lab.snapshot()["step_faults"] == {}


def test_create_product_needs_the_entry_service_up():
    lab = run("saga", "100ms crash orchestrator", until="200ms")
    with pytest.raises(SimError, match="orchestrator is down"):
        lab.apply("create-product", [])
    lab = run("saga", "100ms crash product", until="200ms", mode="choreography")
    with pytest.raises(SimError, match="product is down"):
        lab.apply("create-product", [])


def test_snapshot_shapes():
    lab = run("saga", "100ms create-product", until="3s", mode="choreography")
    snap = lab.snapshot()
    saga = snap["sagas"][0]
    assert set(saga) >= {"id", "status", "steps"}
    assert all(set(e) >= {"service", "do", "status"} for e in saga["steps"])
    assert snap["subscriptions"]["product-created"] == ["price"]
    assert all(isinstance(n.get("rows", []), list) for n in snap["nodes"])


def test_a_saga_the_orchestrator_gave_up_on_is_judged_by_its_rows_not_by_its_word():
    """The last COMPENSATE ran but every answer was lost: the orchestrator says failed, yet no row
    is left, so nothing is half done and the check holds (it is judged from the rows)."""
    lab = run("saga", "50ms cut product orchestrator", "100ms create-product", until="60s", timeout="100")
    saga = sagas(lab)["s1"]
    assert saga["status"] == "failed"
    assert all(rows(lab, s) == [] for s in STEPS)
    assert check(lab, "completed-or-compensated")["ok"]
    assert "no row left" in check(lab, "completed-or-compensated")["detail"]


def test_completed_or_compensated_is_shown_not_claimed_since_a_long_outage_ends_a_saga_failed():
    lab = run("saga", "50ms crash price", "100ms create-product", until="40s")
    assert sagas(lab)["s1"]["status"] == "failed" and rows(lab, "product")  # for a human to repair
    assert not check(lab, "completed-or-compensated")["ok"]
    assert "completed-or-compensated" not in lab.invariants()
    assert {"reverse-order", "resumes-from-log", "no-duplicate-rows"} <= set(lab.invariants())
