"""Scenarios: a run written down (settings, seed, timed commands) plays live,
and a bad scenario is refused, saying where, with nothing created."""

import json

import pytest
from playwright.sync_api import expect

from simulations import get_lab
from simulations.kernel import replay

pytestmark = pytest.mark.integration

SCENARIO = {"lab": "leader-election", "params": {"algorithm": "bully", "nodes": 5}, "seed": 11,
            "commands": [{"t": "1s", "action": "crash", "args": ["n5"]},
                         {"t": 4000, "action": "restart", "args": ["n5"]}]}


def play(page, text):
    page.goto("/patterns/leader-election/?fresh=1")
    page.fill('textarea[name="scenario"]', text)
    page.click('[data-control="scenario"]')


def test_a_scenario_plays_at_its_times_and_replays_identically(page):
    play(page, json.dumps(SCENARIO))
    page.wait_for_selector('[data-connected="true"]')
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-status", "down", timeout=15_000)
    expect(page.locator('[data-node="n4"]')).to_have_attribute("data-role", "leader", timeout=15_000)
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-role", "leader", timeout=15_000)
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    exported = page.request.get(f"/runs/{rid}/scenario.json").json()
    assert [(c["t"], c["action"]) for c in exported["commands"]] == [(1000.0, "crash"), (4000.0, "restart")]
    assert exported["seed"] == 11
    # Applied exactly at their due times: the CLI replays it to the same state.
    lab = replay(get_lab("leader-election"), exported["params"], 11,
                 [(c["t"], c["action"], c["args"]) for c in exported["commands"]], 8000)
    assert {n.id: n.leader for n in lab.nodes.values()}["n1"] == "n5"


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "A scenario is a JSON object"),
    (json.dumps({"lab": "saga", "commands": []}), "is for the 'saga' lab"),
    (json.dumps({"params": {"nodes": 40}}), "nodes must be between 3 and 9"),
    (json.dumps({"commands": [{"t": "soon", "action": "crash", "args": ["n1"]}]}), "Command 1: 'soon' is not a time"),
    (json.dumps({"commands": [{"t": 1, "action": "crash", "args": ["n1"]},
                              {"t": 2, "action": "explode", "args": []}]}), "Command 2: 'leader-election' has no action"),
    (json.dumps({"commands": [{"t": "2h", "action": "heal"}]}), "not a time"),
    (json.dumps({"commands": [{"t": 99_999_999, "action": "heal"}]}), "up to one hour"),
    (json.dumps({"commands": "crash n1"}), "commands must be a list"),
    (json.dumps({"colour": "red"}), "Unknown field 'colour'"),
])
def test_bad_scenarios_are_refused_with_a_reason(page, text, message):
    play(page, text)
    expect(page.locator("[role=alert]")).to_contain_text(message)
    assert "Traceback" not in page.content()
