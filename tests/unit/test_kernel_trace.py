"""Exact event traces of the kernel, in the style of SimPy's own tests.

Each test builds a tiny cluster by hand (three nodes; every message takes
exactly 5 ms, LATENCY = (5, 5)), gives it commands at fixed times through
`lab.command(...)`, as the page and the CLI do, and asserts the complete list
of events that come out, as (t, kind, fields).  Only the public behaviour is
used (Lab, Node, send, after, cancel, emit, boot, disk and the fault
actions), so these traces must keep holding however the kernel is organised
inside.

A node's life is counted on its disk (`boot()` runs at start and at every
restart), so `life` tells which incarnation handled a message.
"""

from __future__ import annotations

import pytest

from simulations.kernel import Arg, Lab, Node, action

SEED = 7


class Peer(Node):
    """Answers PING with PONG while the ball has hops left; reports every
    message and timer it handles."""

    def boot(self):
        self.disk["life"] = self.disk.get("life", 0) + 1

    def on_message(self, msg):
        self.lab.emit("handled", node=self.id, src=msg.src, type=msg.type, tag=msg.body["tag"],
                      life=self.disk["life"])
        hops = msg.body.get("hops", 0)
        if hops:
            self.send(msg.src, "PONG" if msg.type == "PING" else "PING", tag=msg.body["tag"], hops=hops - 1)

    def fired(self, name, every):
        self.lab.emit("fired", node=self.id, timer=name, life=self.disk["life"])
        if every:  # re-arms itself, as a protocol's own loop would
            self.after(every, self.fired, name, every, key=name)


class Trio(Lab):
    slug = ""  # a test cluster: not listed, not served
    LATENCY = (5.0, 5.0)

    def setup(self):
        for name in ("a", "b", "c"):
            self.add_node(Peer(self, name))

    @action("ping", Arg("from"), Arg("to"), Arg("tag", "text"), Arg("hops", "int", optional=True, default=0))
    def do_ping(self, src, dst, tag, hops):
        self.nodes[src].send(dst, "PING", tag=tag, hops=hops)

    @action("arm", Arg("node"), Arg("name", "text"), Arg("ms", "ms"), Arg("every", "ms", optional=True, default=0))
    def do_arm(self, node, name, ms, every):
        self.nodes[node].after(ms, self.nodes[node].fired, name, every, key=name)

    @action("disarm", Arg("node"), Arg("name", "text"))
    def do_disarm(self, node, name):
        self.nodes[node].cancel(name)


def trace(*commands, until):
    """Apply `(t, action, args...)` at their times, run until `until`, and
    return every event as (t, kind, fields) (the event's own id and seq left out)."""
    lab = Trio(None, SEED)
    for t, name, *args in commands:
        lab.run_until(t)
        error = lab.command(name, [str(a) for a in args])
        assert error is None, f"{name} {args} was refused: {error}"
    lab.run_until(until)
    events = lab.drain()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "seq numbers every event once, in order"
    return [(e["t"], e["kind"], {k: v for k, v in e.items() if k not in ("seq", "t", "kind", "id")})
            for e in events]


def send(t, src, dst, type, tag, hops, arrive, **extra):
    return (t, "send", {"src": src, "dst": dst, "type": type, "arrive": arrive, **extra, "tag": tag, "hops": hops})


def handled(t, node, src, type, tag, life=1):
    return (t, "handled", {"node": node, "src": src, "type": type, "tag": tag, "life": life})


def fired(t, node, timer, life=1):
    return (t, "fired", {"node": node, "timer": timer, "life": life})


# -- messages and timers ------------------------------------------------------------


def test_ping_pong_takes_one_latency_per_hop():
    assert trace((0, "ping", "a", "b", "x", 3), until=100) == [
        send(0.0, "a", "b", "PING", "x", 3, 5.0),
        handled(5.0, "b", "a", "PING", "x"),
        send(5.0, "b", "a", "PONG", "x", 2, 10.0),
        handled(10.0, "a", "b", "PONG", "x"),
        send(10.0, "a", "b", "PING", "x", 1, 15.0),
        handled(15.0, "b", "a", "PING", "x"),
        send(15.0, "b", "a", "PONG", "x", 0, 20.0),
        handled(20.0, "a", "b", "PONG", "x"),
    ]


def test_timers_fire_when_due_rearm_and_cancel():
    assert trace((0, "arm", "a", "once", 30), (0, "arm", "b", "tick", 20, 20), (10, "arm", "a", "once", 50),
                 (70, "disarm", "b", "tick"), until=200) == [
        fired(20.0, "b", "tick"),
        fired(40.0, "b", "tick"),
        fired(60.0, "a", "once"),  # re-armed at 10 ms for 50 ms: the first one (due at 30) never fires
        fired(60.0, "b", "tick"),
    ]


