"""A lab page a teacher can teach from: cause and effect on one screen, Set
this up for every What to try step, presenter mode, sharing with a room."""

import pytest
from playwright.sync_api import expect

from pattern_lab.catalog.tries import items
from simulations import labs

from ..conftest import screenshot

pytestmark = pytest.mark.browser

LABS = sorted(labs())

BOXES = """() => Object.fromEntries(Object.entries({
  cluster: '.cluster svg[data-svg-cluster]', controls: '.controls', panel: '.panels > *', checks: '.checks',
}).map(([name, sel]) => {
  const el = document.querySelector(sel);
  if (!el) return [name, null];
  const r = el.getBoundingClientRect();
  return [name, {top: r.top, bottom: r.bottom, left: r.left, right: r.right}];
}))"""

PANELS_PAST_THEIR_COLUMN = """() => {
  const edge = document.querySelector('.col-panels').getBoundingClientRect().right;
  return [...document.querySelectorAll('.col-panels .panel')]
    .filter(el => el.getBoundingClientRect().right > edge + 1)
    .map(el => `${el.className} (${Math.round(el.getBoundingClientRect().right - edge)} px)`);
}"""

SMALL_TEXT = """(minPx) => {
  const small = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let n;
  while ((n = walker.nextNode())) {
    if (!n.textContent.trim()) continue;
    const el = n.parentElement;
    if (!el || el.closest('script, style, title, [hidden], datalist, option')) continue;
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || r.bottom <= 0 || r.top >= innerHeight || r.right <= 0 || r.left >= innerWidth) continue;
    const cs = getComputedStyle(el);
    if (cs.visibility === 'hidden' || +cs.opacity === 0) continue;
    let size = parseFloat(cs.fontSize);
    if (el.ownerSVGElement) { const m = el.getScreenCTM(); size *= Math.hypot(m.a, m.b); }  // drawn size
    if (size < minPx - 0.05) small.push(`${size.toFixed(1)}px: ${n.textContent.trim().slice(0, 30)}`);
  }
  return small;
}"""


def open_at(page, slug, width, height, **query):
    page.set_viewport_size({"width": width, "height": height})
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    page.goto(f"/patterns/{slug}/?fresh=1&seed=1{extra}")
    page.wait_for_selector('[data-run-id][data-connected="true"]')
    page.wait_for_selector("[data-node]")
    page.wait_for_selector(".panels > *")
    page.wait_for_selector(".checks [data-check]")
    return page


@pytest.mark.parametrize("slug", LABS)
def test_cluster_controls_panel_and_checks_on_one_screen(page, slug):
    open_at(page, slug, 1400, 900)
    # the lab's quick actions and each node's buttons are among the controls
    expect(page.locator(".controls [data-action]").first).to_be_visible()
    boxes = page.evaluate(BOXES)
    for name, box in boxes.items():
        assert box is not None, f"{slug}: no {name} on the page"
        assert box["top"] >= 0 and box["bottom"] <= 900 and box["left"] >= 0 and box["right"] <= 1400, (
            f"{slug}: the {name} is not within the 1400x900 viewport: {box}")
    # No panel is wider than its column (cut off at the column's edge, its last figures unreadable).
    cut = page.evaluate(PANELS_PAST_THEIR_COLUMN)
    assert not cut, f"{slug}: panels reach past the panels column: {cut}"
    screenshot(page, f"page-1400-{slug}")


def test_a_commands_verdict_shows_beside_the_control(open_lab):
    page = open_lab("leader-election")
    button = page.locator('[data-action="crash"][data-target="n5"]')
    below = button.bounding_box()
    button.click()
    verdict = page.locator(".verdict")
    expect(verdict).to_contain_text("crash n5 — done")
    box = verdict.bounding_box()
    assert abs(box["x"] - below["x"]) < 40 and 0 <= box["y"] - (below["y"] + below["height"]) < 40
    # a refused command says why inside its form
    form = page.locator('form.cmd:has([data-action="loss"])')
    form.locator('input[aria-label="loss: percent"]').fill("300")
    form.locator('input[aria-label="loss: from"]').fill("n1")
    form.locator('input[aria-label="loss: to"]').fill("n2")
    form.locator('[data-action="loss"]').click()
    expect(form.locator("output.bad")).to_contain_text("percent must be between 0 and 100")


