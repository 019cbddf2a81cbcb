"""Kernel speed against SimPy, and replay time of a long command log.

The model, identical in both: N nodes pass tokens round a ring; each hop takes
a random latency in [4, 12) ms drawn from a seeded generator.  We count hops
(one scheduled event each) per second of CPU."""

from __future__ import annotations

import random
import statistics
import time

from simulations import get_lab
from simulations.kernel import Lab, Node, Sim, replay

NODES, TOKENS = 8, 16


def simpy_hops(sim_ms: float) -> int:
    import simpy

    env = simpy.Environment()
    rng = random.Random(1)
    hops = 0

    def token(start: int):
        nonlocal hops
        node = start
        while True:
            yield env.timeout(4 + 8 * rng.random())
            node = (node + 1) % NODES
            hops += 1

    for i in range(TOKENS):
        env.process(token(i % NODES))
    env.run(until=sim_ms)
    return hops


def simpy_network_hops(sim_ms: float) -> int:
    """The full model written the idiomatic SimPy way, with the same bookkeeping
    our kernel does: a message record, an in-flight table, and one event record
    (seq, t, kind, ...) per message, nodes as processes reading an inbox."""
    import simpy

    from simulations.kernel import Message

    env = simpy.Environment()
    rng = random.Random(1)
    inbox = [simpy.Store(env) for _ in range(NODES)]
    inflight: dict[int, Message] = {}
    events: list[dict] = []
    counters = {"id": 0, "seq": 0, "hops": 0}

    def send(src: int, dst: int):
        counters["id"] += 1
        msg = Message(counters["id"], f"n{src}", f"n{dst}", "TOKEN", {}, env.now)
        msg.arrive = round(env.now + 4 + 8 * rng.random(), 3)
        inflight[msg.id] = msg
        counters["seq"] += 1
        events.append({"seq": counters["seq"], "t": round(env.now, 3), "kind": "send", "id": msg.id,
                       "src": msg.src, "dst": msg.dst, "type": "TOKEN", "arrive": msg.arrive})
        env.process(transmit(msg, dst))

    def transmit(msg, dst: int):
        yield env.timeout(msg.arrive - env.now)
        del inflight[msg.id]
        inbox[dst].put(msg)

    def node(i: int):
        while True:
            yield inbox[i].get()
            counters["hops"] += 1
            send(i, (i + 1) % NODES)

    for i in range(NODES):
        env.process(node(i))
    for i in range(TOKENS):
        send(i % NODES, (i + 1) % NODES)
    step, t = 1000.0, 0.0
    while t < sim_ms:
        t = min(t + step, sim_ms)
        env.run(until=t)
        events.clear()
    return counters["hops"]


def sim_hops(sim_ms: float) -> int:
    """Our scheduler alone (Sim.after), the same model."""
    sim = Sim(1)
    hops = 0

    def hop(node: int):
        nonlocal hops
        hops += 1
        sim.after(4 + 8 * sim.rng.random(), hop, (node + 1) % NODES)

    for i in range(TOKENS):
        sim.after(4 + 8 * sim.rng.random(), hop, i % NODES)
    sim.run_until(sim_ms)
    return hops


class RingNode(Node):
    def on_message(self, msg):
        self.lab.hops += 1
        nxt = self.lab.order[(self.lab.order.index(self.id) + 1) % NODES]
        self.send(nxt, "TOKEN")


class Ring(Lab):
    """The same ring through the whole kernel: network, messages, event records."""

    def setup(self):
        self.hops = 0
        self.order = [f"n{i}" for i in range(NODES)]
        for node_id in self.order:
            self.add_node(RingNode(self, node_id))
        for i in range(TOKENS):
            self.nodes[self.order[i % NODES]].send(self.order[(i + 1) % NODES], "TOKEN")


def lab_hops(sim_ms: float) -> int:
    lab = Ring({}, 1)
    step = 1000.0
    t = 0.0
    while t < sim_ms:  # drain as the live actor does, so memory stays flat
        t = min(t + step, sim_ms)
        lab.run_until(t)
        lab.drain()
    return lab.hops


def rate(fn, sim_ms: float, repeat: int = 3) -> float:
    best = 0.0
    for _ in range(repeat):
        start = time.process_time()
        hops = fn(sim_ms)
        best = max(best, hops / (time.process_time() - start))
    return best


def kernel_vs_simpy(sim_ms: float = 200_000) -> dict:
    """Hops per CPU second: our scheduler against bare SimPy timeouts, and our
    whole kernel (network, messages, event records) against SimPy doing the
    same bookkeeping with processes and stores."""
    simpy_rate = rate(simpy_hops, sim_ms)
    sched_rate = rate(sim_hops, sim_ms)
    simpy_net_rate = rate(simpy_network_hops, sim_ms)
    full_rate = rate(lab_hops, sim_ms)
    return {"simpy": simpy_rate, "scheduler": sched_rate, "scheduler_ratio": sched_rate / simpy_rate,
            "simpy_network": simpy_net_rate, "kernel": full_rate, "kernel_ratio": full_rate / simpy_net_rate}


def replay_time(slug: str = "leader-election", commands: int = 1000, repeat: int = 5) -> dict:
    """Build a 1,000-command log on a live-like run, then time replaying it."""
    lab_cls = get_lab(slug)
    probe = lab_cls({}, 7)
    node_ids = [n for n in probe.nodes if n not in lab_cls.UNFAULTABLE]
    rng = random.Random(7)
    log, t = [], 0.0
    down: set[str] = set()
    for _ in range(commands):
        t += rng.choice([50, 100, 250, 500])
        node = rng.choice(node_ids)
        if node in down:
            log.append((t, "restart", [node]))
            down.discard(node)
        elif len(down) < len(node_ids) - 1 and rng.random() < 0.5:
            log.append((t, "crash", [node]))
            down.add(node)
        else:
            a, b = rng.sample(node_ids, 2)
            log.append((t, rng.choice(["delay", "loss"]), [a, b, str(rng.choice([0, 20, 50]))]))
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        lab = replay(lab_cls, {}, 7, log, t)
        times.append(time.perf_counter() - start)
    return {"lab": slug, "commands": commands, "sim_s": t / 1000, "events": lab.seq,
            "median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000}
