"""The clock through the page, as a teacher uses it: freeze holds time still,
step shows one event at a time, play carries on, slow speeds are slow."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from simulations import get_lab
from simulations.kernel import replay

pytestmark = pytest.mark.browser

LIVE = "[data-run-id]"
META = "[data-run-id] .meta[data-seq]"


def shown(page) -> dict:
    el = page.locator(META)
    return {"t": float(el.get_attribute("data-t")), "seq": int(el.get_attribute("data-seq")),
            "wall": float(el.get_attribute("data-wall"))}


def test_freeze_step_and_play(open_lab):
    page = open_lab("leader-election", algorithm="bully", nodes=5)
    rid = page.get_attribute(LIVE, "data-run-id")
    expect(page.locator(LIVE)).to_have_attribute("data-frozen", "false")
    page.click('[data-control="freeze"]')
    expect(page.locator(LIVE)).to_have_attribute("data-frozen", "true")
    expect(page.locator(f"#flash-{rid}")).to_contain_text("Clock frozen")
    frozen = shown(page)
    until = time.monotonic() + 3
    while time.monotonic() < until:  # three seconds of a frozen clock
        assert shown(page)["t"] == frozen["t"], "simulated time moved while frozen"
        page.wait_for_timeout(150)

    # Each step: exactly the next event of this run (checked against a replay).
    scenario = page.request.get(f"/runs/{rid}/scenario.json").json()
    twin = replay(get_lab("leader-election"), scenario["params"], scenario["seed"],
                  [(c["t"], c["action"], c["args"]) for c in scenario["commands"]], frozen["t"])
    for _ in range(3):
        before = shown(page)
        twin.step()
        page.click("[data-step-event]")
        page.wait_for_function(f"+document.querySelector('{META}').dataset.wall > {before['wall']}")
        after = shown(page)
        assert (after["t"], after["seq"]) == (round(twin.now, 3), twin.seq)
        expect(page.locator(LIVE)).to_have_attribute("data-frozen", "true")
    stepped = shown(page)

    page.click('[data-control="play"]')
    expect(page.locator(LIVE)).to_have_attribute("data-frozen", "false")
    page.wait_for_function(f"+document.querySelector('{META}').dataset.t > {stepped['t']}")
    # Play goes on from where the steps left it, not from the wall clock.
    assert shown(page)["t"] - stepped["t"] < 1500


@pytest.mark.parametrize("speed", ["0.25", "0.05"])
def test_slow_speeds_run_at_their_rate(open_lab, speed):
    page = open_lab("circuit-breaker")
    page.select_option('[data-control="speed"]', speed)
    expect(page.locator(LIVE)).to_have_attribute("data-speed", speed)
    first = shown(page)
    page.wait_for_function(f"+document.querySelector('{META}').dataset.wall >= {first['wall'] + 5000}",
                           timeout=20_000)
    last = shown(page)
    rate = (last["t"] - first["t"]) / (last["wall"] - first["wall"])
    assert abs(rate - float(speed)) <= 0.2 * float(speed), f"ran at {rate:.3f}x, not {speed}x"
    expect(page.locator(LIVE)).to_have_attribute("data-frozen", "false")
