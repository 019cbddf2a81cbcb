"""Saga lab in a real browser: make a step fail, watch the saga compensate; crash the
orchestrator mid-saga; a duplicated event without idempotency breaks the check."""

import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser

WAIT = 20_000  # ms: simulated seconds pass at the run's speed


def test_failing_price_compensates_the_saga(open_lab):
    page = open_lab("saga")
    page.locator('[data-action="fail-step"][data-target="price"][data-args="always"]').click()
    expect(page.locator('[data-fault="price"]')).to_be_visible(timeout=WAIT)
    page.locator('[data-action="create-product"]').first.click()
    saga = page.locator('[data-saga="s1"]')
    expect(saga).to_have_attribute("data-status", "compensated", timeout=WAIT)
    expect(saga.locator('[data-step="price"][data-do="create"]')).to_have_attribute("data-step-status", "failed")
    expect(saga.locator('[data-step="product"][data-do="compensate"]')).to_have_attribute("data-step-status", "done")
    expect(page.locator('[data-rows="product"]')).to_have_attribute("data-count", "0")
    expect(page.locator('[data-check="completed-or-compensated"]')).to_have_attribute("data-ok", "true")
    screenshot(page, "saga-compensated")


def test_orchestrator_crash_and_restart_resumes_the_saga(open_lab):
    page = open_lab("saga", work_ms=1500)
    page.locator('[data-action="create-product"]').first.click()
    expect(page.locator('[data-saga="s1"]')).to_have_attribute("data-status", "running", timeout=WAIT)
    page.locator('[data-action="crash"][data-target="orchestrator"]').first.click()
    expect(page.locator('[data-node="orchestrator"]')).to_have_attribute("data-status", "down", timeout=WAIT)
    page.locator('[data-action="restart"][data-target="orchestrator"]').first.click()
    expect(page.locator('[data-node="orchestrator"]')).to_have_attribute("data-status", "up", timeout=WAIT)
    expect(page.locator('[data-saga="s1"]')).to_have_attribute("data-status", "completed", timeout=WAIT)
    expect(page.locator('[data-check="resumes-from-log"]')).to_have_attribute("data-ok", "true")


def test_duplicate_event_without_idempotency_breaks_the_check(open_lab):
    page = open_lab("saga", mode="choreography", idempotent="off")
    page.locator('[data-action="duplicate-next"][data-target="bus"][data-args="price"]').click()
    page.locator('[data-action="create-product"]').first.click()
    expect(page.locator('[data-check="no-duplicate-rows"]')).to_have_attribute("data-ok", "false", timeout=WAIT)
    expect(page.locator('[data-rows="price"]')).to_have_attribute("data-count", "2")
    screenshot(page, "saga-choreography-duplicate")
