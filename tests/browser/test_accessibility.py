"""Every learner can use it: axe-core finds no violations on any page (the lab
pages after a fault, so the live parts are on screen), every lab can be
operated with the keyboard alone without the focus getting lost when frames
arrive, the live region says what happened, a 360 px phone never scrolls
sideways, and a lab page stays light."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from simulations import labs

from ..conftest import screenshot
from ..teaching import login

pytestmark = pytest.mark.browser

AXE = Axe()
LABS = sorted(labs())
PHONE = {"width": 360, "height": 740}
WAIT = 15_000


def assert_accessible(page, what: str) -> None:
    """axe-core's WCAG 2.x A/AA rules and its best practices, all of them."""
    results = AXE.run(page)
    assert results.violations_count == 0, f"{what}:\n{results.generate_report()}"


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def tab_to(page, selector: str, limit: int = 300) -> None:
    """Press Tab until the focus is on an element matching `selector`."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => !!document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def focused(page) -> dict:
    return page.evaluate("""() => { const el = document.activeElement;
        return {id: el.id, action: el.dataset.action || null,
                row: el.closest('[data-node-row]')?.dataset.nodeRow || null}; }""")


@pytest.mark.parametrize("slug", LABS)
def test_a_fault_and_a_restart_with_the_keyboard_alone(open_lab, slug):
    page = open_lab(slug)
    # The first node button that crashes a node, reached with Tab from the top.
    tab_to(page, '[data-node-row] [data-action="crash"]')
    node = focused(page)["row"]
    page.keyboard.press("Enter")
    expect(page.locator(f'g[data-node="{node}"]')).to_have_attribute("data-status", "down", timeout=WAIT)
    # Frames kept arriving and replaced the row; the focus stayed on the row's control
    # that now applies: restart.
    page.wait_for_function("(n) => document.activeElement?.dataset.target === n", arg=node)
    now = focused(page)
    assert (now["action"], now["row"]) == ("restart", node), now
    expect(page.locator("[data-announcements]")).to_contain_text(f"{node} is down", timeout=WAIT)
    page.keyboard.press("Enter")
    expect(page.locator(f'g[data-node="{node}"]')).not_to_have_attribute("data-status", "down", timeout=WAIT)
    page.wait_for_function("(n) => document.activeElement?.dataset.action === 'crash'"
                           " && document.activeElement.dataset.target === n", arg=node)
    expect(page.locator("[data-announcements]")).to_contain_text(f"{node} is up again", timeout=WAIT)
    # The live parts are on screen now: nothing for axe to find, at full width or on a phone.
    assert_accessible(page, f"{slug} after a fault")
    expect(page.locator(".verdict")).to_have_count(0)  # the note beside the button, placed for the wide screen
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)  # one layout after the resize (a condition would be the same check)
    assert no_sideways_scroll(page), f"{slug} scrolls sideways at 360 px"
    assert_accessible(page, f"{slug} at 360 px")


def test_the_live_region_says_a_node_went_down_and_a_check_broke(open_lab):
    page = open_lab("circuit-breaker", breakers="off")
    page.click('.nodes [data-action="crash"][data-target="C"]')
    expect(page.locator("[data-announcements]")).to_contain_text("C is down", timeout=WAIT)
    expect(page.locator('[data-check="no-cascade"]')).to_have_attribute("data-ok", "false", timeout=WAIT)
    expect(page.locator("[data-announcements]")).to_contain_text("Check no-cascade broke at", timeout=WAIT)
    region = page.locator("[data-announcements]")
    expect(region).to_have_attribute("aria-live", "polite")
    assert page.locator("[aria-live=polite][data-announcements]").count() == 1
    # A broken check says so in words, not only in red.
    expect(page.locator('[data-check="no-cascade"] .state')).to_have_text("broken")
    # The description in words follows the frames too.
    page.click("[data-describe] summary")
    expect(page.locator("[data-describe]")).to_contain_text("checks broken: no-cascade")
    expect(page.locator("[data-describe]")).to_contain_text("C: down")


def test_a_busy_run_does_not_flood_the_live_region(open_lab):
    page = open_lab("leader-election", nodes=7)
    for n in ("n7", "n6", "n5"):
        page.click(f'.nodes [data-action="crash"][data-target="{n}"]')
    expect(page.locator("[data-announcements]")).to_contain_text("n5 is down", timeout=WAIT)
    # Throttled: a few sentences at a time, the rest counted, never one line per event.
    page.wait_for_timeout(3000)  # let the election's role changes pile up behind the throttle
    lines = page.locator("[data-announcements] p").all_text_contents()
    assert lines and all(line.count(". ") <= 3 for line in lines), lines


def test_the_cluster_drawing_is_not_a_tab_stop_and_clicking_a_node_focuses_its_buttons(open_lab):
    page = open_lab("leader-election")
    assert page.locator("g[data-node][tabindex]").count() == 0
    page.click('g[data-node="n3"]')
    page.wait_for_function("document.activeElement.closest('[data-node-row]')?.dataset.nodeRow === 'n3'")


def test_focus_ring_and_phone_layout_screenshots(browser, stack):
    context = browser.new_context(viewport=PHONE, base_url=stack.base_url)
    page = context.new_page()
    try:
        page.goto("/patterns/circuit-breaker/?fresh=1")
        page.wait_for_selector('[data-run-id][data-connected="true"]')
        page.wait_for_selector("[data-node]")
        tab_to(page, '[data-node-row] [data-action="crash"]')
        ring = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert ring == "solid"
        assert no_sideways_scroll(page)
        for el in page.locator(".live button:visible, .live select:visible").all()[:60]:
            box = el.bounding_box()
            assert box and box["height"] >= 24 and box["width"] >= 24, el.evaluate("e => e.outerHTML")
        page.locator(".nodes").scroll_into_view_if_needed()
        screenshot(page, "a11y-phone-focus")
    finally:
        context.close()


def test_no_violations_on_the_other_pages(page, stack):
    for path in ("/", "/join/", "/accounts/login/", "/patterns/no-such-lab/"):
        page.goto(path)
        assert_accessible(page, path)
        page.set_viewport_size(PHONE)
        assert no_sideways_scroll(page), f"{path} scrolls sideways at 360 px"
        page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto("/patterns/leader-election/learn/1-bully/")
    page.wait_for_selector('[data-run-id][data-connected="true"]')
    page.wait_for_selector("[data-node]")
    expect(page.locator("[data-lesson]")).to_be_visible()
    assert_accessible(page, "a lesson")
    page.goto("/patterns/leader-election/?fresh=1")
    page.wait_for_selector('[data-run-id][data-connected="true"]')
    page.click("[data-compare-with]")
    page.wait_for_selector('[data-compare] [data-run-id][data-connected="true"] >> nth=1')
    page.wait_for_selector("[data-compare] [data-node]")
    assert_accessible(page, "two runs side by side")


def test_no_violations_on_the_instructor_and_class_pages(browser, stack, instructor):
    contexts = []

    def person(viewport=None):
        context = browser.new_context(viewport=viewport or {"width": 1400, "height": 1000}, base_url=stack.base_url)
        contexts.append(context)
        pg = context.new_page()
        pg.set_default_timeout(WAIT)
        pg.on("dialog", lambda d: d.accept())
        return pg

    try:
        teacher = person()
        login(teacher, instructor)
        teacher.wait_for_url("**/teach/")
        assert_accessible(teacher, "the instructor's home")
        teacher.goto("/teach/scenarios/new/?lab=leader-election")
        assert_accessible(teacher, "the scenario editor")
        teacher.goto("/teach/")
        teacher.click('button[data-start-class=""]')
        expect(teacher.locator("[data-class-role]")).to_have_attribute("data-class-role", "instructor")
        code = teacher.get_attribute("[data-class-code]", "data-class-code")
        teacher.wait_for_selector('[data-run-id][data-connected="true"]')
        student = person(PHONE)
        student.goto("/join/")
        student.fill("[name=code]", code)
        student.fill("[name=name]", "Ann")
        student.click("button[type=submit]")
        expect(student.locator("[data-class-role]")).to_have_attribute("data-class-role", "student")
        student.wait_for_selector('[data-run-id][data-connected="true"]')
        student.wait_for_selector("[data-node]")
        assert no_sideways_scroll(student), "a student's class page scrolls sideways at 360 px"
        assert_accessible(student, "a student's class page")
        expect(teacher.locator('[data-student][data-name="Ann"]')).to_be_visible()
        teacher.wait_for_selector("[data-node]")
        assert_accessible(teacher, "the instructor's class page")
        teacher.click("[data-end-class]")
        teacher.wait_for_url(f"**/class/{code}/summary/")
        assert_accessible(teacher, "a class summary")
    finally:
        for c in contexts:
            c.close()


def test_a_lab_page_weighs_less_than_150_kib(browser, stack):
    context = browser.new_context(base_url=stack.base_url)
    page = context.new_page()
    try:
        sizes = []
        page.on("requestfinished", lambda r: sizes.append((r.url, r.sizes()["responseBodySize"])))
        page.goto("/patterns/circuit-breaker/?fresh=1")
        page.wait_for_selector('[data-run-id][data-connected="true"]')
        page.wait_for_load_state("load")
        total = sum(size for _, size in sizes)
        assert total <= 150 * 1024, sizes
    finally:
        context.close()
