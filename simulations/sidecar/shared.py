"""What every kind of sidecar shares: the client, the three places the helper can
run (and what a crash takes down in each), the far end's outage, and the calls
the proxy and the cache make for the app.  The kinds' protocols are in
log_shipper.py, proxy.py and cache.py."""

from __future__ import annotations

from dataclasses import dataclass

from ..kernel import Arg, Lab, Link, Message, Network, Node, Param, SimError, action, fmt_ms, observe, on

WORK_MS = (8.0, 16.0)  # the app's real work per request
CLIENT_TIMEOUT = 1000  # how long the client waits for the app
AUDIT_EVERY = 500  # ms between the lab's looks at its checks
APP_CALL_TIMEOUT = 600  # proxy, cache: the app's own (generic) timeout for a call to the helper
REFUSED_MS = 0.2  # proxy, cache: how soon the OS refuses a connection to a port nobody listens on

ROLE = {"sidecar": "sidecar", "service": "remote-service", "in-process": "in-process"}
WORD = {"sidecar": "sidecar", "service": "remote service", "in-process": "library"}


def work_time(node: Node, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return lo + (hi - lo) * node.rng.random()


class LocalNetwork(Network):
    """Containers on one node talk over localhost: well under a millisecond.
    (The kernel's network has one latency range for every link.)"""

    def local(self, src: str, dst: str) -> bool:
        return {src, dst} == {"app", "sidecar"} and self.lab.mode != "service"

    def send(self, src: str, dst: str, type: str, body: dict | None = None) -> None:
        if not self.local(src, dst):
            return super().send(src, dst, type, body)
        # The kernel's fast path draws the LAN latency; localhost goes the long way round.
        self.next_id += 1
        self.sent += 1
        self._send_with_faults(Message(self.next_id, src, dst, type, dict(body) if body else {}, self.lab.sim.now))

    def transit_time(self, src: str, dst: str) -> float:
        if self.local(src, dst):
            # in-process: a function call; sidecar: a hop over the node's loopback interface
            base = 0.02 if self.lab.mode == "in-process" else 0.1 + 0.2 * self.lab.rng.random()
            link = self.links.get((src, dst))
            return round(base + (link.delay if link else 0.0), 3)
        return super().transit_time(src, dst)


class Client(Node):
    """Sends the app `rate` requests a second and waits CLIENT_TIMEOUT for each answer."""

    def boot(self) -> None:
        self.role = "client"
        self.last_rid = 0
        self.open: dict[int, float] = {}  # request id -> when it was sent
        self.schedule()

    def schedule(self) -> None:
        if self.lab.rate > 0:
            self.after((1000 / self.lab.rate) * (0.5 + self.rng.random()), self.next_request, key="next")
        else:
            self.cancel("next")

    def next_request(self) -> None:
        self.schedule()
        self.last_rid += 1
        rid = self.last_rid
        self.open[rid] = self.now
        self.lab.count("requests")
        self.send("app", "REQ", rid=rid)
        self.after(CLIENT_TIMEOUT, self.gave_up, rid, key=("timeout", rid))

    def gave_up(self, rid: int) -> None:
        sent = self.open.pop(rid, None)
        if sent is not None:
            self.lab.request_ended(rid, None, "the app did not answer", sent=sent)

    @on("RESP")
    def answer(self, msg) -> None:
        rid = msg.body["rid"]
        sent = self.open.pop(rid, None)
        if sent is not None:
            self.cancel(("timeout", rid))
            self.lab.request_ended(rid, self.now - sent, msg.body.get("why", ""), ok=msg.body.get("ok", True))


class SidecarLab(Lab):
    """The lab every kind builds on: the app, its helper (node `sidecar`, wherever it
    runs), the far end the helper talks to, and the client.  It watches the
    blast radius: does a crash of the helper stop the app?"""

    slug = "sidecar"
    title = "Sidecar"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    INVARIANTS = {"app-survives": ("sidecar",), "exactly-once": ("sidecar+log-shipper+after-ack+dedupe=on",)}
    PARAMS = (
        Param("mode", "sidecar", "Where the helper's code runs.", choices=("sidecar", "service", "in-process")),
        Param("kind", "log-shipper", "What the helper does: ships log lines, proxies outbound calls, or caches "
                                     "a slow backend.", choices=("log-shipper", "proxy", "cache")),
        Param("commit", "after-ack", "When the shipper moves its read offset: after the store's ACK, or (the bug) "
                                     "before sending.", choices=("after-ack", "before-ack")),
        Param("dedupe", True, "The store ignores a line id it already has."),
        Param("rate", 8, "Requests per second to the app (log shipper: one log line each).", lo=0, hi=20),
        Param("ttl", 3000, "cache: how long (ms) an answer may be served from the cache.", lo=0, hi=60_000),
        Param("serve_stale", False, "cache: when the backend fails, serve the expired entry anyway."),
    )
    FAULTS = ("crash", "restart", "pause", "resume", "slow", "delay", "loss", "partition", "cut", "heal",
              "drop-next", "duplicate-next")
    UNFAULTABLE = ("client",)
    # What a kind puts in the cluster: the app, the helper, and the far end (its node id).
    NODES: tuple[type[Node], type[Node], type[Node]] = ()
    FAR_END = ""

    def setup(self) -> None:
        self.mode = self.params["mode"]
        self.kind = self.params["kind"]
        self.rate = self.params["rate"]
        self.net = LocalNetwork(self, self.LATENCY)
        self.latencies: list[float] = []
        self.outages: list[dict] = []
        self.sidecar_down_since: float | None = None
        self.app_disturbed_at = -1.0  # the last fault on the app or the network (see app_path_disturbed)
        self.flaky = 0  # percent of the backend's answers that are errors
        self.metrics.update({"requests": 0, "ok": 0, "failed": 0, "failed_while_sidecar_down": 0,
                             "lines": 0, "stored": 0, "duplicates": 0, "lost": 0, "log_waits_timed_out": 0})
        app, helper, far_end = self.NODES
        self.add_node(app(self, "app"))
        self.add_node(helper(self, "sidecar"))
        self.add_node(far_end(self, self.FAR_END))
        self.add_node(Client(self, "client"))
        self.add_check("app-survives", "A crash of the sidecar does not stop the app: requests keep being served.")
        self.add_check("exactly-once", "Every log line reaches the store exactly once, outages and crashes "
                                       "included (offset committed after the ACK, store dedupes by line id).")
        self.every(AUDIT_EVERY, self.audit)

    @property
    def sidecar_word(self) -> str:
        return WORD[self.mode]

    # -- the blast radius: a request fails; whose fault was it? ------------------------------
    def request_ended(self, rid: int, ms: float | None, why: str, ok: bool = True, sent: float = 0.0) -> None:
        """The client got its answer (`ms` after sending), or gave up (`ms` None)."""
        sidecar_down = self.sidecar_down_since is not None  # the sidecar was crashed, not the app
        if ms is None:
            self.count("failed")
            self.emit("error", rid=rid, why=why)
            if sidecar_down:
                self.count("failed_while_sidecar_down")
                if self.nodes["app"].status == "down" and self.mode == "in-process":
                    self.fail("app-survives", f"request {rid} failed: the {self.kind} code crashed inside the "
                                              "app's process and took the app down with it")
                elif not self.app_path_disturbed(sent):  # else the app, or its network, was faulted itself
                    self.fail("app-survives", f"request {rid} failed while the sidecar was down")
        else:
            self.count("ok" if ok else "errors")  # an error answer is still an answer: the app is up
            self.latencies.append(round(ms, 2))
            del self.latencies[:-200]

    def app_path_disturbed(self, since: float) -> bool:
        """Was the app, or the network between it and the client, faulted by the
        learner while this request was open (or is it still slowed, with a backlog)?  Then its
        failure is not the sidecar's."""
        app = self.nodes["app"]
        if self.app_disturbed_at >= since or app.status != "up" or app.slow_ms:
            return True
        net = self.net
        return any(not net.reachable(a, b) or not net.links.get((a, b), Link()).clean()
                   for a, b in (("client", "app"), ("app", "client")))

    @observe("drop")
    def dropped(self, event: dict) -> None:
        if {event["src"], event["dst"]} == {"client", "app"}:
            self.app_disturbed_at = self.now  # the network lost a request or an answer

    def audit(self) -> None:
        if self.sidecar_down_since is not None and self.nodes["app"].up:
            self.note("app-survives", f"sidecar down for {fmt_ms(self.now - self.sidecar_down_since)}; "
                                      "the app still serves")

    def latency_summary(self) -> dict:
        xs = sorted(self.latencies[-100:])
        if not xs:
            return {"mean": None, "p95": None, "n": 0}
        return {"mean": round(sum(xs) / len(xs), 1), "p95": round(xs[min(len(xs) - 1, int(0.95 * len(xs)))], 1),
                "n": len(xs)}

    # -- faults: in-process, the helper and the app are one process ---------------------
    def after_fault(self, fault: str, node_id: str | None) -> None:
        if node_id in ("app", "client") or node_id is None:
            self.app_disturbed_at = self.now  # crash, pause, slow of the app; partitions, cuts, delays
        if node_id not in ("app", "sidecar"):
            return
        if fault == "crash":
            if node_id == "sidecar":
                self.sidecar_down_since = self.now
                self.helper_crashed()
            if self.mode == "in-process":
                other = self.nodes["sidecar" if node_id == "app" else "app"]
                if other.status != "down":
                    other.crash()
                    self.emit("crash", node=other.id, why="same process")
                    if other.id == "app":
                        self.fail("app-survives", f"the {self.kind} code crashed inside the app's process and "
                                                  "took the app down with it")
            self.process_died(node_id)
        elif fault == "restart":
            if node_id == "sidecar" or self.mode == "in-process":
                self.sidecar_down_since = None
            if self.mode == "in-process":
                other = self.nodes["sidecar" if node_id == "app" else "app"]
                if other.status == "down":
                    other.restart()
                    self.emit("restart", node=other.id, why="same process")

    def helper_crashed(self) -> None:
        """Hook: the helper's process has just died."""

    def process_died(self, node_id: str) -> None:
        """Hook: the app's or the helper's process has died (in-process: both)."""

    # -- lab actions -----------------------------------------------------------------
    @action("outage", Arg("ms", "ms", lo=100, hi=30_000),
            help="Take the log store (log shipper) or the backend (proxy, cache) down for this long.")
    def do_outage(self, ms: float) -> None:
        far = self.nodes[self.FAR_END]
        if far.status == "down":
            raise SimError(f"the {self.FAR_END} is already down")
        far.crash()
        self.emit("outage", node=far.id, ms=ms)
        self.outages.append({"start": round(self.now, 3), "end": round(self.now + ms, 3)})
        del self.outages[:-5]
        self.sim.after(ms, self.end_outage)

    def end_outage(self) -> None:
        far = self.nodes[self.FAR_END]
        if far.status == "down":
            far.restart()
            self.emit("restart", node=far.id, why="outage over")

    @action("flaky", Arg("percent", "percent"),
            help="proxy, cache: this share of the backend's answers are errors (the proxy retries them).")
    def do_flaky(self, percent: int) -> None:
        if self.kind == "log-shipper":
            raise SimError("the log shipper has no backend; flaky works with kind=proxy or kind=cache")
        self.flaky = percent
        self.emit("flaky", node="backend", percent=percent)

    @action("traffic", Arg("rate", "int", lo=0, hi=20), group="request",
            help="Requests per second to the app (0 stops).")
    def do_traffic(self, rate: int) -> None:
        self.rate = rate
        self.emit("traffic", rate=rate)
        self.nodes["client"].schedule()

    def view(self) -> dict:
        return {"edges": [["client", "app"], ["app", "sidecar"], ["sidecar", self.FAR_END]], "kind": self.kind,
                "latency": self.latency_summary(), "recent_latency": self.latencies[-30:],
                "outages": list(self.outages)}


# -- proxy and cache: the app calls out through its helper ---------------------------------


@dataclass
class Call:
    """One call the app makes through its helper for a request (call id = request id)."""

    to: str  # the client waiting for the request's answer
    start: float
    key: str | None = None  # cache: the key read
    fallback: str = ""  # cache: why the app went to the backend directly
    direct: bool = False


class CallingApp(Node):
    """The app for the proxy and cache kinds: a request may need a call through the
    helper.  The app always has its own timeout for the helper; when the helper's port
    is on this node and nobody listens there, the OS refuses the connection at once."""

    def boot(self) -> None:
        self.role = "app"
        self.calls: dict[int, Call] = {}

    @on("REQ")
    def requested(self, msg) -> None:
        rid = msg.body["rid"]
        self.after(work_time(self, WORK_MS), self.work, rid, msg.src, key=("work", rid))

    def work(self, rid: int, to: str) -> None:
        """The request's work is done; it may need a call (the kinds decide)."""

    def call(self, rid: int, to: str, key: str | None) -> None:
        self.calls[rid] = Call(to, self.now, key)
        if self.lab.localhost_refuses():
            # Same node: connecting to a port nobody listens on is refused by the OS at once.
            self.after(REFUSED_MS, self.helper_unreachable, rid, "connection refused: the sidecar is down",
                       key=("refused", rid))
            return
        self.send("sidecar", "CALL", cid=rid, key=key)
        self.after(APP_CALL_TIMEOUT, self.helper_unreachable, rid,
                   f"no answer from the {self.lab.sidecar_word} within {APP_CALL_TIMEOUT} ms", key=("call", rid))

    def helper_died(self) -> None:
        """Sidecar mode: the helper's process died, so the OS resets its open connections at once."""
        for cid, call in self.calls.items():
            if not call.direct:
                self.cancel(("call", cid))
                self.after(REFUSED_MS, self.helper_unreachable, cid, "connection reset: the sidecar died",
                           key=("refused", cid))

    def helper_unreachable(self, cid: int, why: str) -> None:
        call = self.calls.get(cid)
        if call is not None and not call.direct:
            self.without_helper(cid, call, why)

    def without_helper(self, cid: int, call: Call, why: str) -> None:
        """The helper cannot be reached: the call fails; the app answers its client with an error."""
        self.finish(cid, False, why, via="timeout" if why.startswith("no answer") else "refused")

    @on("REPLY")
    def replied(self, msg) -> None:
        self.finish(msg.body["cid"], msg.body["ok"], msg.body.get("why", ""), via="helper",
                    upstream=msg.body.get("upstream"), hit=msg.body.get("hit"))

    def finish(self, cid: int, ok: bool, why: str, via: str, upstream: float | None = None,
               hit: bool | None = None) -> None:
        call = self.calls.pop(cid, None)
        if call is None:
            return  # already given up on
        self.cancel(("call", cid))
        self.cancel(("direct", cid))
        ms = self.now - call.start
        self.lab.call_done(cid, ok, ms, via, upstream, hit, why if not ok else call.fallback)
        self.send(call.to, "RESP", rid=cid, ok=ok, **({} if ok else {"why": why}))

    def view(self) -> dict:
        return {"label": f"{len(self.calls)} calls open" if self.calls else "app"}


class Backend(Node):
    """What the helper calls: it takes WORK_MS per FETCH and answers RESULT (an error
    for the `flaky` share)."""

    WORK_MS = (5.0, 15.0)
    LABEL = "backend"

    def boot(self) -> None:
        self.role = "backend"

    @on("FETCH")
    def fetch(self, msg) -> None:
        key = ("work", msg.src, msg.body["cid"], msg.body.get("attempt", 1))
        self.after(work_time(self, self.WORK_MS), self.answer, msg.src, dict(msg.body), key=key)

    def answer(self, to: str, body: dict) -> None:
        ok = self.rng.random() * 100 >= self.lab.flaky
        self.send(to, "RESULT", ok=ok, **body, **self.value(body.get("key")))

    def value(self, key: str | None) -> dict:
        return {}

    def view(self) -> dict:
        return {"label": self.LABEL}


class CallsLab(SidecarLab):
    """proxy and cache: the calls the app makes through its helper, as the page shows them."""

    FAR_END = "backend"

    def setup(self) -> None:
        self.recent_calls: list[dict] = []  # the last calls, for the panel
        self.call_ms: list[float] = []
        super().setup()
        self.metrics.update({"calls": 0, "calls_ok": 0, "calls_failed": 0, "retries": 0, "refused": 0,
                             "fallback": 0, "hits": 0, "misses": 0, "stale_served": 0, "outdated": 0})
        self.holds("exactly-once", "applies to the log shipper (kind=log-shipper); no log lines here")

    def localhost_refuses(self) -> bool:
        """Sidecar mode: the helper's port is on this node, so when nothing listens
        there the OS refuses the connection at once (a paused helper still accepts)."""
        return self.mode == "sidecar" and self.nodes["sidecar"].status == "down"

    def helper_crashed(self) -> None:
        if self.mode == "sidecar":
            self.nodes["app"].helper_died()

    def call_done(self, cid: int, ok: bool, ms: float, via: str, upstream: float | None, hit: bool | None,
                  why: str) -> None:
        """The app's call through its helper has ended."""
        self.count("calls")
        self.count("calls_ok" if ok else "calls_failed")
        if via == "refused":
            self.count("refused")
        self.call_ms.append(round(ms, 2))
        del self.call_ms[:-100]
        added = round(ms - upstream, 3) if upstream is not None else None
        self.recent_calls.append({"id": cid, "ok": ok, "ms": round(ms, 1), "added": added, "via": via,
                                  "hit": hit, "why": why})
        del self.recent_calls[:-8]
        self.emit("call", cid=cid, ok=ok, ms=round(ms, 3), via=via, **({"hit": hit} if hit is not None else {}),
                  **({"why": why} if why else {}))

    def view(self) -> dict:
        m = self.metrics
        calls = {"mode": self.mode, "word": self.sidecar_word, "sidecar": self.nodes["sidecar"].status,
                 "recent": list(reversed(self.recent_calls)), "spark": self.call_ms[-30:],
                 "n": m["calls"], "ok": m["calls_ok"], "failed": m["calls_failed"], "flaky": self.flaky,
                 "mean": round(sum(self.call_ms) / len(self.call_ms), 1) if self.call_ms else None,
                 "max": round(max(self.call_ms), 1) if self.call_ms else None}
        return {**super().view(), "calls": calls}