def test_same_millisecond_things_happen_in_the_order_they_were_scheduled():
    # All due at 5 ms: c's timer is set first, then a's and b's messages are sent, then c's
    # second timer is set.
    assert trace((0, "arm", "c", "first", 5), (0, "ping", "a", "c", "from-a"), (0, "ping", "b", "c", "from-b"),
                 (0, "arm", "c", "last", 5), until=100) == [
        send(0.0, "a", "c", "PING", "from-a", 0, 5.0),
        send(0.0, "b", "c", "PING", "from-b", 0, 5.0),
        fired(5.0, "c", "first"),
        handled(5.0, "c", "a", "PING", "from-a"),
        handled(5.0, "c", "b", "PING", "from-b"),
        fired(5.0, "c", "last"),
    ]


# -- pause and resume -----------------------------------------------------------------


def test_a_paused_node_keeps_its_timers_left_over_time_and_its_waiting_messages():
    assert trace((0, "arm", "b", "t1", 100), (0, "arm", "b", "t2", 30), (20, "pause", "b"),
                 (20, "ping", "a", "b", "m1"), (22, "ping", "c", "b", "m2"), (200, "resume", "b"), until=1000) == [
        (20.0, "pause", {"node": "b"}),
        send(20.0, "a", "b", "PING", "m1", 0, 25.0),
        send(22.0, "c", "b", "PING", "m2", 0, 27.0),
        (200.0, "resume", {"node": "b"}),
        handled(200.0, "b", "a", "PING", "m1"),  # waiting messages first, in arrival order
        handled(200.0, "b", "c", "PING", "m2"),
        fired(210.0, "b", "t2"),  # 10 ms were left at the pause
        fired(280.0, "b", "t1"),  # 80 ms were left
    ]


# -- slow nodes ---------------------------------------------------------------------


def test_a_slow_node_serves_its_queue_one_message_at_a_time():
    assert trace((0, "slow", "b", 20), (0, "ping", "a", "b", "m1"), (0, "ping", "c", "b", "m2"),
                 (1, "ping", "a", "b", "m3"), (100, "ping", "c", "b", "m4"), until=1000) == [
        (0.0, "slow", {"node": "b", "ms": 20.0}),
        send(0.0, "a", "b", "PING", "m1", 0, 5.0),
        send(0.0, "c", "b", "PING", "m2", 0, 5.0),
        send(1.0, "a", "b", "PING", "m3", 0, 6.0),
        handled(25.0, "b", "a", "PING", "m1"),
        handled(45.0, "b", "c", "PING", "m2"),
        handled(65.0, "b", "a", "PING", "m3"),
        send(100.0, "c", "b", "PING", "m4", 0, 105.0),
        handled(125.0, "b", "c", "PING", "m4"),  # an idle slow node still takes 20 ms
    ]


def test_a_restart_ends_the_slowness_of_the_crashed_incarnation():
    """`slow` belongs to the process: a slowed node that crashes and restarts
    serves messages at normal speed again."""
    assert trace((0, "slow", "b", 50), (10, "crash", "b"), (20, "restart", "b"), (30, "ping", "a", "b", "m1"),
                 until=1000) == [
        (0.0, "slow", {"node": "b", "ms": 50.0}),
        (10.0, "crash", {"node": "b"}),
        (20.0, "restart", {"node": "b"}),
        send(30.0, "a", "b", "PING", "m1", 0, 35.0),
        handled(35.0, "b", "a", "PING", "m1", life=2),  # on arrival, not 50 ms later
    ]


# -- crashes -------------------------------------------------------------------------


def test_a_crash_loses_the_queue_the_message_in_service_and_the_timers_of_the_incarnation():
    assert trace((0, "slow", "b", 20), (0, "arm", "b", "t1", 40), (0, "ping", "a", "b", "m1"),
                 (0, "ping", "a", "b", "m2"), (15, "crash", "b"), (16, "restart", "b"), (20, "ping", "a", "b", "m3"), until=1000) == [
        (0.0, "slow", {"node": "b", "ms": 20.0}),
        send(0.0, "a", "b", "PING", "m1", 0, 5.0),
        send(0.0, "a", "b", "PING", "m2", 0, 5.0),
        # m1 was in service (due at 25), m2 waiting behind it, t1 due at 40: none reach life 2,
        # which handles only what is sent to it after the restart.
        (15.0, "crash", {"node": "b"}),
        (16.0, "restart", {"node": "b"}),
        send(20.0, "a", "b", "PING", "m3", 0, 25.0),
        handled(25.0, "b", "a", "PING", "m3", life=2),
    ]


