"""Messages move: every message in flight is drawn travelling from its sender
to its receiver ([data-flight] with data-from, data-to, data-type), lost ones
die part-way and say why, and the event log says what was sent."""

import pytest
from playwright.sync_api import expect

from ..conftest import screenshot

pytestmark = pytest.mark.browser

WAIT = 20_000  # ms

# Collects every [data-flight] the page ever draws (a 450 ms animation is
# easy to miss between two polls), with the position it was seen at.
RECORDER = """() => {
  window.__flights = [];
  const seen = new WeakSet();
  const note = () => {
    for (const el of document.querySelectorAll('[data-flight]')) {
      const pos = el.getAttribute('transform') || '';
      if (!seen.has(el)) {
        seen.add(el);
        window.__flights.push({from: el.dataset.from, to: el.dataset.to, type: el.dataset.type,
                               lost: el.dataset.lost || '', title: el.querySelector('title').textContent,
                               positions: []});
        el.__rec = window.__flights[window.__flights.length - 1];
      }
      if (pos && el.__rec.positions[el.__rec.positions.length - 1] !== pos) el.__rec.positions.push(pos);
    }
  };
  new MutationObserver(note).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                     attributeFilter: ['transform']});
}"""


def record(page):
    page.evaluate(RECORDER)


def wait_flight(page, js_condition: str):
    """Wait until a recorded flight matches `js_condition` (a predicate on f)."""
    page.wait_for_function(f"() => (window.__flights || []).some((f) => {js_condition})", timeout=WAIT)
    return page.evaluate(f"() => window.__flights.filter((f) => {js_condition})")


def test_a_leader_election_is_drawn_message_by_message(open_lab):
    page = open_lab("leader-election", algorithm="bully", nodes=5)
    record(page)
    page.click('[data-action="crash"][data-target="n5"]')
    elections = wait_flight(page, "f.type === 'ELECTION' && f.positions.length > 2")
    # They move: several positions from the sender towards the receiver.
    assert all(f["from"] != f["to"] for f in elections)
    # The ones sent to the crashed n5 die on the way, and say why.
    lost = wait_flight(page, "f.to === 'n5' && f.lost === 'node down'")
    assert "lost: node down" in lost[0]["title"]
    wait_flight(page, "f.type === 'OK'")
    wait_flight(page, "f.type === 'COORDINATOR' && f.from === 'n4'")
    # The log says it in words, sends as well as losses.
    log = page.locator("ol.log")
    expect(log).to_contain_text("sends ELECTION to")
    expect(log).to_contain_text("lost: node down")
    expect(page.locator('[data-node="n4"]')).to_have_attribute("data-role", "leader", timeout=WAIT)


def test_a_saga_is_drawn_step_by_step(open_lab):
    page = open_lab("saga")
    record(page)
    page.locator('[data-action="create-product"]').first.click()
    wait_flight(page, "f.type === 'CREATE'")
    wait_flight(page, "f.type === 'CREATED'")
    screenshot(page, "messages-saga")


def test_a_two_phase_commit_is_drawn_phase_by_phase(open_lab):
    page = open_lab("two-phase-commit")
    record(page)
    page.click('.tpc-quick [data-action="begin"]')
    for kind in ("PREPARE", "VOTE", "COMMIT", "ACK"):
        flights = wait_flight(page, f"f.type === '{kind}'")
        assert all(f["from"] and f["to"] for f in flights)


def test_a_partition_is_drawn_on_the_links_it_breaks_and_its_losses_say_so(open_lab):
    page = open_lab("split-brain", mode="naive")
    record(page)
    page.click('.sb-quick [data-action="partition"][data-args="n1,n2|n3,n4,n5"]')
    broken = page.locator("[data-svg-cluster] [data-broken-link]")
    expect(broken.first).to_be_attached(timeout=WAIT)
    assert "partition" in broken.first.locator("title").text_content()
    # Screen readers get it in words too.
    expect(page.locator("[data-svg-cluster]")).to_have_attribute("aria-label", "Cluster of 5 nodes; network partitioned: n1, n2 | n3, n4, n5")
    lost = wait_flight(page, "f.lost === 'partition'")
    assert lost[0]["title"].endswith("lost: partition")
    expect(page.locator("ol.log")).to_contain_text("lost: partition")
    screenshot(page, "messages-split-brain-partitioned")


def test_the_log_filters_by_node_and_type_from_the_keyboard(open_lab):
    page = open_lab("leader-election", algorithm="bully", nodes=5)
    page.click('[data-action="crash"][data-target="n5"]')
    log = page.locator("ol.log")
    expect(log).to_contain_text("sends ELECTION to", timeout=WAIT)
    expect(page.locator('[data-node="n4"]')).to_have_attribute("data-role", "leader", timeout=WAIT)
    node = page.locator('[data-log-filter="node"]')
    node.focus()
    node.select_option("n1")
    visible = log.locator("li:not([hidden])")
    expect(visible.first).to_be_visible()
    for text in visible.all_text_contents():
        assert "n1" in text
    page.locator('[data-log-filter="type"]').select_option("ELECTION")
    for text in log.locator("li:not([hidden])").all_text_contents():
        assert "ELECTION" in text and "n1" in text
    node.select_option("")
    page.locator('[data-log-filter="type"]').select_option("")
    # The raw fields of each line on demand.
    page.locator("[data-log-raw]").check()
    expect(log).to_have_class("log raw")
    first = log.locator("li.traffic").first
    assert "src=" in first.get_attribute("title")


def test_frozen_messages_stay_where_they_are(open_lab):
    page = open_lab("circuit-breaker")
    record(page)
    wait_flight(page, "f.positions.length > 1")
    page.click('[data-control="freeze"]')
    # Once the frozen clock reaches the page, what is drawn stays, and does not move.
    page.wait_for_function("""() => {
        const f = document.querySelector('[id^="flight-"]');
        return f && f.dataset.flightData && JSON.parse(f.dataset.flightData).frozen === true;
    }""", timeout=WAIT)
    assert page.locator("[data-flight]").count() > 0
    page.wait_for_function("""() => {
        const now = [...document.querySelectorAll('[data-flight]')].map((f) => f.getAttribute('transform')).join();
        const same = now && now === window.__lastSeen;
        window.__lastSeen = now;
        window.__sameCount = same ? (window.__sameCount || 0) + 1 : 0;
        return window.__sameCount >= 10;
    }""", polling=100, timeout=WAIT)
    assert page.locator("[data-flight]").count() > 0
    page.click('[data-control="play"]')


def test_reduced_motion_draws_still_arrows(browser, stack):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=stack.base_url,
                                  reduced_motion="reduce")
    page = context.new_page()
    try:
        page.goto("/patterns/two-phase-commit/?fresh=1")
        page.wait_for_selector('[data-run-id][data-connected="true"]')
        page.wait_for_selector("[data-node]")
        record(page)
        page.click('.tpc-quick [data-action="begin"]')
        page.wait_for_selector("[data-flight] line.trail", state="attached", timeout=WAIT)
        flights = page.evaluate("() => window.__flights")
        assert flights and all(not f["positions"] for f in flights)  # nothing ever moved
    finally:
        context.close()
