"""Time travel on a lab page: the timeline shows the past exactly, steps one
event at a time, forks from a moment; the space-time diagram shows lost
messages; a broken check's link moves the timeline to the breaking event."""

import re

import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser

LIVE = "[data-run-id]"


def shown_t(page) -> float:
    return float(page.get_attribute(LIVE, "data-t"))


def marks(page, rid):
    return page.request.get(f"/runs/{rid}/history.json").json()["marks"]


def test_leader_election_look_back_step_and_fork(open_lab):
    page = open_lab("leader-election", algorithm="bully", nodes=5)
    rid = page.get_attribute(LIVE, "data-run-id")
    expect(page.locator('g[data-node="n5"]')).to_have_attribute("data-role", "leader")
    # Let the run get a second in, so that there is a "before the crash" to look back at.
    page.wait_for_function(f"+document.getElementById('meta-{rid}').dataset.t >= 1000")
    page.click(f'#nodes-{rid} [data-action="crash"][data-target="n5"]')
    expect(page.locator('g[data-node="n4"]')).to_have_attribute("data-role", "leader", timeout=20_000)
    crash_t = next(m[0] for m in marks(page, rid) if m[2] == "crash")
    assert crash_t >= 1000

    # Move the timeline to before the crash: n5 is up and leads again, on screen.
    before = int(crash_t) - 200
    timeline = page.locator("[data-timeline]")
    timeline.fill(str(before))
    expect(page.locator(LIVE)).to_have_attribute("data-view", "past")
    expect(page.locator(LIVE)).to_have_attribute("data-t", str(before))
    expect(page.locator('g[data-node="n5"]')).to_have_attribute("data-status", "up")
    expect(page.locator('g[data-node="n5"]')).to_have_attribute("data-role", "leader")
    expect(page.locator(".past-banner")).to_contain_text("You are looking at the past")
    # The checks and the log are as they were: no crash yet, nothing after the moment.
    for check in page.locator("[data-check]").all():
        expect(check).to_have_attribute("data-ok", "true")
    expect(page.locator("ol.log li", has_text="n5 crashed")).to_have_count(0)
    for stamp in page.locator("ol.log li time").all_inner_texts():
        assert float(stamp.rstrip("s")) * 1000 <= before
    # Live frames keep arriving (the timeline's end moves on) but do not overwrite the past.
    end = float(timeline.get_attribute("max"))
    page.wait_for_function(f"+document.querySelector('[data-timeline]').max > {end + 300}")
    expect(page.locator('g[data-node="n5"]')).to_have_attribute("data-role", "leader")
    screenshot(page, "timetravel-before-crash")

    # Step forward one event at a time until n5 is down.
    for _ in range(20):
        if page.locator('g[data-node="n5"][data-status="down"]').count():
            break
        t = page.get_attribute(LIVE, "data-t")
        page.click("[data-step-forward]")
        expect(page.locator(LIVE)).not_to_have_attribute("data-t", t)
        page.wait_for_timeout(150)  # let the swapped fragments settle before reading them
    expect(page.locator('g[data-node="n5"]')).to_have_attribute("data-status", "down")
    assert shown_t(page) == crash_t
    expect(page.locator("ol.log li", has_text="n5 crashed")).to_have_count(1)

    # One step back is the moment before the crash; fork from there.
    page.click("[data-step-back]")
    expect(page.locator('g[data-node="n5"]')).to_have_attribute("data-status", "up")
    assert shown_t(page) < crash_t
    page.click("[data-fork-here]")
    page.wait_for_url(re.compile(r"\?run=(?!" + rid + ")"))
    expect(page.locator(LIVE)).to_have_attribute("data-connected", "true")
    new_rid = page.get_attribute(LIVE, "data-run-id")
    assert new_rid != rid
    expect(page.locator(LIVE)).to_have_attribute("data-owner", "true")
    expect(page.locator(LIVE)).to_have_attribute("data-view", "live")
    expect(page.locator('g[data-node="n5"]')).to_have_attribute("data-status", "up")
    expect(page.locator('g[data-node="n5"]')).to_have_attribute("data-role", "leader")
    # Its own controls work.
    page.click(f'#nodes-{new_rid} [data-action="crash"][data-target="n5"]')
    expect(page.locator('g[data-node="n5"]')).to_have_attribute("data-status", "down", timeout=10_000)
    expect(page.locator('g[data-node="n4"]')).to_have_attribute("data-role", "leader", timeout=20_000)


