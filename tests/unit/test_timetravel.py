"""Time travel: a seek shows exactly what a fresh replay shows, from a
checkpoint a short stretch away; the CLI's --at prints that moment."""

import io
import json
import random
from contextlib import redirect_stdout

import pytest

from pattern_lab.runs.frames import FrameBuilder, node_actions
from pattern_lab.timetravel import history as hist
from pattern_lab.timetravel.feed import diagram_feed, frame_block
from pattern_lab.timetravel.history import CHECKPOINT_MS, History
from pattern_lab.timetravel.views import log_html
from simulations import get_lab, labs
from simulations.cli import main as cli
from simulations.kernel import replay


def faulty_log(lab_cls, seed=3, n=40, step=(300, 700, 1500)):
    """A command log of crashes, restarts, pauses, resumes and partitions."""
    nodes = [x for x in lab_cls({}, seed).nodes if x not in lab_cls.UNFAULTABLE]
    rng = random.Random(seed)
    log, t = [], 0.0
    for _ in range(n):
        t += rng.choice(step)
        action = rng.choice(["crash", "restart", "pause", "resume", "partition", "heal"])
        if action == "partition" and "partition" in lab_cls.ACTIONS and len(nodes) > 1:
            k = rng.randrange(1, len(nodes))
            log.append((t, "partition", [",".join(nodes[:k]) + "|" + ",".join(nodes[k:])]))
        elif action in lab_cls.ACTIONS and action != "partition":
            log.append((t, action, [] if action == "heal" else [rng.choice(nodes)]))
    return log


def fresh(lab_cls, log, t):
    lab = replay(lab_cls, {}, 3, [c for c in log if c[0] <= t], t)
    return lab, lab.drain()


@pytest.mark.parametrize("slug", sorted(labs()))
def test_seek_equals_a_fresh_replay_byte_for_byte(slug):
    lab_cls = get_lab(slug)
    log = faulty_log(lab_cls)
    history = History(lab_cls, {}, 3, log)
    # Out of order on purpose: later seeks build checkpoints that earlier ones reuse.
    for t in (23_456.0, 0.0, 1_234.5, log[7][0], 12_000.0, CHECKPOINT_MS * 2, 31_000.0):
        moment = history.seek(t, window_ms=3000)
        lab, events = fresh(lab_cls, log, t)
        ours, theirs = moment.lab.snapshot(), lab.snapshot()
        assert json.dumps(ours, sort_keys=True) == json.dumps(theirs, sort_keys=True), (slug, t)
        assert moment.recent == events[-hist.LOG_KEEP:]
        a, b = FrameBuilder("r", node_actions(lab_cls)), FrameBuilder("r", node_actions(lab_cls))
        assert a.parts(moment.lab, ours) == b.parts(lab, theirs)
        assert log_html(a, moment.recent) == log_html(b, events)
        assert moment.window == [e for e in events if e["t"] > t - 3000 and e["kind"] in hist.DIAGRAM_KINDS]


def test_a_seek_replays_at_most_one_checkpoint_interval():
    lab_cls = get_lab("leader-election")
    history = History(lab_cls, {}, 3, faulty_log(lab_cls, n=200, step=(100, 300)))
    history.extend(40_000)
    assert [c.t for c in history.checkpoints] == [i * CHECKPOINT_MS for i in range(9)]
    for t in (4_999.0, 5_000.0, 17_777.0, 39_999.0):
        assert t - history.checkpoint_before(t).t < CHECKPOINT_MS
    # A seek never touches the checkpoint it starts from.
    before = json.dumps(history.checkpoints[3].lab.snapshot())
    history.seek(17_000)
    assert json.dumps(history.checkpoints[3].lab.snapshot()) == before


def test_a_growing_command_log_keeps_the_checkpoints_before_it():
    lab_cls = get_lab("split-brain")
    log = faulty_log(lab_cls, n=30)
    early = [c for c in log if c[0] <= 8_000]
    history = History(lab_cls, {}, 3, early)
    history.seek(10_000)
    kept = history.checkpoints[:2]
    assert history.update_commands(log)
    assert history.checkpoints[:2] == kept
    lab, _ = fresh(lab_cls, log, 25_000)
    assert history.seek(25_000).lab.snapshot() == lab.snapshot()
    # A log that does not continue this one is refused (the cache builds anew).
    assert not history.update_commands(log[1:])


def test_a_late_command_before_the_head_rewinds_the_history():
    lab_cls = get_lab("leader-election")
    history = History(lab_cls, {}, 3, [(1000.0, "crash", ["n5"])])
    history.extend(20_000)
    log = [(1000.0, "crash", ["n5"]), (12_000.0, "restart", ["n5"])]
    assert history.update_commands(log)
    assert history.head.now <= 12_000
    lab, _ = fresh(lab_cls, log, 19_000)
    assert history.seek(19_000).lab.snapshot() == lab.snapshot()


