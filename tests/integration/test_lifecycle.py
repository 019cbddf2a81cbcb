"""A run's life: reconnecting viewers, idle runs stopping and coming back."""

import signal
import time

import pytest
from playwright.sync_api import expect

from ..conftest import start_stack, stop_stack
from .helpers import RECORDER, stack_redis

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def quick_idle_stack():
    """A stack whose runs stop 3 s after their last viewer leaves."""
    s = start_stack(prefix="pattern-lab-idle-", idle_s=3, concurrency=8)
    yield s
    stop_stack(s)


def test_reconnecting_browser_gets_full_state_and_no_repeats(own_stack, open_own_lab):
    stack = own_stack
    page = open_own_lab("leader-election")
    page.evaluate(RECORDER)
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    page.click('[data-action="crash"][data-target="n5"]')
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-status", "down")
    # The server goes away (as in a crash or a deploy) and comes back on the same port.
    old = stack.daphne_procs[0]
    old.send_signal(signal.SIGKILL)
    old.wait()
    expect(page.locator("[data-run-id]")).to_have_attribute("data-connected", "false")
    seq_offline = int(page.get_attribute("[data-run-id]", "data-seq"))
    stack.respawn(old)
    stack.wait_http()
    expect(page.locator("[data-run-id]")).to_have_attribute("data-connected", "true", timeout=20_000)
    page.wait_for_function(f"+document.querySelector('[data-run-id]').dataset.seq > {seq_offline}")
    # The full state came back: n5 still down, n4 leads, the run is the same.
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-status", "down")
    expect(page.locator('[data-node="n4"]')).to_have_attribute("data-role", "leader")
    assert page.get_attribute("[data-run-id]", "data-run-id") == rid
    seqs = page.evaluate("window.__seqs")
    assert all(b >= a for a, b in zip(seqs, seqs[1:])), "data-seq went backwards"
    shown = [int(x) for x in page.eval_on_selector_all("ol.log li", "els => els.map(e => e.dataset.seq)")]
    assert shown == sorted(set(shown))


def test_a_command_that_cannot_reach_the_server_says_so_and_the_page_does_not_throw(open_lab):
    page = open_lab("leader-election")
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    # The connection drops before the answer comes back (the server died mid-request).
    page.route("**/commands/", lambda route: route.abort("connectionreset"))
    page.click('[data-action="crash"][data-target="n5"]')
    expect(page.locator(f"#flash-{rid} [role=alert]")).to_contain_text("could not be reached")
    page.unroute("**/commands/")
    # Once the server answers again, the same button works (and the page
    # fixture checks that nothing was thrown meanwhile).
    page.click('[data-action="crash"][data-target="n5"]')
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-status", "down")


def test_a_page_whose_server_says_going_away_reconnects(page, stack):
    """A server or proxy that shuts down cleanly closes sockets with 1001
    ("going away"), which htmx does not retry by itself."""
    routes = []

    def through(ws):
        routes.append(ws)
        ws.connect_to_server()

    page.route_web_socket("**/ws/runs/**", through)
    page.goto("/patterns/leader-election/?fresh=1")
    live = page.locator("[data-run-id]")
    expect(live).to_have_attribute("data-connected", "true")
    page.wait_for_selector("[data-node]")
    seq = int(live.get_attribute("data-seq"))
    routes[0].close(code=1001, reason="going away")
    expect(live).to_have_attribute("data-connected", "false")
    expect(live).to_have_attribute("data-connected", "true", timeout=10_000)
    assert len(routes) == 2
    page.wait_for_function(f"+document.querySelector('[data-run-id]').dataset.seq > {seq}")


def test_idle_run_stops_and_resumes_where_it_was(quick_idle_stack, browser):
    ctx = browser.new_context(base_url=quick_idle_stack.base_url)
    try:
        page = ctx.new_page()
        page.goto("/patterns/leader-election/?fresh=1")
        page.wait_for_selector('[data-connected="true"]')
        rid = page.get_attribute("[data-run-id]", "data-run-id")
        page.click('[data-action="crash"][data-target="n5"]')
        expect(page.locator('[data-node="n4"]')).to_have_attribute("data-role", "leader", timeout=15_000)
        page.goto("about:blank")  # nobody watches any more
        r = stack_redis(quick_idle_stack)
        deadline = time.monotonic() + 45
        while r.exists(f"run:{rid}:lease"):
            assert time.monotonic() < deadline, "the idle run never stopped"
            time.sleep(0.25)
        scenario = page.request.get(f"/runs/{rid}/scenario.json").json()
        assert scenario["status"] == "idle" and scenario["sim_t"] > 0
        stopped_at = int(r.get(f"run:{rid}:pos").split()[1])
        # Coming back resumes the same run from where it stopped.
        page.goto(f"/patterns/leader-election/?run={rid}")
        page.wait_for_selector('[data-connected="true"]')
        page.wait_for_function(f"+document.querySelector('[data-run-id]').dataset.seq > {stopped_at}")
        expect(page.locator('[data-node="n5"]')).to_have_attribute("data-status", "down")
        expect(page.locator('[data-node="n4"]')).to_have_attribute("data-role", "leader")
        assert r.exists(f"run:{rid}:lease")
    finally:
        ctx.close()


def test_a_run_nobody_watches_renders_nothing_until_someone_is_back(stack, open_lab):
    page = open_lab("leader-election")
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    seq_seen = int(page.get_attribute("[data-run-id]", "data-seq"))
    r = stack_redis(stack)
    frames = r.pubsub(ignore_subscribe_messages=True)
    frames.subscribe(f"frames:{rid}")
    page.goto("about:blank")
    deadline = time.monotonic() + 10
    while r.exists(f"run:{rid}:watched"):  # the last viewer left
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # Heartbeats go on every 300 ms in the simulation, so a second without a
    # frame means the actor has stopped rendering; it must then stay quiet.
    quiet_since, deadline = time.monotonic(), time.monotonic() + 15
    while time.monotonic() - quiet_since < 1.0:
        assert time.monotonic() < deadline, "frames never stopped after the last viewer left"
        if frames.get_message(timeout=0.1):
            quiet_since = time.monotonic()
    quiet_until = time.monotonic() + 2.0
    while time.monotonic() < quiet_until:
        assert frames.get_message(timeout=0.2) is None, "a frame was rendered for nobody"
    assert r.exists(f"run:{rid}:lease"), "the run keeps running until its idle timeout"
    page.goto(f"/patterns/leader-election/?run={rid}")
    page.wait_for_selector('[data-connected="true"]')
    page.wait_for_function(f"+document.querySelector('[data-run-id]').dataset.seq > {seq_seen + 10}")
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-role", "leader")
    frames.close()
