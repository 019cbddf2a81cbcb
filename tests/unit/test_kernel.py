"""The kernel: virtual time, the network's faults, determinism, the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulations import get_lab, labs
from simulations.kernel import Arg, Lab, Node, SimError, action, parse_time

from ..simhelpers import events, run

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, hashseed="0"):
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    return subprocess.run([sys.executable, "-m", "simulations", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_times_accept_units():
    assert parse_time("1500") == 1500
    assert parse_time("1.5s") == 1500
    assert parse_time("200ms") == 200
    assert parse_time("2m") == 120_000
    with pytest.raises(SimError, match="not a time"):
        parse_time("soon")


@pytest.mark.parametrize("slug", sorted(labs()))
def test_every_lab_is_byte_identical_across_processes(slug):
    """Same lab, params, seed and commands: the same bytes, whatever PYTHONHASHSEED says."""
    lab = get_lab(slug)
    target = next(n for n in lab(None, 1).nodes if n not in lab.UNFAULTABLE)
    args = ["run", slug, "--seed", "42", "--do", f"500ms crash {target}", "--do", f"2s restart {target}",
            "--until", "4s"]
    if "crash" not in lab.ACTIONS:
        args = ["run", slug, "--seed", "42", "--until", "4s"]
    first, second = cli(*args, hashseed="1"), cli(*args, hashseed="2")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    lines = first.stdout.splitlines()
    assert "snapshot" in json.loads(lines[-1])
    seqs = [json.loads(line)["seq"] for line in lines[:-1]]
    assert seqs == list(range(1, len(seqs) + 1)), "sequence numbers never skip or repeat"


def test_cli_lists_and_describes_labs():
    listed = cli("list")
    assert "leader-election" in listed.stdout
    described = json.loads(cli("describe", "leader-election").stdout)
    assert {p["name"] for p in described["params"]} >= {"algorithm", "nodes"}
    assert "elect" in {a["name"] for a in described["actions"]}
    assert "partition" in {a["name"] for a in described["actions"]}


@pytest.mark.parametrize("args, message", [
    (["run", "no-such-lab"], "there is no lab"),
    (["run", "leader-election", "--param", "nodes=12"], "between 3 and 9"),
    (["run", "leader-election", "--param", "colour=red"], "has no param"),
    (["run", "leader-election", "--do", "1s explode n1"], None),
    (["run", "leader-election", "--do", "later crash n1"], "not a time"),
])
def test_cli_reports_bad_input_clearly(args, message):
    result = cli(*args)
    if message is None:  # an unknown action is rejected as an event, the run goes on
        assert result.returncode == 0
        rejected = [json.loads(line) for line in result.stdout.splitlines() if '"rejected"' in line]
        assert rejected and "no action 'explode'" in rejected[0]["error"]
    else:
        assert result.returncode == 2
        assert message in result.stderr
        assert "Traceback" not in result.stderr


def test_partition_loses_messages_across_sides_only():
    lab = run("leader-election", "100ms partition n1,n2|n3,n4,n5", until="3s")
    drops = [e for e in lab.log if e["kind"] == "drop" and e["reason"] == "partition"]
    assert drops and all((e["src"] in ("n1", "n2")) != (e["dst"] in ("n1", "n2")) for e in drops)


def test_one_way_cut_and_drop_next():
    lab = run("leader-election", "100ms cut n5 n1", until="2s")
    assert any(e["kind"] == "drop" and e["src"] == "n5" and e["dst"] == "n1" for e in lab.log)
    assert not any(e["kind"] == "drop" and e["src"] == "n1" and e["dst"] == "n5" for e in lab.log)
    lab = run("leader-election", "100ms drop-next n5 n2", until="1s")
    assert len([e for e in lab.log if e["kind"] == "drop" and e["reason"] == "dropped"]) == 1


def test_duplicate_next_delivers_twice():
    lab = run("leader-election", "100ms duplicate-next n5 n2", until="1s")
    assert len([e for e in lab.log if e["kind"] == "send" and e.get("copy")]) == 1


def test_bad_commands_change_nothing():
    lab = run("leader-election", until="1s")
    before = json.dumps(lab.snapshot())
    for name, args in [("crash", ["n42"]), ("restart", ["n1"]), ("delay", ["n1", "n2", "forever"]),
                       ("partition", ["n1|n1"]), ("loss", ["n1", "n2", "150"]), ("nope", [])]:
        with pytest.raises(SimError):
            lab.apply(name, args)
    assert json.dumps(lab.snapshot()) == before


# --------------------------------------------------------------------------
# Exact event traces of the kernel's semantics, in the style of SimPy's own
# tests: a tiny lab (three nodes, every message takes exactly 10 ms) and, for
# each rule, the exact list of what happens and when.
# --------------------------------------------------------------------------


class Echo(Node):
    def on_message(self, msg):
        self.lab.emit("handled", node=self.id, msg=msg.body.get("tag"), incarnation=self.incarnation)

    def fired(self, name):
        self.lab.emit("fired", node=self.id, timer=name)


class Tiny(Lab):
    slug = ""  # not a real lab: not listed, not served
    LATENCY = (10.0, 10.0)

    def setup(self):
        for name in ("a", "b", "c"):
            self.add_node(Echo(self, name))

    @action("ping", Arg("from"), Arg("to"), Arg("tag", "text"))
    def do_ping(self, src, dst, tag):
        self.nodes[src].send(dst, "PING", tag=tag)

    @action("arm", Arg("node"), Arg("name", "text"), Arg("ms", "ms"))
    def do_arm(self, node, name, ms):
        self.nodes[node].after(ms, self.nodes[node].fired, name, key=name)

    @action("disarm", Arg("node"), Arg("name", "text"))
    def do_disarm(self, node, name):
        self.nodes[node].cancel(name)


def trace(*commands, until):
    """Apply `(t, action, args...)` commands; return every event but sends as (t, kind, fields)."""
    lab = Tiny(None, 1)
    out = []
    for t, name, *args in commands:
        lab.run_until(t)
        lab.apply(name, [str(a) for a in args])
    lab.run_until(until)
    for e in lab.drain():
        fields = {k: v for k, v in e.items() if k not in ("seq", "t", "kind", "id", "type")}
        if e["kind"] != "send":
            out.append((e["t"], e["kind"], fields))
    return out


def test_a_healthy_message_is_handled_on_arrival():
    assert trace((0, "ping", "a", "b", "m1"), until=100) == [
        (10.0, "handled", {"node": "b", "msg": "m1", "incarnation": 1}),
    ]


def test_a_slow_node_serves_its_messages_one_at_a_time():
    assert trace((0, "slow", "b", 100), (0, "ping", "a", "b", "m1"), (0, "ping", "a", "b", "m2"),
                 (0, "ping", "c", "b", "m3"), until=1000) == [
        (0.0, "slow", {"node": "b", "ms": 100.0}),
        (110.0, "handled", {"node": "b", "msg": "m1", "incarnation": 1}),
        (210.0, "handled", {"node": "b", "msg": "m2", "incarnation": 1}),
        (310.0, "handled", {"node": "b", "msg": "m3", "incarnation": 1}),
    ]


def test_messages_queued_at_a_slow_node_die_with_its_incarnation():
    assert trace((0, "slow", "b", 100), (0, "ping", "a", "b", "m1"), (0, "ping", "a", "b", "m2"),
                 (150, "crash", "b"), (160, "restart", "b"), (400, "ping", "a", "b", "m3"), until=1000) == [
        (0.0, "slow", {"node": "b", "ms": 100.0}),
        (110.0, "handled", {"node": "b", "msg": "m1", "incarnation": 1}),
        (150.0, "crash", {"node": "b"}),
        (160.0, "restart", {"node": "b"}),
        # m2 was waiting behind m1 when b crashed: it is gone, the new b never sees it.
        (410.0, "handled", {"node": "b", "msg": "m3", "incarnation": 2}),  # restart resets slowness
    ]


def test_messages_held_by_a_paused_node_die_with_its_incarnation():
    assert trace((0, "pause", "b"), (0, "ping", "a", "b", "m1"), (50, "crash", "b"), (60, "restart", "b"),
                 until=1000) == [
        (0.0, "pause", {"node": "b"}),
        (50.0, "crash", {"node": "b"}),
        (60.0, "restart", {"node": "b"}),
    ]


def test_pause_freezes_timers_which_go_on_with_the_time_they_had_left():
    assert trace((0, "arm", "b", "t1", 100), (0, "arm", "b", "t2", 300), (40, "pause", "b"),
                 (500, "resume", "b"), until=2000) == [
        (40.0, "pause", {"node": "b"}),
        (500.0, "resume", {"node": "b"}),
        (560.0, "fired", {"node": "b", "timer": "t1"}),  # 60 ms were left at the pause
        (760.0, "fired", {"node": "b", "timer": "t2"}),  # 260 ms were left
    ]


def test_a_paused_node_handles_waiting_messages_in_order_when_it_resumes():
    assert trace((0, "pause", "b"), (0, "ping", "a", "b", "m1"), (5, "ping", "c", "b", "m2"),
                 (100, "resume", "b"), until=1000) == [
        (0.0, "pause", {"node": "b"}),
        (100.0, "resume", {"node": "b"}),
        (100.0, "handled", {"node": "b", "msg": "m1", "incarnation": 1}),
        (100.0, "handled", {"node": "b", "msg": "m2", "incarnation": 1}),
    ]


def test_pause_stops_work_in_progress_on_a_slow_node():
    assert trace((0, "slow", "b", 100), (0, "ping", "a", "b", "m1"), (0, "ping", "a", "b", "m2"),
                 (60, "pause", "b"), (300, "resume", "b"), until=1000) == [
        (0.0, "slow", {"node": "b", "ms": 100.0}),
        (60.0, "pause", {"node": "b"}),
        (300.0, "resume", {"node": "b"}),
        (350.0, "handled", {"node": "b", "msg": "m1", "incarnation": 1}),  # 50 ms of work were left
        (450.0, "handled", {"node": "b", "msg": "m2", "incarnation": 1}),
    ]


def test_a_timer_of_a_paused_node_can_be_cancelled():
    """The sidecar's KeyError: a timer that came due during a pause could not be cancelled."""
    assert trace((0, "arm", "b", "t1", 100), (40, "pause", "b"), (200, "disarm", "b", "t1"),
                 (300, "resume", "b"), until=2000) == [
        (40.0, "pause", {"node": "b"}),
        (300.0, "resume", {"node": "b"}),
    ]


