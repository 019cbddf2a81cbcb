import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser


def test_coordinator_crash_blocks_in_doubt_participants_until_it_recovers(open_lab):
    page = open_lab("two-phase-commit")
    page.click('.tpc-quick [data-action="crash-coordinator"][data-args="after-prepare"]')
    expect(page.locator(".tpc-coord .tpc-armed")).to_contain_text("after-prepare")
    page.click('.tpc-quick [data-action="begin"]')
    expect(page.locator('[data-node="coordinator"]')).to_have_attribute("data-status", "down", timeout=10_000)
    for p in ("inventory", "payment", "shipping"):
        part = page.locator(f'[data-participant="{p}"]')
        expect(part).to_have_attribute("data-in-doubt", "T1", timeout=10_000)
        expect(part).to_have_attribute("data-lock", "T1")
    expect(page.locator('[data-blocked="T1"]')).to_contain_text("coordinator down")
    expect(page.locator('[data-check="yes-voter-waits"]')).to_have_attribute("data-ok", "true")
    screenshot(page, "two-phase-commit-blocked")
    page.click('.tpc-quick [data-action="restart"][data-target="coordinator"]')
    expect(page.locator('[data-tx="T1"]')).to_have_attribute("data-phase", "aborted", timeout=10_000)
    expect(page.locator('[data-check="coordinator-recovers"]')).to_have_attribute("data-ok", "true")
    expect(page.locator('[data-check="atomicity"]')).to_have_attribute("data-ok", "true")
    for p in ("inventory", "payment", "shipping"):
        expect(page.locator(f'[data-participant="{p}"]')).to_have_attribute("data-lock", "")
    page.click('.tpc-quick [data-action="begin"]')
    expect(page.locator('[data-tx="T2"]')).to_have_attribute("data-phase", "committed", timeout=10_000)
    screenshot(page, "two-phase-commit")


def test_heuristic_decision_breaks_atomicity(open_lab):
    page = open_lab("two-phase-commit", mode="heuristic", heuristic_after=1000)
    page.click('.tpc-quick [data-action="crash-coordinator"][data-args="mid-commit"]')
    page.click('.tpc-quick [data-action="begin"]')
    expect(page.locator('[data-check="atomicity"]')).to_have_attribute("data-ok", "false", timeout=15_000)
    expect(page.locator('[data-check="yes-voter-waits"]')).to_have_attribute("data-ok", "false")
    expect(page.locator('[data-tx="T1"] [data-part="inventory"]')).to_have_attribute("data-state", "committed")
    screenshot(page, "two-phase-commit-heuristic")
