"""Bad input that needs the live stack to judge: a clear message, a 4xx, and
nothing changed.  (Status codes, CSRF and ownership refusals are checked
without a browser in tests/http.)"""

import html
import json

import pytest
from playwright.sync_api import expect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from pattern_lab.runs import wire
from simulations import get_lab
from simulations.kernel import replay

from .helpers import post

pytestmark = pytest.mark.integration


def commands_of(page, rid):
    return page.request.get(f"/runs/{rid}/scenario.json").json()["commands"]


def test_commands_the_cluster_refuses_are_logged_as_rejected_and_change_nothing(open_lab):
    """Well formed, but wrong for the cluster as it is (n9 does not exist, n1 is
    not down): only the running actor can tell, so these reach the log, are
    refused there, and must leave the run exactly as it would be without them.
    (Malformed commands, refused before the log, are checked in tests/http.)"""
    page = open_lab("leader-election")
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    resp = post(page, f"/runs/{rid}/commands/", action="crash", args="n9")
    assert resp.status == 422 and "no node 'n9'" in html.unescape(resp.text())
    resp = post(page, f"/runs/{rid}/commands/", action="restart", args="n1")
    assert resp.status == 422 and "n1 is not down" in resp.text()
    expect(page.locator('[data-node="n1"]')).to_have_attribute("data-status", "up")
    expect(page.locator("ol.log")).to_contain_text("rejected restart n1: n1 is not down")
    # The log keeps both, at the moments they were refused, so a replay meets them too...
    scenario = page.request.get(f"/runs/{rid}/scenario.json").json()
    commands = [(c["t"], c["action"], c["args"]) for c in scenario["commands"]]
    assert [(a, args) for _, a, args in commands] == [("crash", ["n9"]), ("restart", ["n1"])]
    lab, until = get_lab("leader-election"), commands[-1][0] + 2000
    refused = replay(lab, scenario["params"], scenario["seed"], commands, until)
    untouched = replay(lab, scenario["params"], scenario["seed"], [], until)
    events = refused.drain()
    # ...and refuses them again, saying why, as `rejected` events...
    assert [(e["action"], e["args"], e["error"].split(" (")[0]) for e in events if e["kind"] == "rejected"] == [
        ("crash", ["n9"], "no node 'n9' in this cluster"), ("restart", ["n1"], "n1 is not down")]

    # ...which are all that differs from the same run without them: nothing else changed.
    def unnumbered(evs):
        return [{k: v for k, v in e.items() if k != "seq"} for e in evs if e["kind"] != "rejected"]

    assert unnumbered(events) == unnumbered(untouched.drain())
    assert {**refused.snapshot(), "seq": 0} == {**untouched.snapshot(), "seq": 0}


def test_the_page_shows_a_refused_command(open_lab):
    page = open_lab("leader-election")
    page.fill('form.cmd:has([data-action="loss"]) input[aria-label="loss: percent"]', "300")
    page.fill('form.cmd:has([data-action="loss"]) input[aria-label="loss: from"]', "n1")
    page.fill('form.cmd:has([data-action="loss"]) input[aria-label="loss: to"]', "n2")
    page.click('[data-action="loss"]')
    expect(page.locator(".flash [role=alert]")).to_contain_text("percent must be between 0 and 100")


def test_someone_elses_run_is_read_only(open_lab, browser, stack):
    page = open_lab("leader-election")
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    other = browser.new_context(base_url=stack.base_url)
    try:
        viewer = other.new_page()
        viewer.goto(f"/patterns/leader-election/?run={rid}")
        viewer.wait_for_selector('[data-connected="true"]')
        expect(viewer.locator(".notice")).to_contain_text("someone else's run")
        # (The server's refusal of the viewer's commands is checked in tests/http.)
        # Forking gives the viewer a copy to play with.
        viewer.click('[data-control="fork"]')
        viewer.wait_for_selector('[data-connected="true"][data-owner="true"]')
        assert viewer.get_attribute("[data-run-id]", "data-run-id") != rid
    finally:
        other.close()


def ws_url(stack, rid):
    return stack.base_url.replace("http", "ws") + f"/ws/runs/{rid}/"


def test_socket_checks_origin_and_survives_garbage(open_lab, stack):
    page = open_lab("leader-election")
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    with pytest.raises(InvalidStatus):
        with connect(ws_url(stack, rid), origin="http://evil.example", open_timeout=5) as ws:
            ws.recv(timeout=5)
    with connect(ws_url(stack, rid), origin=stack.base_url, additional_headers={"Cookie": cookie}) as ws:
        first = ws.recv(timeout=10)
        assert wire.head(first)["kind"] == "full"
        for junk in ["not json", "[1,2]", json.dumps({"type": "launch"}),
                     json.dumps({"type": "command", "action": "crash", "args": {"x": 1}}),
                     json.dumps({"type": "command", "action": "crash", "args": ["n1"] * 50})]:
            ws.send(junk)
            while True:  # skip frames until the error for this message arrives
                reply = ws.recv(timeout=10)
                if 'role="alert"' in reply:
                    break
        ws.send(json.dumps({"type": "command", "action": "crash", "args": ["n2"]}))
    expect(page.locator('[data-node="n2"]')).to_have_attribute("data-status", "down")
    assert [c["action"] for c in commands_of(page, rid)] == ["crash"]
