"""What the kinds share: the client, localhost, a crash's blast radius, the outage, the proxy's and cache's calls."""

from collections import deque
from dataclasses import dataclass
from functools import partial

from ..kernel import Arg, Lab, Link, Network, Node, Param, SimError, action, fmt_ms, observe, on

WORK_MS = (8.0, 16.0)  # the app's real work per request
CLIENT_TIMEOUT = 1000  # how long the client waits for the app
AUDIT_EVERY = 500  # ms between the lab's looks at its checks
APP_CALL_TIMEOUT = 600  # proxy, cache: the app's own (generic) timeout for a call to the helper
REFUSED_MS = 0.2  # proxy, cache: how soon the OS refuses a connection to a port nobody listens on

ROLE = {"sidecar": "sidecar", "service": "remote-service", "in-process": "in-process"}
WORD = {"sidecar": "sidecar", "service": "remote service", "in-process": "library"}


def mean(xs, digits: int = 1) -> float | None:
    return round(sum(xs) / len(xs), digits) if xs else None


class LocalNetwork(Network):
    """A sidecar is a hop over its node's loopback interface, a library a function call: well
    under a millisecond.  (The kernel's network has one latency range for every link.)"""

    def transit_time(self, src: str, dst: str) -> float:
        if {src, dst} != {"app", "sidecar"} or self.lab.mode == "service":
            return super().transit_time(src, dst)
        base = 0.02 if self.lab.mode == "in-process" else 0.1 + 0.2 * self.lab.rng.random()
        return round(base + self.links.get((src, dst), Link()).delay, 3)


class Client(Node):
    """Sends the app `rate` requests a second and waits CLIENT_TIMEOUT for each answer."""

    def boot(self) -> None:
        self.role = "client"
        self.last_rid = 0
        self.sent_at: dict[int, float] = {}  # the open requests: id -> when sent
        self.schedule()

    def schedule(self) -> None:
        self.at_rate(self.lab.rate, self.next_request, key="next")

    def next_request(self) -> None:
        self.schedule()
        self.last_rid += 1
        rid = self.last_rid
        self.sent_at[rid] = self.now
        self.lab.count("requests")
        self.request("app", "REQ", awaiting=("answer", rid), timeout=CLIENT_TIMEOUT,
                     on_timeout=partial(self.ended, rid, None), rid=rid)

    @on("RESP")
    def answer(self, msg) -> None:
        if self.answered(("answer", msg.body["rid"])):
            self.ended(msg.body["rid"], msg.body)

    def ended(self, rid: int, answer: dict | None) -> None:
        """The app answered request `rid`, or (`answer` None) the client gave up on it."""
        self.lab.witness("request-ended", rid=rid, sent=self.sent_at.pop(rid), answer=answer)