def test_a_message_landing_on_a_down_node_is_dropped_and_the_network_knows_no_incarnations():
    # m1 lands while b is down: dropped.  m2 was sent to b's first life, which crashed, but
    # lands after the restart: the second life gets it (a crash empties the node, not the
    # network).  b's own message, sent before its crash, still reaches c.
    assert trace((0, "ping", "a", "b", "m1"), (0, "ping", "b", "c", "m3"), (2, "crash", "b"), (8, "restart", "b"),
                 (10, "ping", "a", "b", "m2"), (11, "crash", "b"), (12, "restart", "b"), until=1000) == [
        send(0.0, "a", "b", "PING", "m1", 0, 5.0),
        send(0.0, "b", "c", "PING", "m3", 0, 5.0),
        (2.0, "crash", {"node": "b"}),
        (5.0, "drop", {"src": "a", "dst": "b", "type": "PING", "reason": "node down"}),
        handled(5.0, "c", "b", "PING", "m3"),
        (8.0, "restart", {"node": "b"}),
        send(10.0, "a", "b", "PING", "m2", 0, 15.0),
        (11.0, "crash", {"node": "b"}),
        (12.0, "restart", {"node": "b"}),
        handled(15.0, "b", "a", "PING", "m2", life=3),
    ]


def test_a_down_node_sends_nothing():
    assert trace((0, "crash", "a"), (1, "ping", "a", "b", "m1"), until=100) == [
        (0.0, "crash", {"node": "a"}),
    ]


# -- the network's faults ----------------------------------------------------------------


def test_a_partition_drops_messages_already_on_the_wire_and_new_ones_at_once():
    assert trace((0, "ping", "a", "b", "m1"), (0, "ping", "b", "c", "m2"), (2, "partition", "a|b,c"),
                 (3, "ping", "b", "a", "m3"), (10, "heal"), (10, "ping", "b", "a", "m4"), until=100) == [
        send(0.0, "a", "b", "PING", "m1", 0, 5.0),
        send(0.0, "b", "c", "PING", "m2", 0, 5.0),
        (2.0, "partition", {"sides": [["a"], ["b", "c"]]}),
        (3.0, "drop", {"src": "b", "dst": "a", "type": "PING", "reason": "partition"}),  # at send time
        (5.0, "drop", {"src": "a", "dst": "b", "type": "PING", "reason": "partition"}),  # on arrival
        handled(5.0, "c", "b", "PING", "m2"),  # same side
        (10.0, "heal", {}),
        send(10.0, "b", "a", "PING", "m4", 0, 15.0),
        handled(15.0, "a", "b", "PING", "m4"),
    ]


def test_drop_next_loses_exactly_the_next_message_on_that_link():
    assert trace((0, "drop-next", "a", "b"), (1, "ping", "b", "a", "back"), (1, "ping", "a", "b", "m1"),
                 (2, "ping", "a", "b", "m2"), until=100) == [
        (0.0, "drop-next", {"src": "a", "dst": "b"}),
        send(1.0, "b", "a", "PING", "back", 0, 6.0),  # the other direction is untouched
        (1.0, "drop", {"src": "a", "dst": "b", "type": "PING", "reason": "dropped"}),
        send(2.0, "a", "b", "PING", "m2", 0, 7.0),
        handled(6.0, "a", "b", "PING", "back"),
        handled(7.0, "b", "a", "PING", "m2"),
    ]


def test_duplicate_next_delivers_the_next_message_twice_a_millisecond_apart():
    assert trace((0, "duplicate-next", "a", "b"), (1, "ping", "a", "b", "m1"), (2, "ping", "a", "b", "m2"),
                 until=100) == [
        (0.0, "duplicate-next", {"src": "a", "dst": "b"}),
        send(1.0, "a", "b", "PING", "m1", 0, 6.0),
        send(1.0, "a", "b", "PING", "m1", 0, 7.0, copy=True),
        send(2.0, "a", "b", "PING", "m2", 0, 7.0),
        handled(6.0, "b", "a", "PING", "m1"),
        handled(7.0, "b", "a", "PING", "m1"),  # the copy was scheduled before m2: it comes first
        handled(7.0, "b", "a", "PING", "m2"),
    ]


def test_a_duplicate_carries_the_id_of_the_original():
    lab = Trio(None, SEED)
    lab.command("duplicate-next", ["a", "b"])
    lab.command("ping", ["a", "b", "m1"])
    sends = [e for e in lab.drain() if e["kind"] == "send"]
    assert len(sends) == 2 and sends[0]["id"] == sends[1]["id"] and sends[1]["copy"] is True


# -- commands ----------------------------------------------------------------------------


@pytest.mark.parametrize("name, args, error", [
    ("restart", ["a"], "a is not down (it is up)"),
    ("resume", ["a"], "a is not paused"),
    ("crash", ["z"], "no node 'z' in this cluster (nodes: a, b, c)"),
])
def test_a_refused_command_is_one_rejected_event_and_changes_nothing(name, args, error):
    lab = Trio(None, SEED)
    lab.command("arm", ["a", "t1", "10"])
    lab.run_until(5)
    assert lab.command(name, args) == error
    lab.run_until(100)
    assert [(e["t"], e["kind"], {k: v for k, v in e.items() if k not in ("seq", "t", "kind")})
            for e in lab.drain()] == [
        (5.0, "rejected", {"action": name, "args": args, "error": error}),
        fired(10.0, "a", "t1"),
    ]
