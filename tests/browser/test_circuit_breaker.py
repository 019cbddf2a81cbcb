import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser


def test_crash_c_opens_b_c_then_recover_closes_it(open_lab):
    page = open_lab("circuit-breaker")
    breaker = page.locator('[data-breaker="B->C"]')
    expect(breaker).to_have_attribute("data-state", "closed")
    expect(page.locator('[data-node="B"]')).to_have_attribute("data-role", "closed")
    page.click('.cb-quick [data-action="crash"][data-target="C"]')
    expect(page.locator('[data-node="C"]')).to_have_attribute("data-status", "down")
    expect(breaker).to_have_attribute("data-state", "open", timeout=15_000)
    expect(page.locator('[data-node="B"]')).to_have_attribute("data-role", "open")
    expect(page.locator('[data-breaker="A->B"]')).to_have_attribute("data-state", "closed")
    expect(breaker.locator('[data-machine-state="open"]')).to_have_class("cb-state cb-open lit")
    screenshot(page, "circuit-breaker-open")
    page.click('.cb-quick [data-action="recover"][data-target="C"]')
    expect(page.locator('[data-node="C"]')).to_have_attribute("data-status", "up")
    expect(breaker).to_have_attribute("data-state", "closed", timeout=15_000)
    expect(breaker.locator(".cb-transitions")).to_contain_text("half-open → closed")
    for name in ("open-blocks", "trial-limit", "trial-outcome", "no-cascade"):
        expect(page.locator(f'[data-check="{name}"]')).to_have_attribute("data-ok", "true")
    screenshot(page, "circuit-breaker")


def test_without_breakers_the_outage_cascades(open_lab):
    page = open_lab("circuit-breaker", breakers="off")
    expect(page.locator('[data-node="A"]')).to_have_attribute("data-role", "service")
    page.click('.cb-quick [data-action="crash"][data-target="C"]')
    expect(page.locator('[data-check="no-cascade"]')).to_have_attribute("data-ok", "false", timeout=15_000)
    expect(page.locator("[data-threads-busy]")).to_have_attribute("data-threads-busy", "10")
    screenshot(page, "circuit-breaker-off")
