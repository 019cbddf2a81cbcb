import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser

Q = ".wal-quick "


def test_power_loss_without_fsync_loses_acknowledged_writes(open_lab):
    page = open_lab("write-ahead-log", flush="never", rate=8, checkpoint_every=0)
    # Writes pile up in the buffer only (dashed records).
    expect(page.locator('[data-record][data-flushed="false"]').first).to_be_visible(timeout=10_000)
    page.click(Q + '[data-action="crash"][data-target="db"]')
    expect(page.locator('[data-node="db"]')).to_have_attribute("data-status", "down")
    page.click(Q + '[data-action="restart"][data-target="db"]')
    expect(page.locator("[data-recovery]")).to_have_attribute("data-recovery", "done", timeout=10_000)
    expect(page.locator('[data-node="db"]')).to_have_attribute("data-role", "serving")
    # Judged from the recovered table: the acknowledged writes did not come back.
    expect(page.locator('[data-check="no-acked-write-lost"]')).to_have_attribute("data-ok", "false")
    screenshot(page, "write-ahead-log-never")


def test_torn_write_is_caught_by_its_crc_on_recovery(open_lab):
    page = open_lab("write-ahead-log", flush="always", rate=2)
    expect(page.locator('[data-record][data-flushed="true"]').first).to_be_visible(timeout=10_000)
    page.click(Q + '[data-action="tear"]')
    expect(page.locator('[data-node="db"]')).to_have_attribute("data-status", "down")
    page.click(Q + '[data-action="restart"][data-target="db"]')
    expect(page.locator('[data-verdict="crc-failed"]')).to_be_visible(timeout=10_000)
    expect(page.locator("[data-recovery]")).to_have_attribute("data-recovery", "done")
    for name in ("bad-record-rejected", "recovery-exact", "no-acked-write-lost"):
        expect(page.locator(f'[data-check="{name}"]')).to_have_attribute("data-ok", "true")
    screenshot(page, "write-ahead-log-torn")
