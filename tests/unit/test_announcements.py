"""What a screen reader hears: each frame's announcements (node status and
role changes, checks that break or hold again, breaker transitions) and the
cluster described in words."""

from __future__ import annotations

import pytest

from pattern_lab.runs.frames import ANNOUNCE_MAX, announcements, describe


def snap(nodes, checks=(), inflight=(), partition=None, links=()):
    return {"t": 6200, "seq": 9,
            "nodes": [{"id": i, "status": s, "role": r} for i, s, r in nodes],
            "checks": [{"name": n, "ok": ok, "help": "", "detail": d} for n, ok, d in checks],
            "network": {"inflight": [{"type": t} for t in inflight], "partition": partition, "links": list(links)}}


PREV = {"n1": ("up", "follower"), "n5": ("up", "leader")}


def test_nothing_is_said_on_the_first_frame():
    assert announcements(None, snap([("n1", "down", None)]), []) == []


def test_a_node_going_down_and_coming_back():
    down = snap([("n1", "up", "follower"), ("n5", "down", None)])
    assert announcements(PREV, down, []) == ["n5 is down"]
    back = snap([("n1", "up", "follower"), ("n5", "up", "follower")])
    assert announcements({"n1": ("up", "follower"), "n5": ("down", None)}, back, []) == ["n5 is up again"]


def test_a_new_leader_is_said_but_not_the_role_a_crash_clears():
    s = snap([("n1", "up", "leader"), ("n5", "down", None)])
    assert announcements(PREV, s, []) == ["n5 is down", "n1 is now leader"]


def test_a_broken_check_comes_first_with_its_time():
    s = snap([("n1", "up", "follower"), ("n5", "down", None)], checks=[("no-lost-write", False, "k1 lost")])
    events = [{"seq": 8, "t": 6200, "kind": "check", "name": "no-lost-write", "ok": False, "detail": "k1 lost"}]
    assert announcements(PREV, s, events) == ["Check no-lost-write broke at 6.2 s", "n5 is down"]
    events = [{"seq": 9, "t": 7000, "kind": "check", "name": "no-lost-write", "ok": True}]
    assert announcements(PREV, snap([("n1", "up", "follower"), ("n5", "up", "leader")]), events) == [
        "Check no-lost-write holds again at 7.0 s"]


def test_a_breaker_transition_is_said_once_in_its_own_words():
    prev = {"B": ("up", "closed")}
    events = [{"seq": 3, "t": 1700, "kind": "breaker", "id": "B->C", "src": "closed", "dst": "open",
               "why": "5 failures in a row (timeout)"}]
    assert announcements(prev, snap([("B", "up", "open")]), events) == [
        "Breaker B->C opened at 1.7 s after 5 failures in a row (timeout)"]


def test_a_busy_frame_is_cut_short_and_counted():
    prev = {f"n{i}": ("up", "follower") for i in range(10)}
    s = snap([(f"n{i}", "up", "candidate") for i in range(10)])
    said = announcements(prev, s, [])
    assert len(said) == ANNOUNCE_MAX + 1
    assert said[-1] == f"and {10 - ANNOUNCE_MAX} more changes (see the event log)"


@pytest.mark.parametrize("checks, words", [
    ([("agreement", True, "")], "All 1 checks hold."),
    ([("agreement", True, ""), ("no-lost-write", False, "k1 lost")], "1 of 2 checks broken: no-lost-write (k1 lost)"),
    ([], "This lab has no live checks."),
])
def test_the_description_says_who_is_up_what_flies_and_what_is_broken(checks, words):
    s = snap([("n1", "up", "leader"), ("n2", "down", None)], checks=checks, inflight=["VOTE", "VOTE", "OK"],
             partition=[["n1"], ["n2"]])
    html = describe("r1", s)
    assert 'id="describe-r1"' in html
    assert "2 nodes: 1 up, 1 down." in html
    assert "<li>n1: up, leader</li>" in html and "<li>n2: down</li>" in html
    assert "3 messages in flight: 1 OK, 2 VOTE." in html
    assert "partitioned into n1 | n2" in html
    assert words in html


def test_the_description_escapes_names():
    html = describe("r1", snap([("<b>", "up", "x&y")]))
    assert "<b>" not in html
    assert "&lt;b&gt;: up, x&amp;y" in html


def test_the_description_says_what_was_just_sent():
    events = [{"seq": 1, "t": 0, "kind": "send", "src": "n5", "dst": d, "type": "HEARTBEAT"} for d in ("n1", "n2")]
    events.append({"seq": 3, "t": 0, "kind": "drop", "src": "n5", "dst": "n3", "type": "HEARTBEAT"})
    html = describe("r1", snap([("n5", "up", "leader")]), events)
    assert "No messages in flight. Just sent: n5 → n1, n2: HEARTBEAT; 1 lost." in html
