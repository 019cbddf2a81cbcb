import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser


def test_query_insert_measure_and_overfill(open_lab):
    page = open_lab("bloom-filter", rate=2, seed=1)
    page.click('.bf-quick [data-action="query"]')
    last = page.locator('.bf-last[data-last-item="alice"]')
    expect(last).to_have_attribute("data-answer", "definitely-not")
    expect(last.locator("[data-bit]")).to_have_count(4)
    expect(last.locator('[data-lit="false"]').first).to_be_visible()
    page.click('.bf-quick [data-action="insert"]')
    expect(page.locator('.bf-last[data-last-op="insert"]')).to_be_visible()
    page.click('.bf-quick [data-action="query"]')
    expect(page.locator('.bf-last[data-last-item="alice"][data-last-op="query"]')).to_have_attribute("data-answer", "maybe")
    expect(page.locator('.bf-last [data-lit="true"]')).to_have_count(4)
    page.click('.bf-quick [data-action="measure"]')
    chart = page.locator(".bf-chart")
    expect(chart).to_have_attribute("data-within", "true")
    expect(page.locator('[data-check="fp-rate"]')).to_have_attribute("data-ok", "true")
    page.click('.bf-quick [data-action="overfill"]')
    expect(chart).to_have_attribute("data-points", "7")
    assert float(chart.get_attribute("data-measured")) > 0.3
    expect(page.locator('[data-check="no-false-negatives"]')).to_have_attribute("data-ok", "true")
    screenshot(page, "bloom-filter")


def test_filter_crash_rebuilds_without_false_negatives(open_lab):
    page = open_lab("bloom-filter", seed=1)
    page.click('.bf-quick [data-action="crash"][data-target="filter"]')
    expect(page.locator('[data-node="filter"]')).to_have_attribute("data-status", "down")
    expect(page.locator(".bf-array")).to_have_attribute("data-filter-state", "down")
    page.click('.bf-quick [data-action="restart"][data-target="filter"]')
    expect(page.locator(".bf-array")).to_have_attribute("data-filter-state", "ready")
    expect(page.locator('[data-check="no-false-negatives"]')).to_have_attribute("data-ok", "true")