def test_step_times_are_the_neighbouring_logged_events():
    lab_cls = get_lab("leader-election")
    history = History(lab_cls, {}, 3, [(2000.0, "crash", ["n5"])])
    moment = history.seek(1999.0, lookahead=10_000)
    assert moment.next_t == 2000.0  # the crash is the next line of the log
    after = history.seek(2000.0, lookahead=10_000)
    assert after.lab.nodes["n5"].status == "down"
    assert after.prev_t is None or after.prev_t < 2000.0
    assert after.next_t > 2000.0


def test_the_cache_is_bounded_and_follows_the_log():
    lab_cls = get_lab("leader-election")
    for i in range(hist.MAX_RUNS + 3):
        hist.history_for(f"run{i}", lab_cls, {"algorithm": "bully", "nodes": 5}, 1, [])
    assert len(hist._cache) == hist.MAX_RUNS and "run0" not in hist._cache
    h = hist.history_for("x", lab_cls, {"algorithm": "bully", "nodes": 5}, 1, [(100.0, "crash", ["n5"])])
    assert hist.history_for("x", lab_cls, {"algorithm": "bully", "nodes": 5}, 1,
                            [(100.0, "crash", ["n5"]), (900.0, "restart", ["n5"])]) is h
    assert hist.history_for("x", lab_cls, {"algorithm": "bully", "nodes": 5}, 2, []) is not h  # another seed


def test_diagram_feed_says_what_happened_to_each_message():
    lab_cls = get_lab("split-brain")
    lab = lab_cls({}, 1)
    lab.run_until(500)
    nodes = list(lab.nodes)
    lab.apply("partition", [nodes[0] + "|" + ",".join(nodes[1:])])
    lab.run_until(3000)
    feed = diagram_feed(lab.drain())
    kinds = {f[0] for f in feed}
    assert {"s", "d", "f"} <= kinds
    lost = [f for f in feed if f[0] == "d"]
    assert lost and all(f[6] == "partition" for f in lost)
    assert frame_block("r1", []) == ""
    block = frame_block("r1", [{"seq": 1, "t": 0, "kind": "crash", "node": "n1"}])
    assert block.startswith('<div id="msgs-r1" hidden hx-swap-oob="true"') and "<script" not in block


def run_cli(*args):
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli(list(args))
    return code, out.getvalue()


def test_cli_at_prints_the_snapshot_at_that_moment():
    base = ["run", "leader-election", "--seed", "7", "--do", "1s crash n5", "--do", "3s restart n5"]
    code, out = run_cli(*base, "--until", "5s", "--at", "2.5s", "--snapshot-only")
    assert code == 0
    snap = json.loads(out)["snapshot"]
    assert snap["t"] == 2500 and {n["id"]: n["status"] for n in snap["nodes"]}["n5"] == "down"
    lab_cls = get_lab("leader-election")
    expect = History(lab_cls, {}, 7, [(1000.0, "crash", ["n5"]), (3000.0, "restart", ["n5"])]).seek(2500).lab
    assert json.loads(out)["snapshot"] == json.loads(json.dumps(expect.snapshot()))
    # With the events: the last line is the snapshot, no event is after 2.5 s.
    code, out = run_cli(*base, "--at", "2500")
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and all(e["t"] <= 2500 for e in lines[:-1]) and "snapshot" in lines[-1]


def test_cli_at_refuses_a_bad_moment(capsys):
    assert cli(["run", "leader-election", "--until", "5s", "--at", "9s"]) == 2
    assert "--at 9s is after --until 5s" in capsys.readouterr().err
    assert cli(["run", "leader-election", "--at", "-1"]) == 2
    assert "is not a time" in capsys.readouterr().err


def test_marks_include_a_command_at_the_very_end():
    lab_cls = get_lab("leader-election")
    history = History(lab_cls, {}, 3, [])
    history.extend(2000)
    assert history.update_commands([(2000.0, "crash", ["n5"])])
    assert [m["kind"] for m in history.marks_until(2000.0)] == ["crash"]
    lab, _ = fresh(lab_cls, [(2000.0, "crash", ["n5"])], 9000)
    assert history.seek(9000).lab.snapshot() == lab.snapshot()


@pytest.mark.parametrize("raw, status, words", [
    ("-1", 400, "must be 0 or more"), ("abc", 400, "must be a number"), ("inf", 400, "finite"),
    ("", 400, "Give the moment"), (None, 400, "Give the moment"), ("5001", 404, "in its future"),
])
def test_a_bad_moment_is_refused_with_the_reason(raw, status, words):
    from pattern_lab.runs.services import Rejected
    from pattern_lab.timetravel.views import parse_ms

    with pytest.raises(Rejected) as err:
        parse_ms(raw, 5000.0)
    assert err.value.status == status and words in err.value.message
    assert parse_ms("5000.2", 5000.0) == 5000.0 and parse_ms("12.5", 5000.0) == 12.5
