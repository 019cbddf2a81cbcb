"""Service registry: finding instances whose addresses keep changing.

Instances of one service (`orders`) come and go; each new one gets a fresh
address.  The registry holds a table of live instances, each entry a lease:

  * an instance that starts sends REGISTER(name, address); the registry
    stores it with a lease of `ttl` ms and answers REGISTERED;
  * every `heartbeat` ms the instance sends HEARTBEAT(address), which renews
    the lease (a registry that lost its table answers UNKNOWN, and the
    instance registers again);
  * an instance that shuts down gracefully sends DEREGISTER: its entry goes
    at once.  It keeps serving for a short drain period, for callers whose
    list is not refreshed yet;
  * an instance that crashes says nothing: its entry stays until its lease
    runs out (a TTL after the last heartbeat the registry received), and
    callers keep sending requests to a dead address meanwhile.

Discovery (who asks the registry):

  * client-side: each client LOOKUPs the list, caches it, refreshes it every
    `refresh` ms, and picks an instance itself (round robin);
  * server-side: clients send every request to a balancer `lb`, which keeps
    the cached list and picks for them.

With `cache` off the caller looks the list up for every request instead of
keeping it, so the registry sits on the path of every call.

The registry here is one node that keeps its table in memory (like a single
Eureka server); real deployments replicate it, because losing it means new
instances cannot be found.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from .kernel import Arg, Lab, Node, Param, SimError, action, fmt_ms, observe, on

SERVICE = "orders"
SWEEP_EVERY = 100  # ms between the registry's scans for expired leases
REGISTER_RETRY = 500  # ms an instance waits for REGISTERED before trying again
LOOKUP_TIMEOUT = 300  # ms a caller waits for the registry's list
REQUEST_TIMEOUT = 300  # ms a caller waits for an instance's answer
STARTUP = 150  # ms after the start before callers first look the list up
DRAIN = 2000  # ms a gracefully stopping instance keeps serving after deregistering
WORK_MS = (8.0, 20.0)
MAX_INSTANCES = 8
# The metric a request's outcome counts in.
METRIC = {"ok": "ok", "timeout": "dead_instance", "refused": "dead_instance", "registry": "registry_errors",
          "no-instance": "no_instance"}


class Instance(Node):
    """One instance of the service: registers, heartbeats, answers requests."""

    def boot(self) -> None:
        self.role = "instance"
        self.addr = self.lab.new_address()  # a new container gets a new address
        self.registered = False
        self.stopping = False
        self.lab.emit("address", node=self.id, addr=self.addr)
        self.register()

    def register(self) -> None:
        self.request("registry", "REGISTER", awaiting="registered", timeout=REGISTER_RETRY,
                     on_timeout=self.register, service=SERVICE, addr=self.addr)

    @on("REGISTERED")
    def accepted(self, msg) -> None:
        if msg.body["addr"] == self.addr and not self.stopping:
            self.registered = True
            self.answered("registered")
            self.every(self.lab.params["heartbeat"], self.heartbeat, key="heartbeat")

    def heartbeat(self) -> None:
        self.send("registry", "HEARTBEAT", addr=self.addr)

    @on("UNKNOWN")
    def forgotten(self, msg) -> None:
        if not self.stopping:
            self.registered = False  # the registry forgot me (it restarted): register again
            self.cancel("heartbeat")  # (heartbeats wait for the new registration)
            self.register()

    @on("REQ")
    def serve(self, msg) -> None:
        self.after(self.rng.uniform(*WORK_MS), self.respond, msg.src, msg.body["rid"], key=("work", msg.body["rid"]))

    def respond(self, to: str, rid: int) -> None:
        self.send(to, "RESP", rid=rid, instance=self.id, addr=self.addr)

    def shutdown(self) -> None:
        """Graceful stop: deregister first, drain, then exit."""
        self.stopping = True
        self.role = "draining"
        self.cancel("heartbeat")
        self.cancel("registered")
        self.send("registry", "DEREGISTER", addr=self.addr)
        self.after(DRAIN, self.exit, key="exit")

    def exit(self) -> None:
        self.lab.emit("exit", node=self.id, addr=self.addr)

    def view(self) -> dict:
        return {"addr": self.addr, "label": self.addr if self.status != "down" else f"{self.addr} (dead)"}


@dataclass
class Lease:
    instance: str
    since: float
    renewed: float  # the last REGISTER or HEARTBEAT: the lease runs out `ttl` ms later (never with ttl 0)


class Registry(Node):
    """The table of leases.  Kept in memory: a crash empties it."""

    def boot(self) -> None:
        self.role = "registry"
        self.leases: dict[str, Lease] = {}  # address -> its lease
        self.every(SWEEP_EVERY, self.sweep, key="sweep")

    def sweep(self) -> None:
        """Remove every lease that ran out (a crashed instance says nothing)."""
        ttl = self.lab.params["ttl"]
        for addr, lease in list(self.leases.items()) if ttl else ():
            if self.now >= lease.renewed + ttl:
                del self.leases[addr]
                self.lab.emit("expire", node=self.id, instance=lease.instance, addr=addr,
                              silent_ms=round(self.now - lease.renewed, 3))

    @on("REGISTER")
    def register(self, msg) -> None:
        addr = msg.body["addr"]
        new = addr not in self.leases
        self.leases[addr] = Lease(msg.src, self.now, self.now)
        self.send(msg.src, "REGISTERED", addr=addr)
        if new:
            self.lab.emit("register", node=self.id, instance=msg.src, addr=addr)

    @on("HEARTBEAT")
    def renew(self, msg) -> None:
        lease = self.leases.get(msg.body["addr"])
        if lease is None:
            self.send(msg.src, "UNKNOWN", addr=msg.body["addr"])
        else:
            lease.renewed = self.now

    @on("DEREGISTER")
    def deregister(self, msg) -> None:
        if self.leases.pop(msg.body["addr"], None):
            self.lab.emit("deregister", node=self.id, instance=msg.src, addr=msg.body["addr"])

    @on("LOOKUP")
    def lookup(self, msg) -> None:
        self.send(msg.src, "LIST", addrs=list(self.leases), rid=msg.body.get("rid"))


@dataclass
class Call:
    """A request a caller is placing: found through the list, sent to an instance."""

    reply_to: str | None  # the client the balancer answers (None: the caller is the client)
    addr: str | None = None
    instance: str | None = None


class Caller(Node):
    """Something that discovers instances: a client (client-side discovery)
    or the balancer (server-side discovery).  Keeps the cached list."""

    def boot(self) -> None:
        self.cache: list[str] = []
        self.fetched_at: float | None = None
        self.turn = 0
        self.calls: dict[int, Call] = {}
        if self.discovers():  # (at the very start, the instances get a moment to register first)
            self.after(0 if self.restarted else STARTUP, self.refresh, key="refresh")

    def discovers(self) -> bool:
        return True

    def refresh(self) -> None:
        self.send("registry", "LOOKUP")
        every = self.lab.params["refresh"]
        if every and self.lab.params["cache"]:
            self.after(every, self.refresh, key="refresh")

    @on("LIST")
    def listed(self, msg) -> None:
        rid = msg.body.get("rid")
        if rid is None:  # a refresh of the cache
            if msg.body["addrs"] != self.cache:
                self.lab.emit("cache", node=self.id, addrs=",".join(msg.body["addrs"]))
            self.cache, self.fetched_at = list(msg.body["addrs"]), self.now
        elif rid in self.calls and self.answered(("lookup", rid)):  # the list for one request (no cache)
            self.call_instance(rid, self.pick(msg.body["addrs"]))

    def pick(self, addrs: list[str]) -> str | None:
        """Round robin over the list."""
        if not addrs:
            return None
        addr = addrs[self.turn % len(addrs)]
        self.turn += 1
        return addr

    def start_call(self, rid: int, reply_to: str | None) -> None:
        """Find an instance for request `rid` and send it there."""
        self.calls[rid] = Call(reply_to)
        if self.lab.params["cache"]:
            self.call_instance(rid, self.pick(self.cache))
        else:  # no cache: ask the registry for every request
            self.request("registry", "LOOKUP", awaiting=("lookup", rid), timeout=LOOKUP_TIMEOUT, rid=rid,
                         on_timeout=partial(self.end_call, rid, None, None, "registry",
                                            "the registry did not answer the lookup"))

    def call_instance(self, rid: int, addr: str | None) -> None:
        if addr is None:
            self.end_call(rid, None, None, "no-instance", "no instance known: the list is empty")
        elif (target := self.lab.resolve(addr)) is None:  # nothing listens at that address any more
            self.end_call(rid, addr, None, "refused", f"connection refused at {addr}")
        else:
            call = self.calls[rid]
            call.addr, call.instance = addr, target
            self.request(target, "REQ", awaiting=("req", rid), timeout=REQUEST_TIMEOUT, rid=rid, addr=addr,
                         on_timeout=partial(self.no_answer, rid))

    def no_answer(self, rid: int) -> None:
        if call := self.calls.get(rid):
            self.end_call(rid, call.addr, call.instance, "timeout", f"{call.instance} at {call.addr} did not answer")

    @on("RESP")
    def answer(self, msg) -> None:
        if msg.body["rid"] in self.calls:
            self.answered(("req", msg.body["rid"]))
            self.end_call(msg.body["rid"], msg.body["addr"], msg.body["instance"], "ok", "")

    def end_call(self, rid: int, addr, instance, outcome: str, why: str) -> None:
        self.calls.pop(rid, None)

    def view(self) -> dict:
        return {"cache": list(self.cache) if self.status != "down" else [],
                "label": f"cache: {len(self.cache)}" if self.status != "down" and self.discovers() else ""}


class Client(Caller):
    """Sends requests at the lab's rate, through its own cache or through the balancer."""

    def boot(self) -> None:
        self.role = "client"
        super().boot()
        self.schedule(0 if self.restarted else 2 * STARTUP)

    def discovers(self) -> bool:
        return self.lab.mode == "client-side"

    def schedule(self, first: float = 0) -> None:
        self.at_rate(self.lab.rate, self.send_request, key="next", first=first)

    def send_request(self) -> None:
        self.schedule()
        rid = self.lab.new_rid()
        self.lab.count("requests")
        if self.discovers():
            self.start_call(rid, None)
        else:  # server-side: the balancer finds the instance
            self.request("lb", "REQ", awaiting=("via", rid), timeout=REQUEST_TIMEOUT + 200, rid=rid,
                         on_timeout=partial(self.end_call, rid, None, None, "timeout", "the balancer did not answer"))

    @on("RESULT")
    def result(self, msg) -> None:  # server-side: the balancer's answer
        b = msg.body
        if self.answered(("via", b["rid"])):
            self.end_call(b["rid"], b.get("addr"), b.get("instance"), b["outcome"], b.get("why", ""))

    def end_call(self, rid: int, addr, instance, outcome: str, why: str) -> None:
        super().end_call(rid, addr, instance, outcome, why)
        self.lab.witness("outcome", node=self.id, rid=rid, addr=addr, instance=instance, outcome=outcome, why=why)


