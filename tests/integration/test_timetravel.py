"""Time travel over HTTP: permalinks are read-only and open to anyone; bad
moments and unknown runs get a clear 4xx; fork-at and rewind."""

import pytest
from playwright.sync_api import expect

from .helpers import post

pytestmark = pytest.mark.integration

LIVE = "[data-run-id]"


def crash_n5_and_wait(page):
    rid = page.get_attribute(LIVE, "data-run-id")
    page.click(f'#nodes-{rid} [data-action="crash"][data-target="n5"]')
    expect(page.locator('g[data-node="n5"]')).to_have_attribute("data-status", "down")
    crash = next(m for m in page.request.get(f"/runs/{rid}/history.json").json()["marks"] if m[2] == "crash")
    return rid, crash[0]


def test_permalink_shows_the_moment_read_only_to_anyone(open_lab, browser, stack):
    page = open_lab("leader-election", algorithm="bully", nodes=5)
    rid, crash_t = crash_n5_and_wait(page)
    stranger = browser.new_context(base_url=stack.base_url).new_page()
    try:
        for t, status in ((crash_t - 1, "up"), (crash_t, "down")):
            resp = stranger.goto(f"/runs/{rid}/at/{t:g}/")
            assert resp.status == 200
            expect(stranger.locator(LIVE)).to_have_attribute("data-view", "past")
            expect(stranger.locator('g[data-node="n5"]')).to_have_attribute("data-status", status)
            expect(stranger.locator("h1")).to_contain_text("at t =")
            # Read-only: no node buttons, no command form; the diagram is drawn.
            assert stranger.locator("[data-action]").count() == 0
            assert stranger.locator("form.cmd").count() == 0
            expect(stranger.locator("[data-diagram] [data-lane]")).to_have_count(5)
        # The same link shows the same bytes of cluster later on.
        first = stranger.goto(f"/runs/{rid}/at/{crash_t:g}/").text()
        again = stranger.goto(f"/runs/{rid}/at/{crash_t:g}/").text()
        cluster = lambda html: html[html.index('id="cluster-'):html.index("</svg>")]  # noqa: E731
        assert cluster(first) == cluster(again)
        # A stranger may fork from the moment (a run of their own) but not rewind the owner's run.
        stranger.goto(f"/runs/{rid}/at/{crash_t - 1:g}/")
        stranger.click("[data-fork-here]")
        expect(stranger.locator(LIVE)).to_have_attribute("data-owner", "true")
        expect(stranger.locator('g[data-node="n5"]')).to_have_attribute("data-status", "up")
        assert stranger.get_attribute(LIVE, "data-run-id") != rid
        resp = post(stranger, f"/runs/{rid}/fork-at/", t=str(crash_t), rewind="1")
        assert resp.status == 403 and "owner can rewind it" in resp.text()
    finally:
        stranger.context.close()


def test_owner_rewinds_to_a_moment(open_lab):
    page = open_lab("leader-election", algorithm="bully", nodes=5)
    rid, crash_t = crash_n5_and_wait(page)
    page.locator("[data-timeline]").fill(str(int(crash_t) - 100))
    expect(page.locator('g[data-node="n5"]')).to_have_attribute("data-status", "up")
    page.click("[data-rewind]")
    page.wait_for_url(lambda url: rid not in url)
    expect(page.locator(LIVE)).to_have_attribute("data-connected", "true")
    expect(page.locator('g[data-node="n5"]')).to_have_attribute("data-status", "up")
    new = page.get_attribute(LIVE, "data-run-id")
    commands = page.request.get(f"/runs/{new}/scenario.json").json()["commands"]
    assert commands == []  # the crash came after the moment


@pytest.mark.parametrize("query, status, message", [
    ("t=-5", 400, "must be 0 or more"),
    ("t=soon", 400, "must be a number of milliseconds"),
    ("t=nan", 400, "finite number"),
    ("", 400, "Give the moment as t="),
    ("t=99999999", 404, "is in its future"),
])
def test_bad_moments_get_a_clear_4xx(open_lab, query, status, message):
    page = open_lab("leader-election")
    rid = page.get_attribute(LIVE, "data-run-id")
    resp = page.request.get(f"/runs/{rid}/seek/?{query}")
    assert resp.status == status and message in resp.json()["error"]


@pytest.mark.parametrize("path, status, message", [
    ("/runs/ffffffffffff/at/100/", 404, "There is no run"),
    ("/runs/{rid}/at/-1/", 400, "must be 0 or more"),
    ("/runs/{rid}/at/abc/", 400, "must be a number of milliseconds"),
    ("/runs/{rid}/at/99999999/", 404, "is in its future"),
])
def test_bad_permalinks_get_a_clear_page(open_lab, path, status, message):
    page = open_lab("leader-election")
    rid = page.get_attribute(LIVE, "data-run-id")
    resp = page.goto(path.format(rid=rid))
    assert resp.status == status
    expect(page.locator("[role=alert]")).to_contain_text(message)
    assert "Traceback" not in page.content()


def test_unknown_run_and_bad_windows(page):
    resp = page.request.get("/runs/ffffffffffff/seek/?t=1")
    assert resp.status == 404 and "There is no run" in resp.json()["error"]
    resp = page.request.get("/runs/ffffffffffff/history.json")
    assert resp.status == 404
    page.goto("/patterns/leader-election/?fresh=1")
    page.wait_for_selector('[data-run-id][data-connected="true"]')
    page.wait_for_function("+document.querySelector('[data-timeline]').max > 1500")
    rid = page.get_attribute(LIVE, "data-run-id")
    ok = page.request.get(f"/runs/{rid}/history.json?from=0&to=1000").json()
    assert ok["from"] == 0 and any(e[0] == "s" for e in ok["events"])
    resp = page.request.get(f"/runs/{rid}/history.json?from=1000&to=500")
    assert resp.status == 400 and "from must not be after to" in resp.json()["error"]
    resp = post(page, f"/runs/{rid}/fork-at/", t="-3")
    assert resp.status == 400
