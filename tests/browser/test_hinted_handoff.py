import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser

Q = ".hh-quick "


def test_stand_in_hands_the_write_off_to_the_restarted_replica(open_lab):
    page = open_lab("hinted-handoff", rate=0)
    page.click(Q + '[data-action="crash"][data-target="n3"]')
    expect(page.locator('[data-node="n3"]')).to_have_attribute("data-status", "down")
    page.click(Q + '[data-action="write"]')
    hint = page.locator('[data-hint][data-intended="n3"]')
    expect(hint).to_have_attribute("data-holder", "n4", timeout=10_000)
    expect(page.locator('[data-node="n4"]')).to_have_attribute("data-role", "stand-in")
    screenshot(page, "hinted-handoff-hint")
    page.click(Q + '[data-action="restart"][data-target="n3"]')
    expect(page.locator('[data-handoff="delivered"][data-intended="n3"]')).to_be_visible(timeout=10_000)
    expect(page.locator('[data-key="alice"] [data-replica="n3"]')).to_have_attribute("data-stale", "false")
    expect(page.locator('[data-check="replicas-converge"]')).to_have_attribute("data-ok", "true")
    screenshot(page, "hinted-handoff-delivered")


def test_expired_hint_leaves_the_replica_stale_until_a_read(open_lab):
    page = open_lab("hinted-handoff", rate=0, hint_ttl=1000)
    page.click(Q + '[data-action="crash"][data-target="n3"]')
    page.click(Q + '[data-action="write"]')
    expect(page.locator('[data-handoff="expired"]')).to_be_visible(timeout=10_000)
    page.click(Q + '[data-action="restart"][data-target="n3"]')
    expect(page.locator('[data-key="alice"] [data-replica="n3"]')).to_have_attribute("data-stale", "true",
                                                                                      timeout=10_000)
    # an expired hint is expected to leave n3 stale: counted for repair, not a broken check
    expect(page.locator('[data-check="replicas-converge"]')).to_contain_text("expired hint", timeout=10_000)
    expect(page.locator('[data-check="replicas-converge"]')).to_have_attribute("data-ok", "true")
    page.click(Q + '[data-action="read"]')
    expect(page.locator('[data-key="alice"] [data-replica="n3"]')).to_have_attribute("data-stale", "false",
                                                                                      timeout=10_000)
    expect(page.locator('[data-check="replicas-converge"]')).to_have_attribute("data-ok", "true", timeout=10_000)