def test_a_timer_set_on_a_paused_node_starts_counting_on_resume():
    assert trace((0, "pause", "b"), (50, "arm", "b", "t1", 100), (300, "resume", "b"), until=2000) == [
        (0.0, "pause", {"node": "b"}),
        (300.0, "resume", {"node": "b"}),
        (400.0, "fired", {"node": "b", "timer": "t1"}),
    ]


def test_a_crashed_node_has_no_timers():
    assert trace((0, "arm", "b", "t1", 100), (50, "crash", "b"), (60, "arm", "b", "t2", 10),
                 (70, "restart", "b"), until=2000) == [
        (50.0, "crash", {"node": "b"}),
        (70.0, "restart", {"node": "b"}),
    ]


def test_a_node_named_on_no_side_of_a_partition_reaches_every_side():
    got = trace((0, "partition", "a|b"), (10, "ping", "a", "b", "ab"), (10, "ping", "c", "a", "ca"),
                (10, "ping", "b", "c", "bc"), until=1000)
    assert got == [
        (0.0, "partition", {"sides": [["a"], ["b"]], "unnamed": ["c"],
                            "note": "c named on no side: still connected to every side"}),
        (10.0, "drop", {"src": "a", "dst": "b", "reason": "partition"}),
        (20.0, "handled", {"node": "a", "msg": "ca", "incarnation": 1}),
        (20.0, "handled", {"node": "c", "msg": "bc", "incarnation": 1}),
    ]