class Balancer(Caller):
    """Server-side discovery: the balancer holds the list and picks for the clients."""

    def boot(self) -> None:
        self.role = "balancer"
        super().boot()

    @on("REQ")
    def forward(self, msg) -> None:
        self.start_call(msg.body["rid"], msg.src)

    def end_call(self, rid: int, addr, instance, outcome: str, why: str) -> None:
        if call := self.calls.pop(rid, None):
            self.send(call.reply_to, "RESULT", rid=rid, addr=addr, instance=instance, outcome=outcome, why=why)


class ServiceRegistry(Lab):
    slug = "service-registry"
    title = "Service registry"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    # graceful-at-once is none: a DEREGISTER lost or held up by the network leaves the entry until the TTL.
    INVARIANTS = {
        "crashed-expires": ("*",),
        "cache-survives": ("cache=on",),
        "new-gets-traffic": ("*",),
    }
    PARAMS = (
        Param("mode", "client-side", "Who asks the registry: each client, or a balancer in front of the service.",
              choices=("client-side", "server-side")),
        Param("ttl", 1500, "Lease time-to-live in ms: an entry without a heartbeat for this long is removed "
                           "(0 = entries never expire).", lo=0, hi=10_000),
        Param("heartbeat", 500, "Milliseconds between an instance's heartbeats.", lo=100, hi=5000),
        Param("refresh", 1000, "Milliseconds between refreshes of a caller's cached list "
                               "(0 = look it up once, never refresh).", lo=0, hi=10_000),
        Param("cache", True, "Callers keep the last list (off = ask the registry for every request)."),
        Param("instances", 3, "Instances running at the start.", lo=1, hi=6),
        Param("rate", 4, "Requests per second from each client.", lo=0, hi=15),
    )
    FAULTS = Lab.FAULTS + ("lose-deregistration",)

    def setup(self) -> None:
        p = self.params
        self.mode = p["mode"]
        self.rate = p["rate"]
        self.rid = 0
        self.addresses: set[str] = set()  # every address given out so far
        self.stats: dict[str, dict] = {}
        self.crashes: list[dict] = []  # crashed instances whose entry must expire
        self.lose_deregistration: dict[str, bool] = {}  # instances whose DEREGISTER the network will lose
        self.heard: dict[str, float] = {}  # address -> when the registry last received its REGISTER or HEARTBEAT
        self.registry_pauses: list[list] = []  # [paused at, resumed at or None]
        self.shutdowns: list[dict] = []  # graceful stops whose entry must go at once
        self.waiting_traffic: dict[str, dict] = {}  # newly registered, not served yet
        self.outage = {"served": 0, "failed": 0}
        self.gone: list[dict] = []
        self.recent: list[dict] = []
        self.metrics.update({"requests": 0, "ok": 0, "dead_instance": 0, "registry_errors": 0, "no_instance": 0})
        self.add_node(Registry(self, "registry"))
        for i in range(1, p["instances"] + 1):
            self.add_instance(f"s{i}")
        if self.mode == "server-side":
            self.add_node(Balancer(self, "lb"))
        self.add_node(Client(self, "c1"))
        self.add_node(Client(self, "c2"))
        self.add_check("crashed-expires", "An instance that crashes (no deregistration) leaves the registry "
                                          "within the TTL of the last heartbeat the registry received from it "
                                          "(with TTL 0 entries never expire, and this check shows it).")
        self.add_check("graceful-at-once", "An instance that shuts down gracefully leaves the registry at once. "
                                           "(Its one DEREGISTER can be lost or held up by the network; then the "
                                           "entry stays until the TTL, and this check shows it: no invariant "
                                           "under network faults.)")
        self.add_check("cache-survives", "While the registry is down, callers keep reaching live instances "
                                         "from their cached list (a caller that never got a list has nothing "
                                         "to fall back on).")
        self.add_check("new-gets-traffic", "A new instance gets traffic soon after it is registered "
                                           "(within one refresh of the callers' lists and one round of the "
                                           "others), counted while the registry, the callers and the network "
                                           "are fault-free. With the cache on and refresh 0 a caller never "
                                           "learns of it, and this check shows that.")
        self.every(SWEEP_EVERY, self.audit)

    # -- bookkeeping --------------------------------------------------------------
    def add_instance(self, node_id: str) -> Instance:
        self.stats.setdefault(node_id, {"served": 0, "errors": 0})
        return self.add_node(Instance(self, node_id))

    def instances(self) -> list[Instance]:
        return [n for n in self.nodes.values() if isinstance(n, Instance)]

    def callers(self) -> list[Caller]:
        return [n for n in self.nodes.values() if isinstance(n, Caller) and n.discovers()]

    def new_address(self) -> str:
        """A new container's address: one never given out before."""
        rng = self.rng
        while True:
            addr = f"10.0.{rng.randint(1, 9)}.{rng.randint(2, 250)}:8080"
            if addr not in self.addresses:
                self.addresses.add(addr)
                return addr

    def new_rid(self) -> int:
        self.rid += 1
        return self.rid

    def resolve(self, addr: str) -> str | None:
        """Which instance listens at `addr` now (a crashed one still owns its address)."""
        return next((n.id for n in self.instances() if n.addr == addr), None)

    def registry(self) -> Registry:
        return self.nodes["registry"]

    # -- measurements: what the lab sees happen ------------------------------------------
    @observe("register")
    def registered(self, event: dict) -> None:
        node = self.nodes.get(event["instance"])
        if node is not None and node.up and node.id not in self.waiting_traffic:
            self.waiting_traffic[node.id] = {"since": self.now, "addr": event["addr"]}

    def handled(self, node: Node, msg) -> None:
        if isinstance(node, Registry) and msg.type in ("REGISTER", "HEARTBEAT"):
            self.heard[msg.body["addr"]] = self.now
        elif isinstance(node, Instance) and msg.type == "REQ":
            self.stats[node.id]["served"] += 1
            waited = self.waiting_traffic.pop(node.id, None)
            if waited is not None:
                self.emit("first-traffic", node=node.id, after_ms=round(self.now - waited["since"], 3))
                self.note("new-gets-traffic",
                          f"{node.id} got its first request {fmt_ms(self.now - waited['since'])} after registering")

    @observe("outcome")
    def outcome(self, fact: dict) -> None:
        """A client's request ended: served, or failed (and why)."""
        client, outcome, instance = fact["node"], fact["outcome"], fact["instance"]
        registry_down = self.registry().status != "up"
        self.count(METRIC[outcome])
        if registry_down:
            self.outage["served" if outcome == "ok" else "failed"] += 1
            self.note("cache-survives", f"registry down: {self.outage['served']} requests served from cached lists")
        if outcome != "ok":
            if instance in self.stats:
                self.stats[instance]["errors"] += 1
            self.emit("error", **fact)
            caller = self.nodes["lb" if self.mode == "server-side" else client]
            never_listed = self.params["cache"] and caller.fetched_at is None  # (nothing cached yet: no cache)
            if registry_down and outcome in ("registry", "no-instance") and not never_listed:
                self.fail("cache-survives", f"with the registry down, {client}'s request {fact['rid']} failed: "
                                            f"{fact['why']}")
        self.recent.append({"rid": fact["rid"], "client": client, "addr": fact["addr"], "instance": instance,
                            "outcome": outcome})
        del self.recent[:-10]

    @observe("exit")
    def exited(self, event: dict) -> None:
        """A gracefully stopped instance exits: it leaves the cluster."""
        node = self.nodes.pop(event["node"])
        node.crash()
        self.gone.append({"id": node.id, "addr": node.addr, "t": round(self.now, 3)})
        del self.gone[:-5]
        self.waiting_traffic.pop(node.id, None)

    def traffic_bound(self) -> float:
        # (A list never refreshed is judged by what a 1 s refresh would have done.)
        refresh = (self.params["refresh"] or 1000) if self.params["cache"] else 0
        gap = 1000 / max(1, self.rate)
        listed = sum(1 for n in self.instances() if n.up and not n.stopping)
        return refresh + (listed + 3) * gap + 300  # round robin reaches each listed instance once per cycle

    def discovery_disturbed(self) -> bool:
        """A new instance cannot be judged now: a node (the registry, a caller) or the network is faulted
        (a caller that cannot refresh, or is frozen, cannot learn of it)."""
        return (any(node.status != "up" or node.slow_ms for node in self.nodes.values())
                or bool(self.net.partition) or any(not link.clean() for link in self.net.links.values()))

    def audit(self) -> None:
        registry = self.registry()
        ttl, hb = self.params["ttl"], self.params["heartbeat"]
        table = registry.leases if registry.status != "down" else None
        # A frozen registry expires nothing (and the time it was frozen does not count).
        for crash in list(self.crashes) if registry.status != "paused" else ():
            # Counted from the last heartbeat the registry received (one still in flight at the
            # crash renews the lease), plus one sweep of the table.
            last = self.heard.get(crash["addr"], crash["t"])
            frozen = sum(max(0.0, (self.now if b is None else b) - max(a, last)) for a, b in self.registry_pauses)
            if table is None or crash["addr"] not in table:
                self.crashes.remove(crash)
                if table is not None:
                    self.note("crashed-expires", f"{crash['node']}'s entry left {fmt_ms(self.now - crash['t'])} "
                                                 f"after its crash, {fmt_ms(self.now - last)} after its last heartbeat")
            elif self.now - last > (ttl or 3 * hb) + SWEEP_EVERY + 10 + frozen:
                self.fail("crashed-expires", f"{crash['node']} crashed {fmt_ms(self.now - crash['t'])} ago, the "
                                             f"registry last heard it {fmt_ms(self.now - last)} ago, and "
                                             f"{crash['addr']} is still listed" + ("" if ttl else " (no TTL)"))
                self.crashes.remove(crash)
        for stop in list(self.shutdowns):
            if table is None or stop["addr"] not in table:
                self.shutdowns.remove(stop)
                if table is not None:
                    self.note("graceful-at-once",
                              f"{stop['node']} left the registry {fmt_ms(self.now - stop['t'])} after its shutdown")
            elif self.now - stop["t"] > 100:
                self.fail("graceful-at-once", f"{stop['node']} shut down gracefully but {stop['addr']} is still "
                                              f"listed {fmt_ms(self.now - stop['t'])} later")
                self.shutdowns.remove(stop)
        disturbed = self.discovery_disturbed()
        for instance, waited in list(self.waiting_traffic.items()):
            node = self.nodes.get(instance)
            if node is None or node.status != "up" or self.rate == 0:
                self.waiting_traffic.pop(instance)
            elif disturbed or self.now < 2 * STARTUP or table is None or waited["addr"] not in table:
                # Judged from when discovery works and traffic flows again (a lease can lapse: TTL < heartbeat).
                waited["since"] = self.now
            elif self.now - waited["since"] > self.traffic_bound():
                self.fail("new-gets-traffic", f"{instance} registered {fmt_ms(self.now - waited['since'])} ago "
                                              "and has not had a single request")
                self.waiting_traffic.pop(instance)

    def invariants(self) -> list[str]:
        # By design a cached list never refreshed (refresh 0) never learns of a new instance, and with TTL 0
        # a crashed instance stays listed: in those modes the check shows it, and is no invariant.
        by_design = {"new-gets-traffic": self.params["cache"] and not self.params["refresh"],
                     "crashed-expires": not self.params["ttl"]}
        return [name for name in super().invariants() if not by_design.get(name)]

    def after_fault(self, fault: str, node_id: str | None) -> None:
        if isinstance(self.nodes.get(node_id), Instance) and fault == "crash":
            self.crashes.append({"node": node_id, "addr": self.nodes[node_id].addr, "t": self.now})
            self.waiting_traffic.pop(node_id, None)
        elif node_id == "registry" and fault == "pause":
            self.registry_pauses.append([self.now, None])
        elif node_id == "registry" and self.registry_pauses and self.registry_pauses[-1][1] is None:
            self.registry_pauses[-1][1] = self.now  # resumed (or crashed)
        if node_id == "registry" and fault == "crash":
            self.outage = {"served": 0, "failed": 0}

    # -- lab actions -------------------------------------------------------------
    @action("scale-up", help="Start one more instance (it gets a new address and registers).")
    def do_scale_up(self) -> None:
        if len(self.instances()) >= MAX_INSTANCES:
            raise SimError(f"at most {MAX_INSTANCES} instances; scale down first")
        n = 1
        while (node_id := f"s{n}") in self.nodes:
            n += 1
        self.add_instance(node_id)
        self.emit("scale-up", node=node_id)

    @action("scale-down", help="Gracefully stop the newest running instance.")
    def do_scale_down(self) -> None:
        running = [n for n in self.instances() if n.up and not n.stopping]
        if len(running) <= 1:
            raise SimError("only one instance is running; it stays")
        self.do_shutdown(running[-1].id)

    @action("shutdown", Arg("instance"), nodes=lambda lab: [n.id for n in lab.instances()],
            not_for="'{node}' is not an instance (instances: {listed})",
            help="Stop an instance gracefully: it deregisters, drains, then exits.")
    def do_shutdown(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if not node.up or node.stopping:
            raise SimError(f"{node_id} is {'stopping' if node.stopping else node.status}; only a running instance "
                           "can shut down")
        self.emit("shutdown", node=node_id, addr=node.addr)
        if self.registry().up:
            self.shutdowns.append({"node": node_id, "addr": node.addr, "t": self.now})
        self.waiting_traffic.pop(node_id, None)
        if self.lose_deregistration.pop(node_id, False):
            # The network loses exactly the DEREGISTER: drop-next armed just before it is sent.
            self.net.link(node_id, "registry").drop_next += 1
            self.emit("drop-next", src=node_id, dst="registry")
        node.shutdown()

    @action("lose-deregistration", Arg("instance", "text"), group="fault",
            help="The network will lose this instance's DEREGISTER when it shuts down (heartbeats still get "
                 "through), however long from now that is.")
    def do_lose_deregistration(self, node_id: str) -> None:
        node = self.nodes.get(node_id)
        if not isinstance(node, Instance) or node.status == "down" or node.stopping:
            running = ", ".join(n.id for n in self.instances() if n.up and not n.stopping)
            raise SimError(f"'{node_id}' is not a running instance (running: {running})")
        self.lose_deregistration[node_id] = True
        self.emit("lose-deregistration", node=node_id)

    @action("delay-heartbeats", Arg("instance"), Arg("ms", "ms", hi=10_000),
            nodes=lambda lab: [n.id for n in lab.instances()], not_for="'{node}' is not an instance",
            help="Make an instance's messages to the registry (heartbeats) arrive this much later (0 = normal).")
    def do_delay_heartbeats(self, node_id: str, ms: float) -> None:
        self.net.link(node_id, "registry").delay = ms
        self.emit("delay-heartbeats", node=node_id, ms=ms)

    @action("traffic", Arg("rate", "int", lo=0, hi=15), group="request",
            help="Requests per second from each client (0 stops).")
    def do_traffic(self, rate: int) -> None:
        self.rate = rate
        self.emit("traffic", rate=rate)
        for node in self.nodes.values():
            if isinstance(node, Client) and node.up:
                node.schedule()

    # -- the snapshot -----------------------------------------------------------------
    def view(self) -> dict:
        registry = self.registry()
        insts, callers = self.instances(), self.callers()
        # Instances to the registry; clients to the balancer (server-side); whoever looks the list up
        # (the clients, or the balancer) to the registry and to every instance.
        edges = [[n.id, "registry"] for n in insts] + [[c, "lb"] for c in ("c1", "c2") if self.mode == "server-side"]
        edges += [[c.id, "registry"] for c in callers] + [[c.id, n.id] for c in callers for n in insts]

        def alive(addr: str) -> bool:
            target = self.resolve(addr)
            return target is not None and self.nodes[target].status != "down" and not self.nodes[target].stopping

        ttl = self.params["ttl"]
        leases = []
        for addr, lease in registry.leases.items() if registry.status != "down" else ():
            left = round(max(0.0, lease.renewed + ttl - self.now)) if ttl else None
            leases.append({"addr": addr, "instance": lease.instance, "since": round(lease.since, 3),
                           "renewed_ago": round(self.now - lease.renewed), "expires_in": left,
                           "alive": alive(addr), "bar": None if left is None else round(60 * left / max(1, ttl))})
        caches = [{"node": c.id, "status": c.status,
                   "age": None if c.fetched_at is None or c.status == "down" else round(self.now - c.fetched_at),
                   "entries": [{"addr": a, "alive": alive(a)} for a in (c.cache if c.status != "down" else [])]}
                  for c in callers]
        return {
            "edges": edges,
            "registry": {"status": registry.status, "ttl": ttl, "leases": leases,
                         "outage": dict(self.outage)},
            "caches": caches,
            "instances": [{"id": n.id, "addr": n.addr, "status": n.status, "stopping": n.stopping,
                           "registered": n.registered, **self.stats[n.id]} for n in insts],
            "gone": list(self.gone),
            "recent": list(self.recent),
        }
