import re

import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser

SPLIT = '.sb-quick [data-action="partition"][data-args="n1,n2|n3,n4,n5"]'


def test_naive_split_gives_two_writers_and_heal_loses_a_write(open_lab):
    page = open_lab("split-brain", mode="naive")
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-role", "leader")
    page.click(SPLIT)
    # Rack A stops hearing n5 and one of its nodes declares itself leader.
    expect(page.locator('[data-rack="rack A"]')).to_have_attribute("data-leaders", "1", timeout=15_000)
    expect(page.locator("[data-split]")).to_be_visible()
    page.click('.sb-quick [data-action="write"][data-target="n1"]')
    expect(page.locator('[data-write="w1"]')).to_have_attribute("data-client", "ok", timeout=10_000)
    page.click('.sb-quick [data-action="write"][data-target="n3"]')
    expect(page.locator('[data-write="w2"]')).to_have_attribute("data-client", "ok", timeout=10_000)
    expect(page.locator('[data-check="single-writer"]')).to_have_attribute("data-ok", "false")
    expect(page.locator('[data-replica="n1"]')).to_have_attribute("data-value", "11")
    expect(page.locator('[data-replica="n3"]')).to_have_attribute("data-value", "22")
    screenshot(page, "split-brain-naive-split")
    page.click('.sb-quick [data-action="heal"]')
    expect(page.locator('[data-check="no-lost-write"]')).to_have_attribute("data-ok", "false", timeout=15_000)
    expect(page.locator('[data-write="w1"]')).to_have_attribute("data-outcome", "overwritten")
    expect(page.locator('[data-replica="n1"]')).to_have_attribute("data-value", "22")
    screenshot(page, "split-brain-naive-healed")


def test_quorum_minority_refuses_and_nothing_is_lost(open_lab):
    page = open_lab("split-brain", mode="quorum")
    page.click(SPLIT)
    page.click('.sb-quick [data-action="write"][data-target="n3"]')
    expect(page.locator('[data-write="w1"]')).to_have_attribute("data-client", "ok", timeout=10_000)
    page.click('.sb-quick [data-action="write"][data-target="n1"]')
    expect(page.locator('[data-write="w2"]')).to_have_attribute("data-client", re.compile("rejected|failed"),
                                                                 timeout=10_000)
    expect(page.locator('[data-rack="rack A"]')).to_have_attribute("data-leaders", "0")
    page.click('.sb-quick [data-action="heal"]')
    for node in ("n1", "n2", "n3", "n4", "n5"):
        expect(page.locator(f'[data-replica="{node}"]')).to_have_attribute("data-value", "22", timeout=10_000)
    for name in ("single-writer", "stale-leader-fenced", "no-lost-write"):
        expect(page.locator(f'[data-check="{name}"]')).to_have_attribute("data-ok", "true")
    screenshot(page, "split-brain-quorum")
