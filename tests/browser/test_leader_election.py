import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("algorithm", ["bully", "ring"])
def test_crashing_the_leader_elects_the_next_highest(open_lab, algorithm):
    page = open_lab("leader-election", algorithm=algorithm, nodes=5)
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-role", "leader")
    page.click('[data-action="crash"][data-target="n5"]')
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-status", "down")
    expect(page.locator('[data-node="n4"]')).to_have_attribute("data-role", "leader", timeout=15_000)
    for node in ("n1", "n2", "n3"):
        expect(page.locator(f'[data-node="{node}"]')).to_have_attribute("data-role", "follower")
    expect(page.locator('[data-check="agreement"]')).to_have_attribute("data-ok", "true")
    # The restarted highest id bullies its way back.
    page.click('[data-action="restart"][data-target="n5"]')
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-role", "leader", timeout=15_000)
    expect(page.locator('[data-node="n4"]')).to_have_attribute("data-role", "follower")
    screenshot(page, f"leader-election-{algorithm}")


def test_quick_clicks_are_all_applied_in_order(open_lab):
    page = open_lab("leader-election", nodes=5)
    for node in ("n1", "n2", "n3"):
        page.click(f'[data-action="crash"][data-target="{node}"]')
    for node in ("n1", "n2", "n3"):
        expect(page.locator(f'[data-node="{node}"]')).to_have_attribute("data-status", "down")
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    commands = page.request.get(f"/runs/{rid}/scenario.json").json()["commands"]
    assert [c["args"][0] for c in commands] == ["n1", "n2", "n3"]
