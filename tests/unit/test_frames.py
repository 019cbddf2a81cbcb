"""Frames as viewers receive them: what a delta carries, and the words of the log."""

import re

import pytest

from pattern_lab.runs.frames import FrameBuilder, describe_event, node_actions, positions
from pattern_lab.runs.services import Rejected, check_shape, normalise_args
from simulations import get_lab

HEAD = re.compile(r'data-seq="(\d+)" data-prev="(\d+)" data-kind="(\w+)"')


def build(lab, builder):
    return builder.build(lab, lab.drain(), {"speed": 1, "frozen": False})


def test_delta_frames_chain_and_carry_only_what_changed():
    cls = get_lab("leader-election")
    lab = cls({}, 1)
    builder = FrameBuilder("r1", node_actions(cls))
    seq, delta, full = build(lab, builder)
    assert 'id="cluster-r1"' in delta and 'data-kind="full"' in full
    lab.run_until(50)  # nothing visible changes in 50 ms
    seq2, delta2, _ = build(lab, builder)
    s, prev, kind = HEAD.search(delta2).groups()
    assert (int(s), int(prev), kind) == (seq2, seq, "delta")
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