class SidecarLab(Lab):
    """What every kind builds on: the app, its helper (node `sidecar`, wherever it
    runs), the far end the helper talks to, and the client.  It watches the blast
    radius: does a crash of the helper stop the app?"""

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
    UNFAULTABLE = ("client",)
    NODES: tuple[type[Node], ...] = ()  # the kind's app, helper and far end
    FAR_END = ""  # the far end's node id

    def setup(self) -> None:
        self.mode = self.params["mode"]
        self.kind = self.params["kind"]
        self.rate = self.params["rate"]
        self.net = LocalNetwork(self, self.LATENCY)
        self.latencies: deque[float] = deque(maxlen=100)  # of the last answered requests
        self.outages: deque[dict] = deque(maxlen=5)
        self.sidecar_down_since: float | None = None
        self.app_disturbed_at = -1.0  # the last fault on the app or the network (see app_path_disturbed)
        self.flaky = 0  # percent of the backend's answers that are errors
        self.metrics.update({"requests": 0, "ok": 0, "failed": 0, "failed_while_sidecar_down": 0,
                             "lines": 0, "stored": 0, "duplicates": 0, "lost": 0, "log_waits_timed_out": 0})
        for node_id, node in zip(("app", "sidecar", self.FAR_END), self.NODES):
            self.add_node(node(self, node_id))
        self.add_node(Client(self, "client"))
        self.add_check("app-survives", "A crash of the sidecar does not stop the app: requests keep being served.")
        self.add_check("exactly-once", "Every log line reaches the store exactly once, outages and crashes "
                                       "included (offset committed after the ACK, store dedupes by line id).")
        self.every(AUDIT_EVERY, self.audit)

    # -- the blast radius: a request fails; whose fault was it? ------------------------------
    @observe("request-ended")
    def request_ended(self, fact: dict) -> None:
        rid, answer = fact["rid"], fact["answer"]
        if answer is not None:  # an error answer is still an answer: the app is up
            self.count("ok" if answer.get("ok", True) else "errors")
            self.latencies.append(round(self.now - fact["sent"], 2))
            return
        self.count("failed")
        self.emit("error", rid=rid, why="the app did not answer")
        if self.sidecar_down_since is not None:
            self.count("failed_while_sidecar_down")
            if not self.app_path_disturbed(fact["sent"]):  # (in-process, the crash took the app down: see after_fault)
                self.fail("app-survives", f"request {rid} failed while the sidecar was down")

    def app_path_disturbed(self, since: float) -> bool:
        """Was the app, or the network between it and the client, faulted by the
        learner while this request was open (or is it still slowed, with a backlog)?"""
        app = self.nodes["app"]
        if self.app_disturbed_at >= since or app.status != "up" or app.slow_ms:
            return True
        return any(not self.net.reachable(a, b) or not self.net.links.get((a, b), Link()).clean()
                   for a, b in (("client", "app"), ("app", "client")))

    @observe("drop")
    def dropped(self, event: dict) -> None:
        if {event["src"], event["dst"]} == {"client", "app"}:
            self.app_disturbed_at = self.now  # the network lost a request or an answer

    def audit(self) -> None:
        if self.sidecar_down_since is not None and self.nodes["app"].up:
            self.note("app-survives", f"sidecar down for {fmt_ms(self.now - self.sidecar_down_since)}; "
                                      "the app still serves")

    # -- faults: in-process, the helper and the app are one process ---------------------
    def after_fault(self, fault: str, node_id: str | None) -> None:
        if node_id in ("app", None):
            self.app_disturbed_at = self.now  # crash, pause, slow of the app; partitions, cuts, delays
        if node_id not in ("app", "sidecar") or fault not in ("crash", "restart"):
            return
        if fault == "crash" and node_id == "sidecar":
            self.sidecar_down_since = self.now
        elif fault == "restart" and (node_id == "sidecar" or self.mode == "in-process"):
            self.sidecar_down_since = None
        other = self.nodes["sidecar" if node_id == "app" else "app"]
        if self.mode == "in-process" and fault == "crash":
            other.crash()
            self.emit("crash", node=other.id, why="same process")
            if other.id == "app":
                self.fail("app-survives", f"the {self.kind} code crashed inside the app's process and "
                                          "took the app down with it")
        elif self.mode == "in-process":
            other.restart()
            self.emit("restart", node=other.id, why="same process")
        if fault == "crash":
            self.process_died(node_id)

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
        xs = sorted(self.latencies)
        latency = {"mean": mean(xs), "p95": round(xs[int(0.95 * len(xs))], 1) if xs else None, "n": len(xs)}
        return {"edges": [["client", "app"], ["app", "sidecar"], ["sidecar", self.FAR_END]], "kind": self.kind,
                "latency": latency, "recent_latency": list(self.latencies)[-30:], "outages": list(self.outages)}


