import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser


def test_add_shard_moves_most_keys_under_mod_n_and_a_crash_stays_isolated(open_lab):
    page = open_lab("sharding", strategy="mod", seed=1)
    expect(page.locator('[data-node="router"]')).to_have_attribute("data-role", "router")
    expect(page.locator(".sh-grid [data-key]")).to_have_count(100)
    expect(page.locator('[data-rebalance="none"]')).to_be_visible()
    page.click('.sh-quick [data-action="add-shard"]')
    expect(page.locator('[data-node="s5"]')).to_have_attribute("data-status", "up")
    panel = page.locator("[data-rebalance]")
    expect(panel).to_have_attribute("data-phase", "done")
    share = float(panel.get_attribute("data-moved-share"))
    assert 0.7 < share < 0.9  # about N/(N+1) = 80% under hash mod N
    assert page.locator('.sh-grid [data-moved="true"]').count() > 60
    expect(page.locator('[data-check="moved-share"]')).to_have_attribute("data-ok", "true")
    page.click('.sh-quick [data-action="crash"][data-target="s2"]')
    expect(page.locator('[data-node="s2"]')).to_have_attribute("data-status", "down")
    expect(page.locator('[data-shard-row="s2"]')).not_to_have_attribute("data-failed", "0", timeout=15_000)
    expect(page.locator('[data-shard-row="s1"]')).to_have_attribute("data-failed", "0")
    expect(page.locator('[data-check="isolation"]')).to_have_attribute("data-ok", "true")
    screenshot(page, "sharding-mod")


def test_consistent_hashing_moves_few_keys_and_the_router_is_a_single_point_of_failure(open_lab):
    page = open_lab("sharding", strategy="consistent", seed=1)
    page.click('.sh-quick [data-action="add-shard"]')
    panel = page.locator("[data-rebalance]")
    expect(panel).to_have_attribute("data-phase", "done")
    share = float(panel.get_attribute("data-moved-share"))
    assert 0.1 < share < 0.3  # about 1/(N+1) = 20%
    screenshot(page, "sharding-consistent")
    page.click('.sh-quick [data-action="crash"][data-target="router"]')
    # keys of healthy shards fail too; that is the router's doing, not a breach of the shards' isolation
    expect(page.locator('[data-shard-row="s1"]')).not_to_have_attribute("data-failed", "0", timeout=15_000)
    expect(page.locator('[data-check="isolation"]')).to_contain_text("router was faulty", timeout=15_000)
    expect(page.locator('[data-check="isolation"]')).to_have_attribute("data-ok", "true")
