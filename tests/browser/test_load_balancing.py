"""Load balancing in a real browser: a crashed replica leaves the rotation; without
health checks it does not, and the check says so."""

import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser

WAIT = 20_000


def test_crashed_replica_is_taken_out_of_rotation(open_lab):
    page = open_lab("load-balancing")
    expect(page.locator('[data-replica="a2"]')).to_have_attribute("data-health", "up", timeout=WAIT)
    page.locator('[data-action="crash"][data-target="a2"]').first.click()
    expect(page.locator('[data-node="a2"]')).to_have_attribute("data-status", "down", timeout=WAIT)
    expect(page.locator('[data-replica="a2"]')).to_have_attribute("data-health", "down", timeout=WAIT)
    expect(page.locator('[data-check="crash-contained"]')).to_have_attribute("data-ok", "true")
    expect(page.locator('[data-check="even-split"]')).to_have_attribute("data-ok", "true")
    screenshot(page, "load-balancing-crash")


def test_without_health_checks_the_dead_replica_breaks_the_check(open_lab):
    page = open_lab("load-balancing", health_checks="off")
    page.locator('[data-action="crash"][data-target="a2"]').first.click()
    expect(page.locator('[data-check="crash-contained"]')).to_have_attribute("data-ok", "false", timeout=WAIT)
    expect(page.locator('[data-replica="a2"]')).to_have_attribute("data-health", "up")
