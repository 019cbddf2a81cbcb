"""Frames as viewers receive them: what a delta carries, and the words of the log."""

import re

import pytest

from pattern_lab.runs import frames, wire
from pattern_lab.runs.frames import MAX_DOTS, FrameBuilder, describe_event, dots, log_lines, node_actions, positions
from pattern_lab.runs.services import Rejected, check_shape, normalise_args
from simulations import get_lab


def build(lab, builder):
    return builder.build(lab, lab.drain(), {"speed": 1, "frozen": False})


def test_delta_frames_chain_and_carry_only_what_changed():
    cls = get_lab("leader-election")
    lab = cls({}, 1)
    builder = FrameBuilder("r1", node_actions(cls))
    seq, delta, full = build(lab, builder)
    assert 'id="cluster-r1"' in delta and wire.head(full)["kind"] == "full"
    lab.run_until(50)  # nothing visible changes in 50 ms
    seq2, delta2, _ = build(lab, builder)
    head = wire.head(delta2)
    assert (head["seq"], head["prev"], head["kind"]) == (seq2, seq, "delta")
    assert 'id="cluster-r1"' not in delta2 and 'id="checks-r1"' not in delta2
    lab.apply("crash", ["n5"])
    _, delta3, full3 = build(lab, builder)
    assert 'data-node="n5" data-status="down"' in delta3
    assert 'id="checks-r1"' not in delta3  # the checks did not change
    assert 'id="checks-r1"' in full3 and "n5 crashed" in full3


def test_node_buttons_follow_the_node_status():
    cls = get_lab("leader-election")
    lab = cls({}, 1)
    builder = FrameBuilder("r1", node_actions(cls))
    lab.apply("crash", ["n5"])
    _, _, full = build(lab, builder)
    assert 'data-action="restart" data-target="n5"' in full
    assert 'data-action="crash" data-target="n5"' not in full
    assert 'data-action="crash" data-target="n4"' in full


def test_layout_defaults_to_a_circle_inside_the_drawing():
    pos = positions({"nodes": [{"id": f"n{i}"} for i in range(9)]})
    assert all(5 <= x <= 95 and 8 <= y <= 52 for x, y in pos.values())


def test_event_log_lines_read_as_words():
    assert describe_event({"seq": 1, "t": 0, "kind": "crash", "node": "n3"}) == "n3 crashed"
    assert describe_event({"seq": 2, "t": 0, "kind": "drop", "type": "OK", "src": "n1", "dst": "n2",
                           "reason": "partition"}) == "OK n1 → n2 lost: partition"
    assert describe_event({"seq": 3, "t": 0, "kind": "elected", "ms": 34.04449}) == "elected ms=34"


@pytest.mark.parametrize("action, args, message", [
    ("explode", [], "has no action"),
    ("crash", [], "usage: crash <node>"),
    ("crash", ["<b>"], "must be a node id"),
    ("partition", ["n1;drop"], "a partition looks like"),
    ("delay", ["n1", "n2", "soon"], "is not a time"),
])
def test_commands_are_checked_before_they_are_stored(action, args, message):
    with pytest.raises(Rejected, match=message):
        check_shape(get_lab("leader-election"), action, normalise_args(args))


def test_arguments_are_words_and_few():
    assert normalise_args(["n1 n2", 30]) == ["n1", "n2", "30"]
    for bad in ({"x": 1}, [True], ["a"] * 9, [["n1"]]):
        with pytest.raises(Rejected):
            normalise_args(bad)


# ---- what moves, and the log in sentences ---------------------------------------

FLIGHT = re.compile(r'id="flight-r1" hx-swap-oob="true" hidden data-seq="\d+" data-flight-data="([^"]*)"')


def flight_data(frame: str) -> dict:
    import html
    import json

    return json.loads(html.unescape(FLIGHT.search(frame).group(1)))


def test_frames_carry_the_messages_of_an_election_for_the_animation():
    cls = get_lab("leader-election")
    lab = cls({"algorithm": "bully", "nodes": 5}, 1)
    builder = FrameBuilder("r1", node_actions(cls))
    build(lab, builder)
    lab.apply("crash", ["n5"])
    seen, lost = set(), set()
    for t in range(100, 4000, 100):
        lab.run_until(t)
        _, delta, full = build(lab, builder)
        assert "<script" not in delta  # htmx drops scripts from swapped content
        for _src, dst, typ, start, ms, why, count, _id in flight_data(delta)["dots"]:
            assert 0 <= start <= 100 and ms >= 0 and count >= 1
            seen.add(typ)
            if why:
                lost.add((typ, dst, why))
    assert {"ELECTION", "OK", "COORDINATOR"} <= seen
    assert ("ELECTION", "n5", "node down") in lost


def test_a_busy_batch_is_thinned_out_and_keeps_its_losses():
    events = [{"seq": i, "t": 1000 + i, "kind": "send", "src": f"c{i % 50}", "dst": "lb", "type": "REQ",
               "id": i, "arrive": 1005 + i} for i in range(200)]
    events += [{"seq": 300, "t": 1050, "kind": "drop", "src": "lb", "dst": "s1", "type": "REQ", "id": 999,
                "reason": "lost"}]
    out = dots(events, 1000)
    assert len(out) == MAX_DOTS
    assert ["lb", "s1", "REQ"] == out[[d[5] for d in out].index("loss")][:3]
    assert sum(d[6] for d in out) < 201 and max(d[6] for d in out) == 4  # 200 calls from 50 clients: ×4 each


