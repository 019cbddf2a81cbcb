import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser


def test_hung_b_stalls_c_behind_a_shared_pool(open_lab):
    page = open_lab("bulkhead", mode="shared")
    expect(page.locator('[data-check="c-unaffected"]')).to_have_attribute("data-ok", "true")
    page.click('.bh-quick [data-action="hang"][data-target="B"]')
    expect(page.locator('[data-pool="shared"]')).to_have_attribute("data-busy-count", "10", timeout=15_000)
    expect(page.locator('[data-check="c-unaffected"]')).to_have_attribute("data-ok", "false", timeout=15_000)
    screenshot(page, "bulkhead-shared")


def test_bulkheads_keep_c_fast_while_b_pool_fills_and_rejects(open_lab):
    page = open_lab("bulkhead", mode="bulkheads")
    page.click('.bh-quick [data-action="hang"][data-target="B"]')
    expect(page.locator('[data-pool="B"]')).to_have_attribute("data-busy-count", "4", timeout=15_000)
    expect(page.locator('[data-slot="B-3"]')).to_have_attribute("data-busy", "true")
    expect(page.locator('[data-rejected="B"]')).not_to_have_text("0", timeout=15_000)
    expect(page.locator('[data-rejected="C"]')).to_have_text("0")
    expect(page.locator('[data-check="c-unaffected"]')).to_have_attribute("data-ok", "true")
    screenshot(page, "bulkhead-bulkheads")
