import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser

Q = ".rr-quick "


def make_n3_stale(page):
    page.click(Q + '[data-action="write"][data-args="x hello"]')
    expect(page.locator('[data-key="x"] [data-replica="n3"]')).to_have_attribute("data-version", "1", timeout=10_000)
    page.click(Q + '[data-action="partition"]')
    page.click(Q + '[data-action="write"][data-args="x world"]')
    expect(page.locator('[data-key="x"] [data-replica="n3"]')).to_have_attribute("data-stale", "true", timeout=10_000)
    page.click(Q + '[data-action="heal"]')


def test_read_repair_writes_the_newest_version_back(open_lab):
    page = open_lab("read-repair", mode="blocking", rate=0)
    make_n3_stale(page)
    page.click(Q + '[data-action="read"][data-args="x 1 n3"]')
    expect(page.locator("[data-read-key]")).to_have_attribute("data-read-stale", "true", timeout=10_000)
    expect(page.locator('[data-check="read-returns-latest"]')).to_have_attribute("data-ok", "false")
    page.click(Q + '[data-action="read"][data-args="x 3"]')
    expect(page.locator('[data-write-back="n3"]')).to_be_visible(timeout=10_000)
    expect(page.locator('[data-key="x"] [data-replica="n3"]')).to_have_attribute("data-stale", "false")
    expect(page.locator('[data-check="answered-replicas-newest"]')).to_have_attribute("data-ok", "true")
    screenshot(page, "read-repair-blocking")


def test_anti_entropy_mode_leaves_readers_stale_until_a_round(open_lab):
    page = open_lab("read-repair", mode="anti-entropy", rate=0, ae_every=60000)
    make_n3_stale(page)
    page.click(Q + '[data-action="read"][data-args="x 3"]')
    expect(page.locator('[data-answer="n3"]')).to_have_attribute("data-stale", "true", timeout=10_000)
    expect(page.locator('[data-check="answered-replicas-newest"]')).to_have_attribute("data-ok", "false",
                                                                                       timeout=10_000)
    page.click(Q + '[data-action="anti-entropy"]')
    expect(page.locator('[data-key="x"] [data-replica="n3"]')).to_have_attribute("data-stale", "false",
                                                                                  timeout=10_000)
    screenshot(page, "read-repair-anti-entropy")
