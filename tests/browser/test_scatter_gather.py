import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser


def test_crashed_worker_task_is_redone_and_timeout_gives_partial(open_lab):
    page = open_lab("scatter-gather")
    result = page.locator("[data-result-job]")
    # The first job starts by itself and completes with all five versions.
    expect(result).to_have_attribute("data-job-status", "complete", timeout=20_000)
    expect(page.locator('[data-gantt] [data-task="1080p"][data-worker="w1"]')).to_be_visible()
    # A second job; crash w1 while it transcodes 1080p.
    page.click('[data-action="job"][data-args="scattered"]')
    expect(result).to_have_attribute("data-result-job", "2")
    expect(page.locator('[data-gantt][data-job="2"] [data-task="1080p"][data-worker="w1"]')).to_have_attribute(
        "data-state", "running")
    page.click('.quick [data-action="crash"][data-target="w1"]')
    expect(page.locator('[data-node="w1"]')).to_have_attribute("data-status", "down")
    expect(page.locator('[data-gantt] [data-task="1080p"][data-state="lost"]')).to_be_visible()
    expect(page.locator('[data-gantt] [data-task="1080p"][data-copy="redo"]')).to_be_visible(timeout=20_000)
    expect(result).to_have_attribute("data-job-status", "complete", timeout=20_000)
    expect(page.locator('[data-check="redone-elsewhere"]')).to_have_attribute("data-ok", "true")
    screenshot(page, "scatter-gather-redo")
    # A gather timeout shorter than the 1080p task: a partial result that names what is missing.
    page.click('.quick [data-action="restart"][data-target="w1"]')
    expect(page.locator('[data-node="w1"]')).to_have_attribute("data-status", "up")
    page.click('[data-action="timeout"][data-args="1500"]')
    page.click('[data-action="job"][data-args="scattered"]')
    expect(result).to_have_attribute("data-result-job", "3")
    expect(result).to_have_attribute("data-job-status", "partial", timeout=20_000)
    expect(page.locator('[data-result="1080p"]')).to_have_attribute("data-state", "missing")
    expect(page.locator('[data-check="result-complete"]')).to_have_attribute("data-ok", "false")
    expect(page.locator('[data-check="result-complete"]')).to_contain_text("missing 1080p")
    screenshot(page, "scatter-gather")