@pytest.mark.parametrize("slug", LABS)
def test_set_this_up_reaches_every_step(page, slug):
    open_at(page, slug, 1400, 900)
    # Set this up keeps the run's speed: 4x makes the whole list take a quarter of the time.
    page.select_option('select[data-control="speed"]', "4")
    expect(page.locator("[data-run-id]")).to_have_attribute("data-speed", "4")
    for step in items(slug):
        page.locator(f'[data-set-up="{step.index}"]').click()
        live = page.locator(f'[data-run-id][data-step="{step.index}"]')
        expect(live).to_have_attribute("data-connected", "true")
        budget_ms = int(step.until * 2) + 20_000  # simulated time at 1x, on a shared machine
        try:
            expect(live).to_have_attribute("data-reached", "true", timeout=budget_ms)
        except AssertionError:
            raise AssertionError(f"{slug} step {step.index + 1} not reached: {step.expect}") from None
        expect(page.locator("[data-step-state]")).to_contain_text("reached")
        if step.commands and any(c.note for c in step.commands):
            expect(page.locator("[data-caption]")).to_be_visible()
    screenshot(page, f"set-up-{slug}")


def test_set_this_up_is_for_the_owner_only(open_lab, browser, stack):
    page = open_lab("leader-election")
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    other = browser.new_context(base_url=stack.base_url)
    try:
        viewer = other.new_page()
        viewer.goto(f"/patterns/leader-election/?run={rid}")
        viewer.wait_for_selector('[data-connected="true"]')
        expect(viewer.locator("[data-set-up]")).to_have_count(0)
        # (The server's refusal of a forged set-up is checked in tests/http.)
    finally:
        other.close()


@pytest.mark.parametrize("slug", ["circuit-breaker", "scatter-gather", "cqrs", "sharding"])
def test_presenter_mode_large_type_and_one_screen(page, slug):
    open_at(page, slug, 1920, 1080, present=1)
    expect(page.locator("[data-present]")).to_have_attribute("aria-pressed", "true")
    page.wait_for_timeout(300)  # one more frame: the drawings' labels are fitted after each frame
    small = page.evaluate(SMALL_TEXT, 18)
    assert not small, f"text under 18 px in presenter mode: {small[:10]}"
    for name, box in page.evaluate(BOXES).items():
        if name == "controls":
            continue
        assert box["bottom"] <= 1080 and box["right"] <= 1920, f"{name} off screen: {box}"
    screenshot(page, f"present-1920-{slug}")


def test_presenter_toggle(open_lab):
    page = open_lab("leader-election")
    page.click("[data-present]")
    expect(page.locator("body")).to_have_class("present")
    assert "present=1" in page.url
    expect(page.locator("header.site")).to_be_hidden()
    page.click("[data-present]")
    expect(page.locator("header.site")).to_be_visible()


