"""Sidecar in a real browser: the app outlives its sidecar (not its in-process library),
and a store outage ends with every line stored once."""

import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser

WAIT = 20_000


def test_sidecar_crash_leaves_the_app_serving(open_lab):
    page = open_lab("sidecar")
    page.locator('[data-action="crash"][data-target="sidecar"]').first.click()
    expect(page.locator('[data-node="sidecar"]')).to_have_attribute("data-status", "down", timeout=WAIT)
    expect(page.locator('[data-check="app-survives"]')).to_contain_text("the app still serves", timeout=WAIT)
    expect(page.locator('[data-node="app"]')).to_have_attribute("data-status", "up")
    expect(page.locator(".sc-log")).not_to_have_attribute("data-backlog", "0", timeout=WAIT)
    page.locator('[data-action="restart"][data-target="sidecar"]').first.click()
    expect(page.locator('[data-check="exactly-once"]')).to_have_attribute("data-ok", "true")
    screenshot(page, "sidecar-crash")


def test_in_process_the_crash_takes_the_app_down(open_lab):
    page = open_lab("sidecar", mode="in-process")
    page.locator('[data-action="crash"][data-target="sidecar"]').first.click()
    expect(page.locator('[data-node="app"]')).to_have_attribute("data-status", "down", timeout=WAIT)
    expect(page.locator('[data-check="app-survives"]')).to_have_attribute("data-ok", "false", timeout=WAIT)


def test_commit_before_ack_loses_lines_in_an_outage(open_lab):
    page = open_lab("sidecar", commit="before-ack")
    page.locator('[data-action="outage"]').first.click()
    expect(page.locator('[data-check="exactly-once"]')).to_have_attribute("data-ok", "false", timeout=WAIT)


def test_proxy_sidecar_crash_makes_calls_fail_fast(open_lab):
    page = open_lab("sidecar", kind="proxy")
    expect(page.locator(".sc-proxy")).to_have_attribute("data-sidecar", "up", timeout=WAIT)
    page.locator('[data-action="crash"][data-target="sidecar"]').first.click()
    expect(page.locator('[data-node="sidecar"]')).to_have_attribute("data-status", "down", timeout=WAIT)
    expect(page.locator(".sc-proxy")).not_to_have_attribute("data-refused", "0", timeout=WAIT)
    expect(page.locator('[data-check="calls-fail-fast"]')).to_have_attribute("data-ok", "true")
    expect(page.locator('[data-check="app-survives"]')).to_contain_text("the app still serves", timeout=WAIT)
    expect(page.locator('[data-node="app"]')).to_have_attribute("data-status", "up")
    screenshot(page, "sidecar-proxy")


def test_cache_sidecar_crash_loses_the_cache_and_the_app_falls_back(open_lab):
    page = open_lab("sidecar", kind="cache")
    expect(page.locator(".sc-cache")).not_to_have_attribute("data-size", "0", timeout=WAIT)
    page.locator('[data-action="crash"][data-target="sidecar"]').first.click()
    expect(page.locator(".sc-cache")).to_have_attribute("data-size", "0", timeout=WAIT)
    expect(page.locator(".sc-cache")).not_to_have_attribute("data-fallback", "0", timeout=WAIT)
    expect(page.locator('[data-node="app"]')).to_have_attribute("data-status", "up")
    expect(page.locator('[data-check="app-survives"]')).to_have_attribute("data-ok", "true")
    expect(page.locator('[data-check="cache-consistent"]')).to_have_attribute("data-ok", "true")
    screenshot(page, "sidecar-cache")
