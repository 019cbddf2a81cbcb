"""Redis dies (kill -9) and comes back empty: workers and daphne reconnect by
themselves, the worker takes its runs again with newer fencing tokens, and
the viewer's run carries on with no gap, no repeat and no step back."""

from __future__ import annotations

import signal
import time

import pytest
from playwright.sync_api import expect

from .helpers import RECORDER, post, stack_redis

pytestmark = pytest.mark.integration


# A stack of its own (this test kills its Redis); runs idle out after 120 s, as before.
@pytest.mark.parametrize("own_stack", [{"concurrency": 8, "idle_s": 120}], indirect=True)
def test_a_redis_restart_loses_nothing(own_stack, browser):
    ctx = browser.new_context(base_url=own_stack.base_url)
    errors: list[str] = []
    try:
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("/patterns/leader-election/?algorithm=bully&nodes=5&fresh=1")
        page.wait_for_selector('[data-run-id][data-connected="true"]')
        page.wait_for_selector("[data-node]")
        page.evaluate(RECORDER)
        rid = page.get_attribute("[data-run-id]", "data-run-id")
        r = stack_redis(own_stack)
        page.click('[data-action="crash"][data-target="n5"]')
        expect(page.locator('[data-node="n4"]')).to_have_attribute("data-role", "leader", timeout=15_000)
        token_before = int(r.get(f"run:{rid}:lease"))

        own_stack.redis_proc.send_signal(signal.SIGKILL)
        own_stack.redis_proc.wait()
        seq_before = int(page.get_attribute("[data-run-id]", "data-seq"))
        # A command given while Redis is down is refused, saying why (and not stored).
        resp = post(page, f"/runs/{rid}/commands/", action="restart", args="n5")
        assert resp.status == 503 and "restarting" in resp.text(), resp.text()
        own_stack.redis_url = None
        own_stack.start_redis()  # the same socket, empty
        back_at = time.monotonic()

        page.wait_for_function(f"+document.querySelector('[data-run-id]').dataset.seq > {seq_before + 5}",
                               timeout=20_000)
        stall = time.monotonic() - back_at
        assert stall < 10, f"frames came back {stall:.1f}s after Redis"
        assert int(r.get(f"run:{rid}:lease")) > token_before, "the fencing token went back"
        # Commands work again, and the run is the same run.
        resp = post(page, f"/runs/{rid}/commands/", action="restart", args="n5")
        assert resp.status == 200, resp.text()
        expect(page.locator('[data-node="n5"]')).to_have_attribute("data-role", "leader", timeout=15_000)
        seqs = page.evaluate("window.__seqs")
        assert all(b >= a for a, b in zip(seqs, seqs[1:])), f"data-seq went backwards: {seqs}"
        logged = page.evaluate("window.__logged")
        assert logged == sorted(set(logged)), "an event was shown twice"
        shown = [int(x) for x in page.eval_on_selector_all("ol.log li", "els => els.map(e => e.dataset.seq)")]
        assert shown == sorted(set(shown))
        scenario = page.request.get(f"/runs/{rid}/scenario.json").json()
        assert [c["action"] for c in scenario["commands"]] == ["crash", "restart"]
        assert not errors, errors
    finally:
        ctx.close()
