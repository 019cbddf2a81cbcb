"""Bulkhead: give each dependency its own pool of threads.

Service A serves the client's requests on worker threads.  Some requests
need the slow dependency B, the others only the fast dependency C.  A thread
that calls a dependency is held until the answer comes back or the call
times out; a request that finds no free thread waits in the pool's queue,
and one that finds the queue full is rejected at once.

  * shared: one pool for everything.  When B slows down, the requests for B
    hold their threads longer and longer until they hold all of them; the
    requests for C then queue behind them, or are rejected, although C is
    perfectly healthy.
  * bulkheads: one pool (and queue) per dependency, like the watertight
    compartments of a ship's hull (Nygard, "Release It!", 2007).  B's slowness
    fills B's pool and B's queue, and the extra requests for B are rejected
    at once; C's pool is untouched, so requests for C keep their latency.

The price: a pool per dependency cannot lend its idle threads to the other,
so the sizes must be chosen (and changed) with the traffic in mind.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from .kernel import Arg, Lab, Node, Param, SimError, action, any_state, is_up, observe, on

WORK_MS = {"B": 60.0, "C": 10.0}  # how long each dependency normally works on a call
C_SLA = 250  # ms: a request for C answered slower than this has been stalled
SAMPLE_EVERY = 500  # ms between two points of the latency chart
SAMPLES = 40  # points kept (20 s)
WINDOW = 1000  # each point is the slowest successful answer of the last second
DEPS = ("B", "C")  # what A calls
ONLY_DEPS = "only the dependencies B and C can do that; got '{node}'"


@dataclass
class Job:
    """A request: sent by the client at `t`; at A, served on a slot of its pool, or queued for one."""

    rid: int
    dep: str  # the dependency it needs
    t: float = 0.0
    slot: int = 0


class Pool:
    """A fixed number of worker slots plus a bounded queue of waiting requests."""

    def __init__(self, name: str, size: int, queue_limit: int):
        self.name, self.size, self.queue_limit = name, size, queue_limit
        self.slots: dict[int, Job] = {}  # slot index -> the request it serves
        self.queue: list[Job] = []
        self.rejected = 0

    def free_slot(self) -> int | None:
        return next((i for i in range(self.size) if i not in self.slots), None)

    def view(self) -> dict:
        top = max([self.size, *(i + 1 for i in self.slots)])  # busy slots above a reduced size are retiring
        slots = [{"i": i, "busy": i in self.slots, "dep": self.slots[i].dep if i in self.slots else "",
                  "retiring": i >= self.size} for i in range(top)]
        return {"name": self.name, "size": self.size, "busy": len(self.slots), "slots": slots,
                "queued": len(self.queue), "queue_limit": self.queue_limit,
                "queue": [job.dep for job in self.queue], "rejected": self.rejected}


class Client(Node):
    """Sends `rate` requests per second to A; `mix` percent of them need B."""

    def boot(self) -> None:
        self.role = "client"
        self.sent = 0
        self.waiting: dict[int, Job] = {}
        self.every(1000 / self.lab.params["rate"], self.request_one, key="tick")

    def view(self) -> dict:
        return {"waiting": len(self.waiting), "label": f"{self.lab.params['rate']}/s · {self.lab.mix}% need B"}

    def request_one(self, dep: str | None = None) -> None:
        if dep is None:
            dep = "B" if self.rng.random() * 100 < self.lab.mix else "C"
        self.sent += 1
        rid = self.sent
        self.waiting[rid] = Job(rid, dep, self.now)
        patience = 2 * self.lab.params["timeout"] + 1000  # A's queue, then A's own timeout
        self.request("A", "CALL", awaiting=("give-up", rid), timeout=patience,
                     on_timeout=partial(self.finish, rid, "timeout", "no answer from A"), rid=rid, dep=dep)

    @on("REPLY")
    def reply(self, msg) -> None:
        if self.answered(("give-up", msg.body["rid"])):  # else it came after the client gave up
            self.finish(msg.body["rid"], "ok" if msg.body["ok"] else "error", msg.body["why"])

    def finish(self, rid: int, outcome: str, why: str) -> None:
        job = self.waiting.pop(rid)
        self.lab.emit("answer", rid=rid, dep=job.dep, outcome=outcome, ms=round(self.now - job.t, 3),
                      **({"why": why} if why else {}))


class Service(Node):
    """A: takes each request on a thread of the right pool and calls the dependency."""

    def boot(self) -> None:
        self.role = "service"
        self.pools = {name: Pool(name, size, self.lab.params["queue"]) for name, size in self.lab.sizes.items()}
        self.out: dict[int, Job] = {}  # call id -> the request waiting on its dependency

    def pool_for(self, dep: str) -> Pool:
        return self.pools["shared"] if "shared" in self.pools else self.pools[dep]

    def view(self) -> dict:
        label = " · ".join(f"{p.name} {len(p.slots)}/{p.size} q{len(p.queue)}" for p in self.pools.values())
        return {"calls": self.lab.calls["A"], "label": label if self.status != "down" else "down"}

    @on("CALL")
    def call(self, msg) -> None:
        job = Job(msg.body["rid"], msg.body["dep"])
        pool = self.pool_for(job.dep)
        if pool.free_slot() is not None:
            self.start(pool, job)
        elif len(pool.queue) < pool.queue_limit:
            pool.queue.append(job)  # wait for a thread of this pool
        else:
            pool.rejected += 1
            self.lab.count(f"rejected {pool.name}")
            self.send("client", "REPLY", rid=job.rid, ok=False, why=f"pool {pool.name} full")

    def start(self, pool: Pool, job: Job) -> None:
        """A free thread of the pool takes the request and calls the dependency."""
        job.slot = pool.free_slot()
        pool.slots[job.slot] = job
        cid = self.disk["last_cid"] = self.disk.get("last_cid", 0) + 1  # on disk: never reused, even after a restart
        self.out[cid] = job
        timeout = self.lab.params["timeout"]
        self.request(job.dep, "CALL", awaiting=("call", cid), timeout=timeout, cid=cid, rid=job.rid,
                     on_timeout=partial(self.done, cid, False, f"{job.dep} did not answer in {timeout}ms"))

    @on("REPLY")
    def reply_from_dependency(self, msg) -> None:
        if self.answered(("call", msg.body["cid"])):  # else it came after my timeout
            self.done(msg.body["cid"], msg.body["ok"], msg.body["why"])

    def done(self, cid: int, ok: bool, why: str) -> None:
        """Answer the client, free the thread, and give it to the next request in the queue."""
        job = self.out.pop(cid)
        self.send("client", "REPLY", rid=job.rid, ok=ok, why=why)
        pool = self.pool_for(job.dep)
        del pool.slots[job.slot]
        self.drain(pool)

    def drain(self, pool: Pool) -> None:
        while pool.queue and pool.free_slot() is not None:
            self.start(pool, pool.queue.pop(0))


class Dependency(Node):
    """B or C: works on each call for a while and answers, unless it hangs."""

    def boot(self) -> None:
        self.role = "dependency"
        self.hanging = False

    def view(self) -> dict:
        state = "hangs" if self.hanging else (f"+{self.slow_ms:.0f}ms" if self.slow_ms else "normal")
        return {"calls": self.lab.calls[self.id], "hanging": self.hanging,
                "label": f"calls {self.lab.calls[self.id]} · {state}" if self.status != "down" else "down"}

    @on("CALL")
    def call(self, msg) -> None:
        if self.hanging:
            return  # takes the call and never answers: the caller waits for its timeout
        work = WORK_MS[self.id] * (0.8 + 0.4 * self.rng.random())
        answer = partial(self.send, msg.src, "REPLY", cid=msg.body["cid"], rid=msg.body["rid"], ok=True, why="")
        self.after(work, answer, key=("work", msg.body["cid"]))


class Bulkhead(Lab):
    slug = "bulkhead"
    title = "Bulkhead"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    INVARIANTS = {"c-unaffected": ("bulkheads",)}
    PARAMS = (
        Param("mode", "shared", "One thread pool for all calls, or one pool per dependency.",
              choices=("shared", "bulkheads")),
        Param("rate", 20, "Client requests per second.", lo=1, hi=40),
        Param("mix", 30, "Percent of requests that need B (the rest need only C).", lo=0, hi=100),
        Param("threads", 10, "Size of the shared pool (mode shared).", lo=1, hi=30),
        Param("b_threads", 4, "Size of B's pool (mode bulkheads).", lo=1, hi=30),
        Param("c_threads", 6, "Size of C's pool (mode bulkheads).", lo=1, hi=30),
        Param("queue", 10, "How many requests may wait in each pool's queue.", lo=0, hi=50),
        Param("timeout", 3000, "How long A waits for a dependency (ms).", lo=100, hi=10_000),
    )
    UNFAULTABLE = ("client",)

    def setup(self) -> None:
        p = self.params
        self.mode, self.mix = p["mode"], p["mix"]
        self.sizes = {"shared": p["threads"]} if self.mode == "shared" else {"B": p["b_threads"], "C": p["c_threads"]}
        self.calls = {"A": 0, "B": 0, "C": 0}  # calls received
        self.stats = {dep: {"ok": 0, "error": 0, "timeout": 0, "worst": 0.0} for dep in DEPS}
        self.b_ahead: dict[int, int] = {}  # request for C -> B calls in its pool when it reached A
        self.c_latencies: list[float] = []  # the last 200 latencies of requests for C
        self.recent: list[tuple[float, str, float]] = []  # (t, dep, ms) of the ok answers of the last WINDOW ms
        self.chart = {"t": [], "B": [], "C": []}
        self.metrics.update({"requests": 0, "ok": 0, "error": 0, "timeout": 0})
        for node in (Client(self, "client"), Service(self, "A"), Dependency(self, "B"), Dependency(self, "C")):
            self.add_node(node)
        self.add_check("c-unaffected", f"Requests that need only C keep their latency whatever B does: each is "
                                       f"answered, successfully, within {C_SLA} ms. (A request for C that finds "
                                       f"no B call in its pool is not B's doing: a fault on C, A or the network, "
                                       f"or C's own pool too small, is not judged here.)")
        self.every(SAMPLE_EVERY, self.sample)

    # -- watching the protocol ---------------------------------------------------------
    def handled(self, node: Node, msg) -> None:
        if msg.type != "CALL":
            return
        self.calls[node.id] += 1
        if node.id == "A" and msg.body["dep"] == "C":  # how many B calls hold (or wait for) the threads it needs?
            pool = node.pool_for("C")
            self.b_ahead[msg.body["rid"]] = sum(job.dep == "B" for job in [*pool.slots.values(), *pool.queue])

    @observe("answer")
    def client_saw(self, event: dict) -> None:
        """The counts, the chart's points, and the check on requests for C, from what the client saw."""
        rid, dep, outcome, ms = event["rid"], event["dep"], event["outcome"], event["ms"]
        self.count("requests")
        self.count(outcome)
        stats = self.stats[dep]
        stats[outcome] += 1
        stats["worst"] = max(stats["worst"], ms)
        if outcome == "ok":
            self.recent.append((self.now, dep, ms))
        b_ahead = self.b_ahead.pop(rid, 0)
        if dep != "C":
            return
        self.c_latencies.append(ms)
        del self.c_latencies[:-200]
        if (outcome != "ok" or ms > C_SLA) and not b_ahead:
            self.count("c_own_trouble")  # C's own pool, C itself or the network: not B's doing
        elif outcome != "ok":
            self.fail("c-unaffected", f"request {rid} for C failed after {ms:.0f}ms: {event['why']} ({b_ahead} B "
                                      "calls held its pool's threads)")
        elif ms > C_SLA:
            self.fail("c-unaffected", f"request {rid} for C took {ms:.0f}ms (limit {C_SLA}ms; {b_ahead} B "
                                      "calls held its pool's threads)")

    def sample(self) -> None:
        """Every SAMPLE_EVERY ms: a point per dependency on the chart; catch C requests stuck in a queue."""
        now = self.now
        self.recent = [r for r in self.recent if r[0] > now - WINDOW]
        self.chart["t"].append(round(now))
        for dep in DEPS:
            values = [ms for _, d, ms in self.recent if d == dep]
            self.chart[dep].append(round(max(values), 1) if values else None)
        for key in self.chart:
            del self.chart[key][:-SAMPLES]
        stuck = [(rid, now - job.t) for rid, job in self.nodes["client"].waiting.items()
                 if job.dep == "C" and now - job.t > C_SLA and self.b_ahead.get(rid)]
        if stuck:
            rid, waited = stuck[0]
            self.fail("c-unaffected", f"request {rid} for C has waited {waited:.0f}ms (limit {C_SLA}ms) behind "
                                      f"{self.b_ahead[rid]} B calls in its pool")
        elif self.c_latencies:
            self.note("c-unaffected",
                      f"requests for C: p95 {self.c_p95():.0f}ms, worst {self.stats['C']['worst']:.0f}ms")

    def c_p95(self) -> float:
        ordered = sorted(self.c_latencies)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else 0.0

    # -- what the page shows ----------------------------------------------------------
    def view(self) -> dict:
        a = self.nodes["A"]
        pools = a.pools.values() if a.status != "down" else [  # a crashed A has empty pools
            Pool(name, size, self.params["queue"]) for name, size in self.sizes.items()]
        values = [v for dep in DEPS for v in self.chart[dep] if v is not None]
        return {
            "mode": self.mode,
            "mix": self.mix,
            "pools": [p.view() for p in pools],
            "deps": {dep: {**self.stats[dep], "worst": round(self.stats[dep]["worst"], 1),
                           "now": self.chart[dep][-1] if self.chart[dep] else None} for dep in DEPS},
            "c_p95": round(self.c_p95(), 1),
            # each dependency's latency over the last SAMPLES samples, and the latency the chart's top stands for
            "chart": {**self.chart, "slots": SAMPLES, "top": round(max([C_SLA * 2, *values])), "sla": C_SLA},
            "edges": [["client", "A"], ["A", "B"], ["A", "C"]],
        }

    # -- lab actions ----------------------------------------------------------------
    @action("hang", Arg("node"), nodes=DEPS, not_for=ONLY_DEPS, when=is_up,
            refuse="{node} is {status}; only a running dependency can hang",
            help="Make B (or C) take calls and never answer: callers wait for their timeout.")
    def do_hang(self, node_id: str) -> None:
        self.nodes[node_id].hanging = True
        self.emit("hang", node=node_id)

    @action("recover", Arg("node"), nodes=DEPS, not_for=ONLY_DEPS, when=any_state,
            help="Make B (or C) healthy again: restarted if down, no hang, normal speed.")
    def do_recover(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.status == "down":
            node.restart()
        elif node.status == "paused":
            node.resume()
        node.hanging, node.slow_ms = False, 0.0
        self.emit("recover", node=node_id)

    @action("mix", Arg("percent", "percent"), help="Change the share of requests that need B.")
    def do_mix(self, percent: int) -> None:
        self.mix = percent
        self.emit("mix", percent=percent)

    @action("pool", Arg("pool", "word", choices=("shared", "B", "C")), Arg("size", "int", lo=1, hi=30),
            help="Resize a pool (shared in mode shared; B or C in mode bulkheads).")
    def do_pool(self, name: str, size: int) -> None:
        if name not in self.sizes:
            raise SimError(f"mode {self.mode} has the pool(s) {', '.join(self.sizes)}; there is no pool '{name}'")
        self.sizes[name] = size
        a = self.nodes["A"]
        if a.status != "down":
            pool = a.pools[name]
            pool.size = size  # busy slots above the new size finish their call, then disappear
            a.drain(pool)
        self.emit("pool", pool=name, size=size)

    @action("request", Arg("count", "int", lo=1, hi=50), Arg("dep", "word", optional=True, default="mix",
                                                               choices=("B", "C", "mix")),
            help="Send a burst of extra requests now: all for B, all for C, or following the mix.")
    def do_request(self, count: int, dep: str) -> None:
        self.emit("burst", count=count, dep=dep)
        for _ in range(count):
            self.nodes["client"].request_one(None if dep == "mix" else dep)
