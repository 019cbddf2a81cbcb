"""Bad input of every kind: a clear message, a 4xx, and nothing changed."""

import html
import json

import pytest
from playwright.sync_api import expect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from pattern_lab.runs import wire

from .helpers import post

pytestmark = pytest.mark.integration


def commands_of(page, rid):
    return page.request.get(f"/runs/{rid}/scenario.json").json()["commands"]


@pytest.mark.parametrize("path, status, message", [
    ("/patterns/no-such-lab/", 404, "There is no lab called"),
    ("/patterns/leader-election/?nodes=12", 400, "nodes must be between 3 and 9"),
    ("/patterns/leader-election/?algorithm=raft", 400, "algorithm must be one of bully, ring"),
    ("/patterns/leader-election/?colour=red", 400, "is not a setting of this lab"),
    ("/patterns/leader-election/?seed=-4", 400, "seed must be a whole number"),
    ("/patterns/leader-election/?run=ffffffffffff", 404, "There is no leader election run"),
    ("/nowhere/", 404, "There is no page at this address"),
    ("/patterns/leader-election/?compare=raft", 400, "algorithm must be one of bully, ring"),
    ("/patterns/leader-election/?vs=ffffffffffff", 404, "The run to compare with is gone"),
])
def test_bad_urls_get_a_clear_page(page, path, status, message):
    resp = page.goto(path)
    assert resp.status == status
    expect(page.locator("[role=alert]")).to_contain_text(message)
    assert "Traceback" not in page.content()


def test_unknown_run_scenario_is_a_json_error(page):
    resp = page.request.get("/runs/ffffffffffff/scenario.json")
    assert resp.status == 404 and "There is no run" in resp.json()["error"]


def test_bad_commands_are_refused_and_change_nothing(open_lab):
    page = open_lab("leader-election")
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    cases = [
        ({"action": "explode", "args": "n1"}, 422, "has no action 'explode'"),
        ({"action": "crash"}, 422, "usage: crash <node>"),
        ({"action": "crash", "args": "n1 n2"}, 422, "usage: crash <node>"),
        ({"action": "delay", "args": "n1 n2 forever"}, 422, "is not a time"),
        ({"action": "loss", "args": "n1 n2 250"}, 422, "between 0 and 100"),
        ({"action": "crash", "args": "<script>"}, 422, "must be a node id"),
    ]
    for form, status, message in cases:
        resp = post(page, f"/runs/{rid}/commands/", **form)
        assert resp.status == status, (form, resp.status, resp.text())
        assert message in html.unescape(resp.text())
    assert commands_of(page, rid) == []
    # State-dependent: well formed, but n9 does not exist / n1 is not down. Logged, rejected, no effect.
    resp = post(page, f"/runs/{rid}/commands/", action="crash", args="n9")
    assert resp.status == 422 and "no node 'n9'" in html.unescape(resp.text())
    resp = post(page, f"/runs/{rid}/commands/", action="restart", args="n1")
    assert resp.status == 422 and "n1 is not down" in resp.text()
    expect(page.locator('[data-node="n1"]')).to_have_attribute("data-status", "up")
    assert all(c["error"] if "error" in c else True for c in commands_of(page, rid))


def test_a_post_without_csrf_token_is_refused_clearly(open_lab):
    page = open_lab("leader-election")
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    resp = page.request.post(f"/runs/{rid}/commands/", form={"action": "crash", "args": "n1"})
    assert resp.status == 403 and "security token" in resp.text()
    assert commands_of(page, rid) == []


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
        resp = post(viewer, f"/runs/{rid}/commands/", action="crash", args="n1")
        assert resp.status == 403 and "belongs to someone else" in resp.text()
        assert commands_of(page, rid) == []
        # Forking gives the viewer a copy to play with.
        viewer.click('[data-control="fork"]')
        viewer.wait_for_selector('[data-connected="true"][data-owner="true"]')
        assert viewer.get_attribute("[data-run-id]", "data-run-id") != rid
    finally:
        other.close()


def test_a_flood_of_commands_is_rate_limited(open_lab):
    page = open_lab("leader-election")
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    statuses = page.evaluate("""async (url) => {
        const token = document.cookie.match(/csrftoken=([^;]+)/)[1];
        const one = () => fetch(url, {method: 'POST', headers: {'X-CSRFToken': token},
                                      body: new URLSearchParams({action: 'explode'})}).then(r => r.status);
        return Promise.all(Array.from({length: 40}, one));
    }""", f"/runs/{rid}/commands/")
    assert statuses.count(429) >= 10, statuses
    resp = post(page, f"/runs/{rid}/commands/", action="explode")
    assert resp.status == 429 and "Slow down" in resp.text()


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