def test_the_log_says_who_sends_what_to_whom_and_groups_a_round():
    sends = [{"seq": i, "t": 300.0, "kind": "send", "src": "n5", "dst": f"n{i}", "type": "HEARTBEAT", "id": i,
              "arrive": 303.0} for i in range(1, 5)]
    replies = [{"seq": 10 + i, "t": 303.5, "kind": "send", "src": f"n{i}", "dst": "n5", "type": "ACK", "id": 10 + i,
                "arrive": 306.0} for i in range(1, 5)]
    lost = [{"seq": 20, "t": 310.0, "kind": "drop", "src": "n3", "dst": "n5", "type": "OK", "id": 20,
             "reason": "partition"}]
    lines = [html for _, _, html in log_lines(sends + replies + lost, cuts={("n3", "n5")})]
    text = [re.sub(r"<[^>]+>", "", line) for line in lines]
    assert text[0].endswith("n5 sends HEARTBEAT to n1, n2, n3, n4")
    assert text[1].endswith("n1, n2, n3, n4 send ACK to n5")
    assert text[2].endswith("OK n3 → n5 lost: cut")  # a one-way cut, not a partition
    assert 'data-type="HEARTBEAT"' in lines[0] and 'data-nodes="n5 n1 n2 n3 n4"' in lines[0]
    assert 'title="seq=1 kind=send src=n5 dst=n1 type=HEARTBEAT id=1 arrive=303.0 (and 3 more)"' in lines[0]


def test_the_same_loss_twice_in_a_batch_is_one_line_with_a_count():
    drops = [{"seq": i, "t": 10.0 * i, "kind": "drop", "src": "n1", "dst": "n2", "type": "PING", "id": i,
              "reason": "lost"} for i in range(1, 4)]
    (line,) = [html for _, _, html in log_lines(drops)]
    assert "PING n1 → n2 lost: loss" in line and 'data-repeat="3"' in line and "×3" in line


def test_a_partition_is_drawn_on_each_link_it_breaks():
    cls = get_lab("split-brain")
    lab = cls({}, 1)
    builder = FrameBuilder("r1", node_actions(cls))
    build(lab, builder)
    lab.apply("partition", ["n1,n2|n3,n4,n5"])
    lab.apply("cut", ["n3", "n4"])
    _, delta, _ = build(lab, builder)
    cluster = delta[delta.index('id="cluster-r1"'):delta.index("</svg>")]
    crossing = [e for e in lab.snapshot()["edges"] if len({"n1", "n2"} & set(e)) == 1]
    assert cluster.count("data-broken-link") == len(crossing) + 1
    assert "n2 – n3: no messages either way (partition)" in cluster
    assert "n3 → n4: cut one way" in cluster
    assert 'aria-label="Cluster of 5 nodes; network partitioned: n1, n2 | n3, n4, n5; link n3 → n4 cut one way"' in cluster


def test_a_frozen_frame_holds_the_messages_in_flight_where_they_are():
    cls = get_lab("circuit-breaker")
    lab = cls({}, 1)
    builder = FrameBuilder("r1", node_actions(cls))
    for t in range(100, 2000, 100):
        lab.run_until(t)
        if lab.snapshot()["network"]["inflight"]:
            break
    _, delta, _ = builder.build(lab, lab.drain(), {"speed": 1, "frozen": True})
    held = flight_data(delta)["held"]
    assert held and all(0 <= h[3] <= 1 for h in held)


def test_fragments_are_not_rendered_again_when_their_inputs_did_not_change(monkeypatch):
    cls = get_lab("leader-election")
    lab = cls({}, 1)
    builder = FrameBuilder("r1", node_actions(cls))
    build(lab, builder)
    rendered = []
    for name, tpl in frames.part_templates().items():
        monkeypatch.setattr(tpl, "render", lambda *a, _n=name, _r=tpl.render, **k: rendered.append(_n) or _r(*a, **k))
    lab.run_until(2000)  # heartbeats only
    build(lab, builder)
    assert rendered == []
    lab.apply("crash", ["n5"])
    build(lab, builder)
    assert sorted(rendered) == ["cluster", "nodes"]


def test_network_faults_read_as_sentences():
    assert describe_event({"seq": 1, "t": 0, "kind": "cut", "src": "n1", "dst": "n3"}) == "link n1 → n3 cut (one-way)"
    assert describe_event({"seq": 2, "t": 0, "kind": "delay", "src": "n1", "dst": "n3", "ms": 1500.0}) == \
        "link n1 → n3 delayed by 1.5 s"
    assert describe_event({"seq": 3, "t": 0, "kind": "send", "src": "n3", "dst": "n5", "type": "ELECTION"}) == \
        "n3 sends ELECTION to n5"


def test_a_labs_own_event_about_a_node_starts_with_the_node():
    assert describe_event({"seq": 1, "t": 0, "kind": "follow", "node": "n1", "leader": "n4"}) == "n1: follow (leader=n4)"
    assert describe_event({"seq": 2, "t": 0, "kind": "leader", "node": "n4"}) == "n4: leader"