def test_phone_width_has_no_horizontal_scroll(page):
    open_at(page, "circuit-breaker", 390, 844)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.goto("/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    open_at(page, "circuit-breaker", 390, 844)
    screenshot(page, "page-390-circuit-breaker")


def test_share_link_copy_and_qr(page, open_lab):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_lab("leader-election")
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    share = page.locator("[data-share]")
    share.focus()
    page.keyboard.press("Enter")
    expect(share).to_have_attribute("aria-expanded", "true")
    page.click("[data-copy]")
    expect(page.locator(".copied")).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()").endswith(f"/patterns/leader-election/?run={rid}")
    qr = page.locator(".share-box img.qr")
    expect(qr).to_be_visible()
    page.wait_for_function("document.querySelector('.share-box img.qr').naturalWidth > 0")
    resp = page.request.get(f"/runs/{rid}/qr.svg")
    assert resp.headers["content-type"] == "image/svg+xml" and b"<svg" in resp.body()
    page.keyboard.press("Escape")
    expect(page.locator(".share-box")).to_be_hidden()


def test_a_viewer_of_a_shared_comparison_sees_no_controls(open_lab, browser, stack):
    page = open_lab("leader-election", algorithm="bully")
    page.locator('[data-action="crash"][data-target="n5"]').click()
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-status", "down")
    page.click('[data-compare-with="ring"]')
    expect(page.locator("[data-compare] [data-run-id]")).to_have_count(2)
    expect(page.locator("[data-replayed]")).to_contain_text("replayed your 1 earlier command")
    url = page.url
    other = browser.new_context(base_url=stack.base_url)
    try:
        viewer = other.new_page()
        viewer.goto(url)
        for i in range(2):
            expect(viewer.locator("[data-compare] [data-run-id]").nth(i)).to_have_attribute("data-connected", "true")
        viewer.wait_for_selector("[data-node]")
        for sel in ('[data-control="freeze"]', '[data-control="restart"]', "[data-set-up]", "details.actions"):
            expect(viewer.locator(sel)).to_have_count(0)
        assert viewer.locator("[data-action]:visible").count() == 0
    finally:
        other.close()


def test_a_late_joiner_can_follow_a_checks_event_link(open_lab, browser, stack):
    page = open_lab("bulkhead", mode="shared")
    page.locator('.quick [data-action="slow"][data-target="B"]').click()
    check = page.locator('[data-check="c-unaffected"]')
    expect(check).to_have_attribute("data-ok", "false", timeout=20_000)
    seq = int(check.locator("[data-seq-link]").get_attribute("data-seq-link"))
    # the run keeps producing about 100 events a second: wait until the event left the recent log
    page.wait_for_function(f"+document.querySelector('[data-run-id]').dataset.seq > {seq} + 400")
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    other = browser.new_context(base_url=stack.base_url)
    try:
        viewer = other.new_page()
        viewer.goto(f"/patterns/bulkhead/?run={rid}")
        viewer.wait_for_selector('[data-connected="true"]')
        link = viewer.locator('[data-check="c-unaffected"] [data-seq-link]')
        expect(link).to_be_visible()
        assert viewer.locator(f'ol.log li[data-seq="{seq}"]').count() == 0
        # The link takes the timeline back to that event: the page shows the
        # moment it happened, with the event selected in the log of that moment.
        link.click()
        expect(viewer.locator("[data-run-id]")).to_have_attribute("data-view", "past")
        selected = viewer.locator("ol.log li.selected")
        expect(selected).to_have_count(1)
        assert int(selected.get_attribute("data-seq")) >= seq
    finally:
        other.close()


def test_glossary_and_overview_path(page, stack):
    page.goto("/")
    expect(page.locator("[data-start]")).to_have_attribute("href", "/patterns/leader-election/")
    assert page.locator("[data-path-lab]").count() == len(LABS)
    page.goto("/patterns/leader-election/?fresh=1")
    expect(page.locator("[data-next-lab]")).to_have_attribute("href", "/patterns/circuit-breaker/")
    page.goto("/patterns/split-brain/?fresh=1")
    for term in ("quorum", "generation", "fencing token", "seed"):
        expect(page.locator(f"#term-{term.replace(' ', '-')}")).to_be_visible()
    first = page.locator('a.term[href="#term-quorum"]').first
    first.focus()
    first.press("Enter")
    expect(page.locator("#term-quorum")).to_be_in_viewport()


def test_a_quiet_run_says_it_is_idle_not_frozen(open_lab):
    page = open_lab("saga")  # nothing happens until a product is created
    note = page.locator(".idle-note")
    expect(note).to_be_visible(timeout=10_000)
    expect(note).to_contain_text("idle")
    page.locator('.quick [data-action="create-product"]').click()
    expect(note).to_be_hidden()
