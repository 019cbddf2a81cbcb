import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser


def test_lost_answers_without_keys_charge_twice(open_lab):
    page = open_lab("retry", idempotency="off")
    expect(page.locator('[data-node="service"]')).to_have_attribute("data-role", "service")
    expect(page.locator('[data-check="no-duplicate-charges"]')).to_have_attribute("data-ok", "true")
    page.click('[data-action="lose-responses"][data-args="50"]')
    expect(page.locator('[data-check="no-duplicate-charges"]')).to_have_attribute("data-ok", "false", timeout=20_000)
    page.click('[data-action="lose-responses"][data-args="0"]')
    expect(page.locator('[data-timeline] tr[data-charges="2"]').first).to_be_visible(timeout=10_000)
    screenshot(page, "retry-duplicates")


def test_keys_401_and_the_measured_jitter_comparison(open_lab):
    page = open_lab("retry")
    # The comparison is measured when the run starts: full jitter has the lower peak and fewer calls.
    plain, jitter = page.locator('[data-compare="exponential"]'), page.locator('[data-compare="jitter"]')
    expect(jitter).to_be_visible()
    assert float(jitter.get_attribute("data-peak")) < float(plain.get_attribute("data-peak"))
    assert float(jitter.get_attribute("data-calls")) < float(plain.get_attribute("data-calls"))
    expect(page.locator('[data-check="jitter-spreads-load"]')).to_have_attribute("data-ok", "true")
    # Lost answers with idempotency keys: retried, never charged twice.
    page.click('[data-action="lose-responses"][data-args="50"]')
    expect(page.locator('[data-timeline] tr[data-status="paid"]:not([data-tries="1"])').first).to_be_visible(
        timeout=20_000)
    page.click('[data-action="lose-responses"][data-args="0"]')
    # An expired token: one attempt, no retry.
    page.click('[data-action="unauthorized"]')
    failed = page.locator('[data-timeline] tr[data-status="failed"][data-tries="1"]').first
    expect(failed).to_be_visible(timeout=15_000)
    expect(failed).to_contain_text("401 is permanent")
    expect(page.locator('[data-check="permanent-not-retried"]')).to_have_attribute("data-ok", "true")
    expect(page.locator('[data-check="no-duplicate-charges"]')).to_have_attribute("data-ok", "true")
    page.click('[data-action="outage"]')
    page.click('[data-action="clients"][data-args="50"]')
    expect(page.locator('[data-fault="outage"]')).to_be_visible()
    screenshot(page, "retry")