def test_a_message_in_flight_when_a_partition_starts_does_not_cross_it():
    assert trace((0, "ping", "a", "b", "m1"), (0, "ping", "b", "c", "m2"), (5, "partition", "a|b,c"),
                 until=100) == [
        (5.0, "partition", {"sides": [["a"], ["b", "c"]]}),
        (10.0, "drop", {"src": "a", "dst": "b", "reason": "partition"}),
        (10.0, "handled", {"node": "c", "msg": "m2", "incarnation": 1}),
    ]


def test_a_one_way_cut_drops_are_labelled_cut_also_for_messages_in_flight():
    assert trace((0, "ping", "a", "b", "m1"), (5, "cut", "a", "b"), (20, "ping", "a", "b", "m2"),
                 (20, "ping", "b", "a", "m3"), until=100) == [
        (5.0, "cut", {"src": "a", "dst": "b"}),
        (10.0, "drop", {"src": "a", "dst": "b", "reason": "cut"}),
        (20.0, "drop", {"src": "a", "dst": "b", "reason": "cut"}),
        (30.0, "handled", {"node": "a", "msg": "m3", "incarnation": 1}),
    ]


def test_heal_before_arrival_lets_a_message_through():
    """The network is judged when a message arrives: a split healed meanwhile loses nothing."""
    assert trace((0, "ping", "a", "b", "m1"), (2, "partition", "a|b"), (5, "heal"), until=100) == [
        (2.0, "partition", {"sides": [["a"], ["b"]], "unnamed": ["c"],
                            "note": "c named on no side: still connected to every side"}),
        (5.0, "heal", {}),
        (10.0, "handled", {"node": "b", "msg": "m1", "incarnation": 1}),
    ]


