"""Bad input, missing CSRF tokens and other people's runs: a 4xx with a clear
message, and nothing stored."""

from __future__ import annotations

import html

import pytest

from pattern_lab.runs.models import Command, Run


def text(resp) -> str:
    return html.unescape(resp.content.decode())


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
def test_bad_urls_get_a_clear_page(owner, path, status, message):
    resp = owner.get(path)
    assert resp.status_code == status
    body = text(resp)
    alert = body[body.index('role="alert"'):]
    assert message in alert[:alert.index("</")], body
    assert "Traceback" not in body


def test_unknown_run_scenario_is_a_json_error(owner):
    resp = owner.get("/runs/ffffffffffff/scenario.json")
    assert resp.status_code == 404 and "There is no run" in resp.json()["error"]


@pytest.mark.parametrize("form, message", [
    ({"action": "explode", "args": "n1"}, "has no action 'explode'"),
    ({"action": "crash"}, "usage: crash <node>"),
    ({"action": "crash", "args": ["n1", "n2"]}, "usage: crash <node>"),
    ({"action": "delay", "args": ["n1", "n2", "forever"]}, "is not a time"),
    ({"action": "loss", "args": ["n1", "n2", "250"]}, "between 0 and 100"),
    ({"action": "crash", "args": "<script>"}, "must be a node id"),
])
def test_malformed_commands_are_refused_and_not_stored(owner, run, form, message):
    resp = owner.post(f"/runs/{run.id}/commands/", form)
    assert resp.status_code == 422 and message in text(resp), text(resp)
    assert "<script>" not in resp.content.decode()
    assert not Command.objects.filter(run=run).exists()


def test_a_post_without_csrf_token_is_refused_clearly(owner, run):
    resp = owner.post(f"/runs/{run.id}/commands/", {"action": "crash", "args": "n1"}, csrf=False)
    assert resp.status_code == 403 and "security token" in text(resp)
    assert not Command.objects.filter(run=run).exists()
    # The same visitor with the token: past CSRF (and refused for the bad action, not the token).
    resp = owner.post(f"/runs/{run.id}/commands/", {"action": "explode"})
    assert resp.status_code == 422


def test_someone_elses_run_refuses_commands_clock_and_set_up(stranger, run):
    resp = stranger.post(f"/runs/{run.id}/commands/", {"action": "crash", "args": "n1"})
    assert resp.status_code == 403 and "belongs to someone else" in text(resp)
    resp = stranger.post(f"/runs/{run.id}/clock/", {"control": "freeze"})
    assert resp.status_code == 403 and "Only the run's owner" in text(resp)
    resp = stranger.post(f"/runs/{run.id}/steps/0/set-up/")
    assert resp.status_code == 403 and "belongs to someone else" in text(resp)
    assert not Command.objects.filter(run=run).exists()
    assert Run.objects.count() == 1, "a run was set up for someone who does not own the original"
    assert not Run.objects.get(id=run.id).frozen


def test_a_flood_of_commands_is_rate_limited(settings, owner, run):
    per_two_s = settings.PATTERN_LAB["COMMANDS_PER_S"] * 2
    statuses = [owner.post(f"/runs/{run.id}/commands/", {"action": "explode"}).status_code for _ in range(40)]
    assert statuses[:per_two_s] == [422] * per_two_s, statuses
    assert set(statuses[per_two_s:]) == {429}, statuses
    resp = owner.post(f"/runs/{run.id}/commands/", {"action": "explode"})
    assert resp.status_code == 429 and "Slow down" in text(resp)


@pytest.mark.parametrize("form, message", [
    ({"control": "speed", "speed": "0.01"}, "0.05 to 4"),
    ({"control": "speed", "speed": "5"}, "0.05 to 4"),
    ({"control": "speed", "speed": "nan"}, "0.05 to 4"),
    ({"control": "speed", "speed": "fast"}, "0.05 to 4"),
    ({"control": "step"}, "Freeze the clock first"),
    ({"control": "rewind"}, "use freeze, play, step or speed"),
])
def test_bad_clock_controls_are_refused_with_what_is_accepted(owner, run, form, message):
    resp = owner.post(f"/runs/{run.id}/clock/", form)
    assert resp.status_code == 422 and message in text(resp), text(resp)
    after = Run.objects.get(id=run.id)
    assert (after.speed, after.frozen) == (1.0, False)