def test_split_brain_diagram_shows_lost_messages_and_check_link_moves_the_timeline(open_lab):
    page = open_lab("split-brain", mode="naive")
    rid = page.get_attribute(LIVE, "data-run-id")
    expect(page.locator("[data-diagram] [data-lane]")).to_have_count(5)
    page.click('.sb-quick [data-action="partition"][data-args="n1,n2|n3,n4,n5"]')
    # The live diagram shows the messages the partition kills, with the reason.
    lost = page.locator('[data-msg][data-fate="lost"][data-reason="partition"]')
    expect(lost.first).to_be_attached(timeout=10_000)
    expect(page.locator('[data-rack="rack A"]')).to_have_attribute("data-leaders", "1", timeout=15_000)
    page.click('.sb-quick [data-action="write"][data-target="n1"]')
    expect(page.locator('[data-write="w1"]')).to_have_attribute("data-client", "ok", timeout=10_000)
    page.click('.sb-quick [data-action="write"][data-target="n3"]')
    expect(page.locator('[data-write="w2"]')).to_have_attribute("data-client", "ok", timeout=10_000)
    check = page.locator('[data-check="single-writer"]')
    expect(check).to_have_attribute("data-ok", "false")
    screenshot(page, "timetravel-split-brain-live")
    link = check.locator("[data-seq-link]")
    seq = int(link.get_attribute("data-seq-link"))
    breaking = next(m for m in marks(page, rid) if m[1] == seq)
    link.click()
    # The timeline moves to the breaking event: the past view at its moment,
    # the check just broken, the event selected in the log.
    expect(page.locator(LIVE)).to_have_attribute("data-view", "past")
    page.wait_for_function(f"+document.querySelector('[data-run-id]').dataset.t === {breaking[0]!r}")
    assert float(page.locator("[data-timeline]").input_value()) == pytest.approx(breaking[0], abs=1)
    expect(page.locator('[data-check="single-writer"]')).to_have_attribute("data-ok", "false")
    expect(page.locator(f'ol.log li[data-seq="{seq}"]')).to_have_class(re.compile("selected"))
    # The diagram follows the scrubber and still shows what the partition lost.
    expect(page.locator('[data-msg][data-fate="lost"][data-reason="partition"]').first).to_be_attached()
    screenshot(page, "timetravel-split-brain-past")
    # One step back: the check held.
    page.click("[data-step-back]")
    expect(page.locator('[data-check="single-writer"]')).to_have_attribute("data-ok", "true")
    page.click("[data-back-to-live]")
    expect(page.locator(LIVE)).to_have_attribute("data-view", "live")
    expect(page.locator('[data-check="single-writer"]')).to_have_attribute("data-ok", "false")


def test_keyboard_and_narrow_screen(browser, stack):
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=stack.base_url)
    page = context.new_page()
    try:
        page.goto("/patterns/leader-election/?fresh=1")
        page.wait_for_selector('[data-run-id][data-connected="true"]')
        page.wait_for_function("+document.querySelector('[data-timeline]').max > 2500")
        timeline = page.locator("[data-timeline]")
        timeline.focus()
        page.keyboard.press("Home")
        expect(page.locator(LIVE)).to_have_attribute("data-view", "past")
        expect(page.locator(LIVE)).to_have_attribute("data-t", "0")
        page.keyboard.press("ArrowRight")
        expect(page.locator(LIVE)).not_to_have_attribute("data-t", "0")
        page.keyboard.press("End")
        expect(page.locator(LIVE)).to_have_attribute("data-view", "live")
        # Nothing sticks out sideways at 390 px.
        assert page.evaluate("document.documentElement.scrollWidth") <= 392
        screenshot(page, "timetravel-390")
    finally:
        context.close()