def test_a_partition_naming_a_node_twice_is_refused():
    lab = Tiny(None, 1)
    with pytest.raises(SimError, match="two sides"):
        lab.apply("partition", ["a,b|b"])


# --------------------------------------------------------------------------
# The same rules seen through real labs (the commands of issue 7)
# --------------------------------------------------------------------------


def job_ms(lab):
    return next(e["ms"] for e in lab.log if e["kind"] == "job-done")


def test_pausing_a_worker_stops_its_task_so_the_job_takes_longer():
    plain = run("scatter-gather", seed=2, until="8s", reassign="false")
    paused = run("scatter-gather", "320 pause w1", "2000 resume w1", seed=2, until="8s", reassign="false")
    # w1's task had about 2 s left when it froze for 1.68 s: the job ends about that much later.
    assert job_ms(paused) > job_ms(plain) + 1500


def test_a_partition_that_does_not_name_the_client_leaves_it_connected():
    lab = run("hinted-handoff", "1s partition n3|n1,n2,n4,n5,n6", "6s heal", seed=3, until="12s", rate="4")
    drops = events(lab, "drop")
    assert drops and not any("client" in (e["src"], e["dst"]) for e in drops)
    assert all({e["src"], e["dst"]} & {"n3"} for e in drops)
    part = events(lab, "partition")[0]
    assert part["unnamed"] == ["client"] and "connected to every side" in part["note"]
    assert lab.snapshot()["metrics"]["writes_failed"] == 0


def test_a_sidecar_timer_due_during_a_pause_can_be_cancelled_after_resume():
    lab = run("sidecar", "1.05s pause sidecar", "1.6s resume sidecar", seed=1, until="2s", kind="proxy", rate="20")
    assert lab.now == 2000


def test_making_a_slow_node_fast_again_shortens_the_message_in_service():
    assert trace((0, "slow", "b", 1000), (0, "ping", "a", "b", "m1"), (0, "ping", "a", "b", "m2"),
                 (100, "slow", "b", 0), until=5000) == [
        (0.0, "slow", {"node": "b", "ms": 1000.0}),
        (100.0, "slow", {"node": "b", "ms": 0.0}),
        (100.0, "handled", {"node": "b", "msg": "m1", "incarnation": 1}),
        (100.0, "handled", {"node": "b", "msg": "m2", "incarnation": 1}),
    ]


def test_a_timer_that_would_act_on_the_original_run_after_a_copy_is_refused():
    """Time travel copies runs: a timer calling a lambda would go on acting on the
    original, so the kernel refuses it and asks for a method."""
    import copy

    class Tick(Node):
        def boot(self):
            self.ticks = 0
            self.every(100, self.tick, key="tick")

        def tick(self):
            self.ticks += 1

    class Small(Lab):
        def setup(self):
            self.add_node(Tick(self, "a"))

    lab = Small()
    lab.run_until(250)
    twin = copy.deepcopy(lab)
    twin.run_until(1000)
    assert (lab.nodes["a"].ticks, twin.nodes["a"].ticks) == (2, 10)
    with pytest.raises(TypeError, match="method"):
        lab.nodes["a"].after(10, lambda: lab.nodes["a"].tick())
