"""Modes side by side: two runs, same seed, every command goes to both."""

import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser


def test_compare_modes_side_by_side(open_lab):
    page = open_lab("leader-election", algorithm="bully")
    page.click('[data-compare-with="ring"]')
    areas = page.locator("[data-compare] [data-run-id]")
    expect(areas).to_have_count(2)
    for i in range(2):
        expect(areas.nth(i)).to_have_attribute("data-connected", "true")
    expect(page.locator(".area-label").nth(0)).to_contain_text("algorithm = bully")
    expect(page.locator(".area-label").nth(1)).to_contain_text("algorithm = ring")
    left, right = areas.nth(0), areas.nth(1)
    assert left.get_attribute("data-run-id") != right.get_attribute("data-run-id")
    # One click on the left crashes the leader in both runs; both elect n4.
    left.locator('[data-action="crash"][data-target="n5"]').click()
    for area in (left, right):
        expect(area.locator('[data-node="n5"]')).to_have_attribute("data-status", "down")
        expect(area.locator('[data-node="n4"]')).to_have_attribute("data-role", "leader", timeout=15_000)
    # A form on the right side is mirrored to the left one too.
    right.locator('input[aria-label="partition: sides"]').fill("n1,n2|n3,n4")
    right.locator('[data-action="partition"]').click()
    for area in (left, right):
        expect(area.locator(".partition-note")).to_contain_text("n1, n2")
    screenshot(page, "compare-leader-election")
