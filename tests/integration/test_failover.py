"""Kill -9 the worker driving a run: another worker resumes it from the log."""

import os
import signal
import time

import pytest
from playwright.sync_api import expect

from simulations import get_lab
from simulations.kernel import replay

from .helpers import RECORDER, post, stack_redis

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("own_stack", [{"workers": 2}], indirect=True)  # one to kill, one to take over
def test_sigkill_of_the_running_worker_loses_nothing(own_stack, open_own_lab):
    stack = own_stack
    page = open_own_lab("leader-election", algorithm="bully", nodes=5)
    page.evaluate(RECORDER)
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    r = stack_redis(stack)

    page.click('[data-action="crash"][data-target="n5"]')
    expect(page.locator('[data-node="n4"]')).to_have_attribute("data-role", "leader", timeout=15_000)

    victim = int(r.get(f"run:{rid}:worker"))
    assert victim in [p.pid for p in stack.worker_procs]
    seq_before = int(page.get_attribute("[data-run-id]", "data-seq"))
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    # A command sent while nobody drives the run is stored, not lost.
    resp = post(page, f"/runs/{rid}/commands/", action="restart", args="n5")
    assert resp.status in (200, 202), resp.text()

    page.wait_for_function(f"+document.querySelector('[data-run-id]').dataset.seq > {seq_before + 5}",
                           timeout=15_000)
    stall = time.monotonic() - killed_at
    assert stall < 5.0, f"the run stalled {stall:.1f}s"
    assert int(r.get(f"run:{rid}:worker")) != victim
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-role", "leader", timeout=15_000)

    # What the viewer saw: data-seq only ever grew, the log never repeated a line...
    seqs = page.evaluate("window.__seqs")
    assert all(b >= a for a, b in zip(seqs, seqs[1:])), "data-seq went backwards"
    shown = [int(x) for x in page.eval_on_selector_all("ol.log li", "els => els.map(e => e.dataset.seq)")]
    assert shown == sorted(set(shown)), "the event log shows a line twice or out of order"
    # ...and matches, event for event, a replay of the stored command log.
    scenario = page.request.get(f"/runs/{rid}/scenario.json").json()
    assert [c["action"] for c in scenario["commands"]] == ["crash", "restart"], "a command was lost"
    t_now = float(page.get_attribute(f"#meta-{rid}", "data-t"))
    lab = replay(get_lab("leader-election"), scenario["params"], scenario["seed"],
                 [(c["t"], c["action"], c["args"]) for c in scenario["commands"]], t_now)
    events = lab.drain()
    # Message lines group several sends or losses (named by the first one's seq);
    # every other event has a line of its own.
    expected = [e["seq"] for e in events if e["kind"] not in ("send", "drop")]
    # (lines for heartbeats sent after t_now are past what the replay covers)
    logged = sorted(s for s in set(page.evaluate("window.__logged")) if s <= events[-1]["seq"])
    assert set(logged) <= {e["seq"] for e in events}, "the viewer saw events that never happened"
    window = [s for s in expected if logged[0] <= s <= logged[-1]]
    assert [s for s in logged if s in set(expected)] == window, "the viewer missed events around the failover"

