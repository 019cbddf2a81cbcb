"""CQRS in a real browser: pause the projector and watch reads go stale; an overdraft never
reaches the read side, unless the command handler writes the read models itself."""

import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser

WAIT = 20_000


def test_paused_projector_lags_then_catches_up(open_lab):
    page = open_lab("cqrs", commands=0, queries=0)
    read1 = page.locator('[data-replica="read1"]')
    expect(read1).to_have_attribute("data-behind", "0", timeout=WAIT)
    page.locator('[data-action="pause"][data-target="projector"]').first.click()
    expect(page.locator('[data-node="projector"]')).to_have_attribute("data-status", "paused", timeout=WAIT)
    page.locator('[data-action="deposit"][data-target="alice"]').first.click()
    expect(read1).to_have_attribute("data-behind", "1", timeout=WAIT)
    page.locator('[data-action="query"][data-target="alice"]').first.click()
    expect(page.locator('[data-read="q1"]')).to_have_attribute("data-stale", "true", timeout=WAIT)
    screenshot(page, "cqrs-lagging")
    page.locator('[data-action="resume"][data-target="projector"]').first.click()
    expect(read1).to_have_attribute("data-behind", "0", timeout=WAIT)
    expect(read1).to_have_attribute("data-matches", "true")
    expect(page.locator('[data-check="read-models-converge"]')).to_have_attribute("data-ok", "true")


def test_overdraft_never_read_but_leaks_with_dual_write(open_lab):
    page = open_lab("cqrs", commands=0, queries=0)
    page.locator('[data-action="withdraw"][data-target="bob"][data-args="1000"]').click()
    expect(page.locator('[data-cmd="c1"]')).to_have_attribute("data-status", "rejected", timeout=WAIT)
    expect(page.locator('[data-check="rejected-never-read"]')).to_have_attribute("data-ok", "true")
    page = open_lab("cqrs", mode="dual-write", commands=0, queries=0)
    page.locator('[data-action="withdraw"][data-target="bob"][data-args="1000"]').click()
    expect(page.locator('[data-check="rejected-never-read"]')).to_have_attribute("data-ok", "false", timeout=WAIT)
    expect(page.locator('[data-replica="read1"]')).to_have_attribute("data-matches", "false")
    screenshot(page, "cqrs-dual-write")