# -- proxy and cache: the app calls out through its helper ---------------------------------
@dataclass
class Call:
    """A call through the helper (call id = request id), as the app, the proxy or the cache keeps it."""

    to: str  # who waits for its answer (the app's client; the helper's app)
    start: float
    key: str | None = None  # cache: the key read
    attempt: int = 0  # proxy: the try in flight
    fallback: str = ""  # cache: why the app went to the backend directly (it then waits for the backend)


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
        self.after(self.rng.uniform(*WORK_MS), self.work, rid, msg.src, key=("work", rid))

    def work(self, rid: int, to: str) -> None:
        """The request's work is done; it may need a call (the kinds decide)."""

    def call(self, rid: int, to: str, key: str | None = None) -> None:
        self.calls[rid] = Call(to, self.now, key)
        if self.lab.mode == "sidecar" and self.lab.nodes["sidecar"].status == "down":
            # Nothing listens on the helper's port on this node (a paused helper still accepts).
            self.after(REFUSED_MS, self.without_helper, rid, "connection refused: the sidecar is down",
                       key=("call", rid))
            return
        self.send("sidecar", "CALL", cid=rid, key=key)
        self.after(APP_CALL_TIMEOUT, self.without_helper, rid,
                   f"no answer from the {WORD[self.lab.mode]} within {APP_CALL_TIMEOUT} ms", key=("call", rid))

    def helper_died(self) -> None:
        """Sidecar mode: the helper's process died, so the OS resets its open connections at once."""
        for cid, call in self.calls.items():
            if not call.fallback:  # (replaces the call's timeout)
                self.after(REFUSED_MS, self.without_helper, cid, "connection reset: the sidecar died",
                           key=("call", cid))

    def without_helper(self, cid: int, why: str) -> None:
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
        self.lab.witness("call-ended", cid=cid, ok=ok, ms=self.now - call.start, via=via, upstream=upstream,
                         hit=hit, why=why if not ok else call.fallback)
        self.send(call.to, "RESP", rid=cid, ok=ok, **({} if ok else {"why": why}))

    def view(self) -> dict:
        return {"label": f"{len(self.calls)} calls open" if self.calls else "app"}


class Backend(Node):
    """What the helper calls: it takes WORK_MS per FETCH and answers RESULT (an error for the `flaky` share)."""

    WORK_MS = (5.0, 15.0)
    LABEL = "downstream service"

    def boot(self) -> None:
        self.role = "backend"

    @on("FETCH")
    def fetch(self, msg) -> None:
        key = ("work", msg.src, msg.body["cid"], msg.body.get("attempt", 1))
        self.after(self.rng.uniform(*self.WORK_MS), self.answer, msg.src, dict(msg.body), key=key)

    def answer(self, to: str, body: dict) -> None:
        self.send(to, "RESULT", ok=self.rng.random() * 100 >= self.lab.flaky, **body)

    def view(self) -> dict:
        return {"label": self.LABEL}


class CallsLab(SidecarLab):
    """proxy and cache: the calls the app makes through its helper, as the page shows them."""

    FAR_END = "backend"

    def setup(self) -> None:
        self.recent_calls: deque[dict] = deque(maxlen=8)  # for the panel
        self.call_ms: deque[float] = deque(maxlen=100)
        super().setup()
        self.metrics.update({"calls": 0, "calls_ok": 0, "calls_failed": 0, "retries": 0, "refused": 0,
                             "fallback": 0, "hits": 0, "misses": 0, "stale_served": 0, "outdated": 0})
        self.holds("exactly-once", "applies to the log shipper (kind=log-shipper); no log lines here")

    def process_died(self, node_id: str) -> None:
        if node_id == "sidecar" and self.mode == "sidecar":
            self.nodes["app"].helper_died()

    @observe("call-ended")
    def call_ended(self, call: dict) -> None:
        cid, ok, ms, via, hit, why = call["cid"], call["ok"], call["ms"], call["via"], call["hit"], call["why"]
        self.count("calls")
        self.count("calls_ok" if ok else "calls_failed")
        if via == "refused":
            self.count("refused")
        self.call_ms.append(round(ms, 2))
        added = round(ms - call["upstream"], 3) if call["upstream"] is not None else None
        self.recent_calls.append({"id": cid, "ok": ok, "ms": round(ms, 1), "added": added, "via": via,
                                  "hit": hit, "why": why})
        self.emit("call", cid=cid, ok=ok, ms=round(ms, 3), via=via, **({"hit": hit} if hit is not None else {}),
                  **({"why": why} if why else {}))

    def view(self) -> dict:
        m, ms = self.metrics, self.call_ms
        return {**super().view(),
                "calls": {"mode": self.mode, "word": WORD[self.mode], "sidecar": self.nodes["sidecar"].status,
                          "recent": list(reversed(self.recent_calls)), "spark": list(ms)[-30:],
                          "n": m["calls"], "ok": m["calls_ok"], "failed": m["calls_failed"], "flaky": self.flaky,
                          "mean": mean(ms), "max": round(max(ms), 1) if ms else None}}
