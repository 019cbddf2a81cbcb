"""Service registry in a real browser: a crashed instance's lease expires; a graceful
one leaves at once; with the registry down the clients keep working from cache."""

import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser

WAIT = 20_000


def test_crashed_instance_expires_and_graceful_one_leaves(open_lab):
    page = open_lab("service-registry")
    expect(page.locator('[data-lease="s2"]')).to_have_count(1, timeout=WAIT)
    page.locator('[data-action="crash"][data-target="s2"]').first.click()
    expect(page.locator('[data-node="s2"]')).to_have_attribute("data-status", "down", timeout=WAIT)
    expect(page.locator('[data-lease="s2"]')).to_have_count(0, timeout=WAIT)
    expect(page.locator('[data-check="crashed-expires"]')).to_have_attribute("data-ok", "true")
    page.locator('[data-action="shutdown"][data-target="s3"]').first.click()
    expect(page.locator('[data-lease="s3"]')).to_have_count(0, timeout=WAIT)
    expect(page.locator('[data-check="graceful-at-once"]')).to_have_attribute("data-ok", "true")
    screenshot(page, "service-registry-crash")


def test_registry_down_clients_use_their_cache(open_lab):
    page = open_lab("service-registry", mode="server-side")
    expect(page.locator('[data-cache="lb"]')).to_have_attribute("data-size", "3", timeout=WAIT)
    page.locator('[data-action="crash"][data-target="registry"]').first.click()
    expect(page.locator('[data-registry="down"]')).to_have_count(1, timeout=WAIT)
    expect(page.locator('[data-check="cache-survives"]')).to_contain_text("served from cached lists", timeout=WAIT)
    expect(page.locator('[data-check="cache-survives"]')).to_have_attribute("data-ok", "true")
