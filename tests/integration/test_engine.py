"""The live engine against a real stack: the clock obeys (freeze, speed,
step), and "drive run X" messages are idempotent and never revive a run
nobody watches."""

from __future__ import annotations

import re
import time

import pytest
from celery import Celery
from playwright.sync_api import expect

from pattern_lab.runs import wire
from simulations import get_lab
from simulations.kernel import replay

from .helpers import post, stack_redis

pytestmark = pytest.mark.integration

LIVE = "[data-run-id]"


def meta(page) -> dict:
    """What the latest frame said: seq, simulated t, server wall time (ms)."""
    rid = page.get_attribute(LIVE, "data-run-id")
    el = page.locator(f"#meta-{rid}")
    return {"seq": int(el.get_attribute("data-seq")), "t": float(el.get_attribute("data-t")),
            "wall": float(el.get_attribute("data-wall"))}


def clock(page, control: str, **form):
    rid = page.get_attribute(LIVE, "data-run-id")
    resp = post(page, f"/runs/{rid}/clock/", control=control, **form)
    assert resp.status == 200, resp.text()
    return resp


def wait_wall(page, after_ms: float):
    """Until a frame rendered `after_ms` or later is on the page."""
    page.wait_for_function(
        f"+document.querySelector('[id^=meta-]').dataset.wall >= {after_ms}", timeout=20_000)


def celery_app(stack) -> Celery:
    url = stack.redis_url
    return Celery(broker="redis+socket://" + url[len("unix://"):] if url.startswith("unix://") else url)


def queue_drained(r, deadline_s: float = 20):
    deadline = time.monotonic() + deadline_s
    while r.llen("celery"):
        assert time.monotonic() < deadline, "the worker never took the queued messages"
        time.sleep(0.05)


def test_freeze_holds_time_still_and_play_resumes_where_it_stopped(open_lab):
    page = open_lab("leader-election")
    clock(page, "freeze")
    expect(page.locator(LIVE)).to_have_attribute("data-frozen", "true")
    frozen = meta(page)
    held_until = time.monotonic() + 3
    while time.monotonic() < held_until:  # 3 s of watching the clock
        assert float(page.get_attribute("[id^=meta-]", "data-t")) == frozen["t"], "time moved while frozen"
        page.wait_for_timeout(100)
    clock(page, "play")
    expect(page.locator(LIVE)).to_have_attribute("data-frozen", "false")
    page.wait_for_function(f"+document.querySelector('[id^=meta-]').dataset.t > {frozen['t']}")
    resumed = meta(page)
    # Play picks up where freeze left it: no jump over the 3 s it was frozen.
    assert resumed["t"] - frozen["t"] < 1500, (frozen, resumed)


@pytest.mark.parametrize("speed", ["0.25", "0.05"])
def test_slow_speeds_advance_at_their_rate(open_lab, speed):
    page = open_lab("leader-election")
    clock(page, "speed", speed=speed)
    expect(page.locator(LIVE)).to_have_attribute("data-speed", speed)
    first = meta(page)
    wait_wall(page, first["wall"] + 5000)
    last = meta(page)
    rate = (last["t"] - first["t"]) / (last["wall"] - first["wall"])
    assert abs(rate - float(speed)) <= 0.2 * float(speed), f"ran at {rate:.3f}x, not {speed}x"


def test_step_does_exactly_the_next_event(open_lab):
    page = open_lab("leader-election", algorithm="bully", nodes=5)
    rid = page.get_attribute(LIVE, "data-run-id")
    page.click('[data-action="crash"][data-target="n5"]')
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-status", "down")
    clock(page, "freeze")
    expect(page.locator(LIVE)).to_have_attribute("data-frozen", "true")
    frozen = meta(page)
    # The same run, rebuilt from its log up to the frozen time, stepped by hand.
    scenario = page.request.get(f"/runs/{rid}/scenario.json").json()
    twin = replay(get_lab("leader-election"), scenario["params"], scenario["seed"],
                  [(c["t"], c["action"], c["args"]) for c in scenario["commands"]], frozen["t"])
    assert twin.seq == frozen["seq"]
    for _ in range(4):
        before = meta(page)
        twin.step()
        clock(page, "step")
        page.wait_for_function(
            f"+document.querySelector('[id^=meta-]').dataset.wall > {before['wall']}", timeout=10_000)
        now = meta(page)
        assert (now["t"], now["seq"]) == (round(twin.now, 3), twin.seq), "a step did more or less than one event"
    # And time stays where the last step left it.
    stepped = meta(page)
    page.wait_for_timeout(1000)
    assert meta(page)["t"] == stepped["t"]


@pytest.mark.parametrize("own_stack", [{"workers": 2}], indirect=True)  # two workers compete for the messages
def test_duplicated_start_messages_never_make_two_actors(own_stack, open_own_lab):
    stack = own_stack
    stack.wait_workers()
    r = stack_redis(stack)
    app = celery_app(stack)
    try:
        page = open_own_lab("leader-election")
        rid = page.get_attribute(LIVE, "data-run-id")
        frames = r.pubsub(ignore_subscribe_messages=True)
        frames.subscribe(f"frames:{rid}")
        holder = r.get(f"run:{rid}:lease")
        for _ in range(50):
            app.send_task("pattern_lab.runs.tasks.drive_run", args=[rid])
        queue_drained(r)
        seen = []
        until = time.monotonic() + 3
        while time.monotonic() < until:
            msg = frames.get_message(timeout=0.2)
            if msg:
                head = wire.head(wire.unpack(msg["data"])[1])
                seen.append((head["seq"], head["prev"]))
        frames.close()
        assert r.get(f"run:{rid}:lease") == holder, "another actor took the run"
        assert int(r.get(f"run:{rid}:fence")) == int(holder), "a second actor acquired the run"
        assert len(seen) > 5
        # One actor: every frame follows the previous one, seq never goes back.
        for (seq0, _), (seq1, prev1) in zip(seen, seen[1:]):
            assert prev1 == seq0 and seq1 >= seq0, seen
    finally:
        app.close()


def test_a_queued_start_for_an_abandoned_run_is_dropped(stack, page):
    r = stack_redis(stack)
    app = celery_app(stack)
    try:
        # Opened and left before its socket ever connected: nobody watches it.
        html = page.request.get("/patterns/leader-election/?fresh=1").text()
        rid = re.search(r'data-run-id="(\w+)"', html).group(1)
        for _ in range(20):
            app.send_task("pattern_lab.runs.tasks.drive_run", args=[rid])
        queue_drained(r)
        page.wait_for_timeout(500)  # a started actor would have published by now
        assert not r.exists(f"run:{rid}:lease"), "an abandoned run was brought back"
        assert not r.exists(f"run:{rid}:full")
        assert int(r.get(f"run:{rid}:fence") or 0) == 0, "an actor took the abandoned run"
        # A viewer arriving later still gets it started.
        page.goto(f"/patterns/leader-election/?run={rid}")
        page.wait_for_selector('[data-connected="true"]')
        page.wait_for_selector("[data-node]")
    finally:
        app.close()
