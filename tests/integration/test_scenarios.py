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


NOTED = {"params": {"algorithm": "bully", "nodes": 5}, "seed": 3,
         "commands": [{"t": "1s", "action": "crash", "args": ["n5"], "note": "The leader dies"},
                      {"t": "6s", "action": "restart", "args": ["n5"], "note": "It comes back"}]}


def test_notes_are_captions_and_the_page_shows_what_comes_next(page):
    play(page, json.dumps(NOTED))
    page.wait_for_selector('[data-connected="true"]')
    expect(page.locator("[data-next]")).to_contain_text("6.00s: restart n5 — It comes back", timeout=15_000)
    expect(page.locator("[data-caption]")).to_have_text("The leader dies", timeout=15_000)
    expect(page.locator("[data-caption]")).to_have_text("It comes back", timeout=20_000)
    expect(page.locator("[data-next]")).to_contain_text("all 2 commands applied")


def test_the_scenario_link_downloads_a_file_with_whole_milliseconds(page):
    play(page, json.dumps(NOTED))
    page.wait_for_selector('[data-connected="true"]')
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-status", "down", timeout=15_000)
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    with page.expect_download() as download:
        page.click("[data-scenario-link]")
    assert download.value.suggested_filename == f"leader-election-{rid}.json"
    resp = page.request.get(f"/runs/{rid}/scenario.json")
    assert resp.headers["content-disposition"] == f'attachment; filename="leader-election-{rid}.json"'
    body = resp.json()
    assert body["commands"][0] == {"t": 1000, "action": "crash", "args": ["n5"], "note": "The leader dies"}
    assert all(isinstance(c["t"], int) for c in body["commands"])
    shown = float(page.get_attribute('[id^="meta-"]', "data-t"))
    assert isinstance(body["sim_t"], int) and body["sim_t"] >= shown - 1
    # the file plays again as it is, notes and all
    play(page, json.dumps(body))
    page.wait_for_selector('[data-connected="true"]')
    expect(page.locator("[data-caption]")).to_have_text("The leader dies", timeout=15_000)


def test_restart_on_a_scenario_run_plays_the_scenario_again(page):
    play(page, json.dumps(NOTED))
    page.wait_for_selector('[data-connected="true"]')
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-status", "down", timeout=15_000)
    first = page.get_attribute("[data-run-id]", "data-run-id")
    page.click('[data-control="restart"]')
    page.wait_for_selector(f'[data-run-id]:not([data-run-id="{first}"])[data-connected="true"]')
    expect(page.locator("[data-next]")).to_contain_text("restart n5")
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-status", "down", timeout=15_000)
    expect(page.locator("[data-caption]")).to_have_text("The leader dies")


@pytest.mark.parametrize("command, message", [
    ({"t": 1, "action": "heal", "colour": "red"}, "Command 1: unknown field 'colour'"),
    ({"t": 1, "action": "heal", "note": 7}, "Command 1: a note is a short text"),
])
def test_a_bad_command_field_is_named(page, command, message):
    play(page, json.dumps({"commands": [command]}))
    expect(page.locator("[role=alert]")).to_contain_text(message)
