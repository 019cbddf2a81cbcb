"""Circuit breaker: stop calling a dependency that keeps failing.

The chain is client -> A -> B -> C: the client calls A, A calls B, B calls C.
A and B serve each call on one of their worker threads and hold that thread
until the call they make downstream answers or times out.  When C dies, every
call B makes waits the full call timeout, B's answers to A are slow, A's
threads fill up with waiting calls, and the client sees slow failures: the
outage has cascaded up the chain.

A breaker sits on each call edge (A->B owned by A, B->C owned by B), in the
form Nygard describes in "Release It!" (2007):

  * CLOSED: calls pass.  Each failure (an error or a timeout) adds one to a
    count of consecutive failures; a success resets it.  When the count
    reaches the threshold the breaker trips.
  * OPEN: calls do not go out at all; the caller answers at once with a
    fallback (a degraded but useful answer).  After the open timeout the
    breaker lets a few calls test the water.
  * HALF-OPEN: at most `trials` calls cross; the others still get the
    fallback.  One failed trial opens the breaker again for another open
    timeout; when every trial succeeded, the breaker closes.

A trial's answer counts only in the half-open period it was sent in: a
trial from an earlier period that answers late changes nothing.

With breakers off, each caller still has its call timeout, but nothing stops
it from waiting on a dead dependency again and again.

Two flawed variants show what the checks are for (the `variant` param):

  * dry-run: the breaker keeps its state but lets every call through (to
    tune thresholds before enforcing, like Hystrix's forceClosed or
    resilience4j's metrics-only state): calls cross while it is open;
  * no-half-open: after the open timeout the breaker simply closes, so every
    waiting call rushes to the dependency at once, and one failure is not
    enough to open it again.

The checks are an observer: they watch the CALL messages on each edge, the
outcome of each call (its answer or its timeout) and the state each breaker
announces, and never look inside the breaker.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import partial

from .kernel import Arg, Lab, Node, Param, action, any_state, not_down, observe, on

WORK_MS = (8.0, 20.0)  # how long C works on one call
QUEUE_PER_THREAD = 2  # a service queues at most 2 x threads calls waiting for a thread
A_MARGIN = 250  # A waits for B a little longer than B waits for C, so B's answer comes first
SAMPLE_EVERY = 250  # ms between two points of A's chart
SAMPLES = 80  # points kept on the chart (20 s)
WINDOW = 1000  # A's latency on the chart is the mean of its answers in the last second
TRANSITIONS_KEPT = 6

SERVICES = ("A", "B", "C")  # the client only drives traffic
CLIENT_ONLY = "the client only drives traffic; use A, B or C"


class Breaker:
    """The breaker on one call edge.  It lives in its owner's memory: when
    the owner crashes and restarts, the breaker starts closed again."""

    def __init__(self, lab: CircuitBreaker, owner: str, target: str):
        self.lab, self.owner, self.id = lab, owner, f"{owner}->{target}"
        self.enabled = lab.params["breakers"] == "on"
        self.period = 0  # which half-open period this is (a trial counts only in its own)
        self.transitions: list[dict] = []  # kept by the lab across restarts (for the page)
        self.trips = 0
        self.reset()

    def reset(self) -> None:
        self.state, self.since = "closed", round(self.lab.now, 3)
        # Consecutive failures while closed; calls let through in this half-open period, and how many
        # succeeded; calls refused (given the fallback) since the owner started.
        self.failures = self.trials_sent = self.trials_ok = self.short_circuited = 0

    # -- the protocol ---------------------------------------------------------
    def allow(self) -> str | None:
        """May a call go out?  Returns 'call', 'trial', or None (use the fallback)."""
        if not self.enabled or self.state == "closed":
            return "call"
        if self.state == "half-open" and self.trials_sent < self.lab.params["trials"]:
            self.trials_sent += 1
            return "trial"
        if self.lab.params["variant"] == "dry-run":
            return "call"  # the flaw: it knows it should refuse, and lets the call through anyway
        self.short_circuited += 1
        self.lab.count("short_circuited")
        return None

    def outcome(self, ok: bool, why: str, kind: str, period: int) -> None:
        """A call it let out ended.  A failure of a call sent before the breaker
        opened, or the answer to a trial of an earlier half-open period, changes nothing."""
        if not self.enabled:
            return
        trial = self.state == "half-open" and kind == "trial" and period == self.period
        if self.state == "closed" and ok:
            self.failures = 0
        elif self.state == "closed":
            self.failures += 1
            self.lab.count(f"failures {self.id}")
            if self.failures >= self.lab.params["threshold"]:
                self.trip(f"{self.failures} failures in a row ({why})")
        elif trial and not ok:
            self.trip(f"trial call failed ({why})")
        elif trial:
            self.trials_ok += 1
            if self.trials_ok >= self.lab.params["trials"]:
                self.move("closed", "trial calls succeeded")

    def trip(self, why: str) -> None:
        self.trips += 1
        self.move("open", why)
        self.lab.nodes[self.owner].after(self.lab.params["open_ms"], self.half_open, key=("half-open", self.id))

    def half_open(self) -> None:
        if self.state != "open":
            return
        if self.lab.params["variant"] == "no-half-open":  # the flaw: straight back to closed, everyone may call
            self.move("closed", f"open for {self.lab.params['open_ms']}ms (no half-open state)")
        else:
            self.period += 1
            self.move("half-open", f"open for {self.lab.params['open_ms']}ms")

    def move(self, state: str, why: str) -> None:
        old, self.state = self.state, state
        self.since = round(self.lab.now, 3)
        self.failures = self.trials_sent = self.trials_ok = 0
        self.transitions.append({"t": self.since, "from": old, "to": state, "why": why})
        del self.transitions[:-TRANSITIONS_KEPT]
        self.lab.emit("breaker", id=self.id, src=old, dst=state, why=why)
        self.lab.nodes[self.owner].role = state  # the page shows the owner's breaker state as its role

    def view(self) -> dict:
        return {"id": self.id, "state": self.state, "enabled": self.enabled, "since": self.since,
                "failures": self.failures, "threshold": self.lab.params["threshold"], "trials_sent": self.trials_sent,
                "trials_ok": self.trials_ok, "short_circuited": self.short_circuited, "trips": self.trips,
                "transitions": list(self.transitions)}


class Client(Node):
    """Sends `rate` requests per second to A and notes how each one ends."""

    def boot(self) -> None:
        self.role = "client"
        self.sent = 0
        self.waiting: dict[int, float] = {}  # request id -> when it was sent
        self.patience = 3 * (self.lab.params["timeout"] + A_MARGIN) + 1000  # then it gives up on a request
        self.every(1000 / self.lab.params["rate"], self.request_one, key="tick")

    def view(self) -> dict:
        return {"calls": 0, "sent": self.sent, "waiting": len(self.waiting),
                "label": f"{self.lab.params['rate']}/s · waiting {len(self.waiting)}"}

    def request_one(self) -> None:
        self.sent += 1
        rid = self.sent
        self.waiting[rid] = self.now
        self.request("A", "CALL", awaiting=("give-up", rid), timeout=self.patience, cid=rid, rid=rid,
                     on_timeout=partial(self.finish, rid, "timeout", "client", "no answer from A"))

    @on("REPLY")
    def reply(self, msg) -> None:
        b = msg.body
        if self.answered(("give-up", b["cid"])):  # (else: the client gave up already)
            self.finish(b["cid"], "fallback" if b["fallback"] else ("ok" if b["ok"] else "error"), b["by"], b["why"])

    def finish(self, rid: int, outcome: str, by: str, why: str) -> None:
        self.lab.count("requests")
        self.lab.count(outcome)
        ms = round(self.now - self.waiting.pop(rid), 3)
        self.lab.emit("answer", rid=rid, outcome=outcome, ms=ms, by=by, **({"why": why} if why else {}))


@dataclass(eq=False)
class Job:
    """A call a service serves: on a worker thread, or queued for one."""

    src: str
    cid: int
    rid: int
    t: float
    kind: str | None = None  # what the breaker allowed: "call", "trial" or None (fallback)
    period: int = 0  # the breaker's half-open period when the call went out


class Service(Node):
    """A or B: serves each call on a worker thread and calls the next service through its breaker."""

    def __init__(self, lab: CircuitBreaker, id: str, callee: str, timeout: float):
        self.callee, self.timeout = callee, timeout
        super().__init__(lab, id)

    def boot(self) -> None:
        self.threads = self.lab.params["threads"]
        self.busy: list[Job] = []  # the calls being served, one per thread
        self.queue: list[Job] = []  # calls waiting for a free thread
        self.out: dict[int, Job] = {}  # my call id downstream -> the job waiting on it
        self.fail_percent = 0
        breaker = self.breaker
        if breaker.state != "closed":  # memory is lost in a crash, and so is the breaker's state
            breaker.move("closed", f"{self.id} restarted")
        breaker.reset()
        self.lab.witness("owner-started", edge=breaker.id)
        self.role = "closed" if breaker.enabled else "service"

    @property
    def breaker(self) -> Breaker:
        return self.lab.breakers[f"{self.id}->{self.callee}"]

    def view(self) -> dict:
        up = self.status != "down"
        return {"calls": self.lab.calls[self.id], "threads_busy": len(self.busy) if up else 0,
                "threads": self.threads, "queued": len(self.queue) if up else 0, "fail_percent": self.fail_percent,
                "label": f"threads {len(self.busy)}/{self.threads} · queue {len(self.queue)}" if up else "down"}

    # -- serving a call ----------------------------------------------------------
    @on("CALL")
    def call(self, msg) -> None:
        job = Job(msg.src, msg.body["cid"], msg.body["rid"], self.now)
        if self.fail_percent and self.rng.random() * 100 < self.fail_percent:
            self.answer(job, False, f"{self.id} failed")
        elif len(self.busy) < self.threads:
            self.start(job)
        elif len(self.queue) < QUEUE_PER_THREAD * self.threads:
            self.queue.append(job)  # wait for a thread
        else:
            self.answer(job, False, f"{self.id} has no free thread")

    def start(self, job: Job) -> None:
        """A thread takes the job and calls the next service, if the breaker lets it."""
        self.busy.append(job)
        job.kind, job.period = self.breaker.allow(), self.breaker.period
        if job.kind is None:  # open, or half-open with its trials taken: do not even try
            return self.fallback(job, f"breaker {self.breaker.id} is {self.breaker.state}")
        cid = next(self.lab.call_ids)  # a fresh id, unique across A and B
        self.out[cid] = job
        if job.kind == "trial":
            self.lab.emit("trial", breaker=self.breaker.id, rid=job.rid)
        self.lab.witness("call-out", edge=self.breaker.id, cid=cid)
        self.request(self.callee, "CALL", awaiting=("timeout", cid), timeout=self.timeout,
                     on_timeout=partial(self.timed_out, cid), cid=cid, rid=job.rid)

    @on("REPLY")
    def reply(self, msg) -> None:
        b = msg.body
        if self.answered(("timeout", b["cid"])):  # (else the answer came after my timeout: nobody waits for it)
            self.downstream_done(b["cid"], b["ok"], b["why"], b["by"], b["fallback"])

    def timed_out(self, cid: int) -> None:
        self.downstream_done(cid, False, f"{self.callee} did not answer in {self.timeout:.0f}ms")

    def downstream_done(self, cid: int, ok: bool, why: str, by: str = "", fallback: bool = False) -> None:
        """The call downstream answered (a fallback from further down is an
        answer too, passed on as it is) or failed."""
        job = self.out.pop(cid)
        self.breaker.outcome(ok, why, job.kind, job.period)
        self.lab.witness("outcome", edge=self.breaker.id, cid=cid, ok=ok)
        if ok or not self.breaker.enabled:
            self.answer(job, ok, why, by, fallback)
        else:
            self.fallback(job, why)

    def fallback(self, job: Job, why: str) -> None:
        """The degraded answer given instead of an error when breakers are on."""
        self.lab.count(f"fallbacks by {self.id}")
        self.answer(job, True, why, fallback=True)

    def answer(self, job: Job, ok: bool, why: str, by: str = "", fallback: bool = False) -> None:
        """Reply to the caller, then free the thread for the next queued call."""
        self.send(job.src, "REPLY", cid=job.cid, rid=job.rid, ok=ok, fallback=fallback, by=by or self.id, why=why)
        if job.src == "client":
            self.lab.witness("a-answered", ms=self.now - job.t)
        if job in self.busy:
            self.busy.remove(job)
            if self.queue:
                self.start(self.queue.pop(0))


class Backend(Node):
    """C: does a little work and answers, unless it is made to fail."""

    def boot(self) -> None:
        self.role = "service"
        self.fail_percent = 0

    def view(self) -> dict:
        label = f"calls {self.lab.calls[self.id]}" + (f" · fails {self.fail_percent}%" if self.fail_percent else "")
        return {"calls": self.lab.calls[self.id], "fail_percent": self.fail_percent, "label": label}

    @on("CALL")
    def call(self, msg) -> None:
        cid = msg.body["cid"]
        self.after(self.rng.uniform(*WORK_MS), self.answer, msg.src, cid, msg.body["rid"], key=("work", cid))

    def answer(self, src: str, cid: int, rid: int) -> None:
        ok = not (self.fail_percent and self.rng.random() * 100 < self.fail_percent)
        self.send(src, "REPLY", cid=cid, rid=rid, ok=ok, fallback=False, by="C", why="" if ok else "C failed")


@dataclass
class EdgeWatch:
    """What the checks know of one edge: only what the breaker announced and the calls seen."""

    state: str = "closed"
    window: list[int] | None = None  # the calls that crossed since the open timeout ended (None: no trials due)
    outcomes: dict[int, bool] = field(default_factory=dict)  # call id -> ok, for the window's trials that ended
    left: str | None = None  # half-open was just left for this state (judged with the outcome that caused it)


class CircuitBreaker(Lab):
    slug = "circuit-breaker"
    title = "Circuit breaker"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    # (The dry-run and no-half-open variants exist to show these checks going red.)
    INVARIANTS = dict.fromkeys(("open-blocks", "trial-limit", "trial-outcome", "no-cascade"), ("on+nygard",))
    PARAMS = (
        Param("breakers", "on", "Breakers on the A->B and B->C calls, or plain calls with timeouts.",
              choices=("on", "off")),
        Param("rate", 10, "Client requests per second.", lo=1, hi=20),
        Param("threshold", 5, "Consecutive failures that trip a closed breaker.", lo=1, hi=20),
        Param("open_ms", 2000, "How long a tripped breaker stays open before trying again (ms).", lo=200, hi=10_000),
        Param("trials", 1, "Calls a half-open breaker lets through to test the dependency.", lo=1, hi=5),
        Param("timeout", 1000, "Call timeout of B calling C (ms); A waits 250 ms longer for B.", lo=100, hi=5000),
        Param("threads", 10, "Worker threads of A and of B.", lo=2, hi=20),
        Param("variant", "nygard", "nygard: the breaker as described; dry-run: it keeps its state but lets every call "
                                   "through; no-half-open: after the open timeout it closes at once.",
              choices=("nygard", "dry-run", "no-half-open")),
    )
    UNFAULTABLE = ("client",)

    def setup(self) -> None:
        p = self.params
        self.call_ids = itertools.count(1_000_001)  # A and B take their calls' ids here, apart from the client's
        self.calls = dict.fromkeys(SERVICES, 0)  # calls each service received
        self.breakers = {b.id: b for b in (Breaker(self, "A", "B"), Breaker(self, "B", "C"))}
        self.watch = {edge: EdgeWatch() for edge in self.breakers}
        self.reached: set[int] = set()  # requests A received that the client still waits for
        self.a_recent: list[tuple[float, float]] = []  # (t, ms) of A's answers in the last WINDOW ms
        self.chart = {"t": [], "a_threads": [], "a_latency": []}
        # no-cascade: how long may the client go without a good answer (ok, or a
        # quick fallback) while its failures are slow?  As long as a breaker needs to
        # notice: one call timeout, `threshold` more requests, one more timeout, 1 s.
        self.cascade_ms = 2 * p["timeout"] + p["threshold"] * 1000 / p["rate"] + 1000
        self.last_good = 0.0  # when the client last got an ok answer or a quick fallback
        self.first_slow: float | None = None  # first slow failure since then
        self.worst_slow = 0.0
        self.metrics.update(dict.fromkeys(("requests", "ok", "fallback", "error", "timeout", "short_circuited"), 0))
        self.add_node(Client(self, "client"))
        self.add_node(Service(self, "A", "B", p["timeout"] + A_MARGIN))
        self.add_node(Service(self, "B", "C", p["timeout"]))
        self.add_node(Backend(self, "C"))
        self.add_check("open-blocks", "While a breaker is open, no call crosses it.")
        self.add_check("trial-limit", "After the open timeout, at most the configured trial calls cross the half-open "
                                      "breaker.")
        self.add_check("trial-outcome", "A successful trial closes the breaker; a failed one opens it again.")
        self.add_check("no-cascade", "An outage behind A does not reach the client as slow failures: the client "
                       f"never goes {self.cascade_ms / 1000:g} s without a good answer (ok, or a quick fallback) while "
                       "its requests fail or fall back only after waiting out a timeout (the time a breaker needs to "
                       "notice, plus 1 s).")
        if p["breakers"] == "off":
            for name in ("open-blocks", "trial-limit", "trial-outcome"):
                self.checks[name].detail = "breakers are off: nothing to check"
        self.every(SAMPLE_EVERY, self.sample)

    # -- bookkeeping the page and the checks use --------------------------------
    def handled(self, node: Node, msg) -> None:
        if msg.type == "CALL":  # a call received (A, B or C)
            self.calls[node.id] += 1
            if node.id == "A" and msg.body["rid"] in self.nodes["client"].waiting:
                self.reached.add(msg.body["rid"])

    @observe("answer")
    def client_answered(self, answer: dict) -> None:
        # A slow answer waited out at least one call timeout.  A request A never
        # received (A down, a cut link) is not an outage cascading through A.
        outcome, reached = answer["outcome"], answer["rid"] in self.reached
        self.reached.discard(answer["rid"])
        slow = answer["ms"] >= self.params["timeout"] and (reached or outcome != "timeout")
        if outcome == "ok" or (outcome == "fallback" and not slow):
            self.last_good, self.first_slow = self.now, None
        elif slow and self.first_slow is None:
            self.first_slow = self.now

    @observe("a-answered")
    def a_answered(self, fact: dict) -> None:
        self.a_recent.append((self.now, fact["ms"]))

    # -- the checks: an observer of calls, outcomes and announced states ----------
    @observe("call-out")
    def observe_call(self, call: dict) -> None:
        """A CALL leaves the owner on this edge (whatever the breaker thought of it)."""
        edge, cid, trials = call["edge"], call["cid"], self.params["trials"]
        watch = self.watch[edge]
        if watch.state == "open":
            self.fail("open-blocks", f"a call crossed {edge} while it was open")
        if watch.window is not None:  # the first calls after the open timeout
            watch.window.append(cid)
            crossed = len(watch.window)
            if crossed > trials:
                self.fail("trial-limit", f"{crossed} calls crossed {edge} after its open timeout before the "
                                         f"trial outcome was known (limit {trials})")
            else:
                self.note("trial-limit", f"{edge}: {crossed} of {trials} trial calls crossed")

    @observe("outcome")
    def observe_outcome(self, outcome: dict) -> None:
        """A call on the edge ended (its answer, or its timeout), and the owner has handled it.  A trial's
        outcome must show in the state, and the breaker may leave half-open only because of this period's trials."""
        edge, cid, ok, trials = outcome["edge"], outcome["cid"], outcome["ok"], self.params["trials"]
        watch = self.watch[edge]
        is_trial = watch.window is not None and cid in watch.window[:trials]
        outcomes = watch.outcomes if watch.window is not None else {}
        if is_trial:
            outcomes[cid] = ok
        left, state, watch.left = watch.left, watch.state, None
        if left == "closed" and sum(outcomes.values()) < trials:
            self.fail("trial-outcome", f"{edge} closed after {sum(outcomes.values())} of {trials} trials "
                                       "of this half-open period succeeded (an answer from an earlier period?)")
        elif left == "open" and all(outcomes.values()):
            self.fail("trial-outcome", f"{edge} re-opened though no trial of this half-open period failed")
        if not is_trial:
            if left:
                watch.window = None
            return
        if not ok:
            watch.window = None
            if state != "open":
                self.fail("trial-outcome", f"a trial call through {edge} failed but it is {state}")
            else:
                self.note("trial-outcome", f"{edge}: trial failed -> open")
        elif sum(outcomes.values()) >= trials:
            watch.window = None
            if state != "closed":
                self.fail("trial-outcome", f"all {trials} trials through {edge} succeeded but it is {state}")
            else:
                self.note("trial-outcome", f"{edge}: {trials} trial(s) succeeded -> closed")

    @observe("breaker")
    def observe_state(self, event: dict) -> None:
        """The breaker announced a new state (judged with the outcome that caused it)."""
        watch, old, new = self.watch[event["id"]], event["src"], event["dst"]
        watch.state = new
        if old == "half-open":
            watch.left = new
        if old == "open":
            watch.window, watch.outcomes = [], {}  # the open timeout is over: trials may go

    @observe("owner-started")
    def owner_started(self, fact: dict) -> None:
        """The owner (re)started with an empty memory and its breaker closed: no trial is
        pending, and the breaker's move to closed (if it was not) was no trial outcome."""
        watch = self.watch[fact["edge"]]
        watch.window, watch.left = None, None

    def sample(self) -> None:
        """Every SAMPLE_EVERY ms: a point on A's chart, and the no-cascade check."""
        now = self.now
        if self.params["breakers"] == "on":
            refused = sum(b.short_circuited for b in self.breakers.values())
            self.note("open-blocks", f"{refused} calls answered by fallback without crossing")
        self.a_recent = [r for r in self.a_recent if r[0] > now - WINDOW]
        a = self.nodes["A"]
        busy = len(a.busy) if a.status != "down" else 0
        latency = sum(ms for _, ms in self.a_recent) / len(self.a_recent) if self.a_recent else 0.0
        for key, value in (("t", round(now)), ("a_threads", busy), ("a_latency", round(latency, 1))):
            self.chart[key].append(value)
            del self.chart[key][:-SAMPLES]
        # The outage has cascaded when the client has had only failures, slow ones among them (a fallback
        # after a timeout is one), for longer than a breaker needs to notice.
        if self.a_itself_faulted():  # not an outage behind A: the clock starts again once A is reachable and well
            self.last_good, self.first_slow = now, None
            self.note("no-cascade", "A itself is faulted or cut off from the client: not an outage behind A")
            return
        if self.first_slow is None:
            self.note("no-cascade", f"longest wait through slow failures: {self.worst_slow / 1000:.2f}s"
                      if self.worst_slow else "no slow failures")
            return
        lasted = now - self.last_good
        self.worst_slow = max(self.worst_slow, lasted)
        if lasted >= self.cascade_ms:
            self.fail("no-cascade", f"for {lasted / 1000:.1f}s the client got only failures, slow ones "
                                    f"(waiting out timeouts); A has {busy}/{a.threads} threads busy")
        else:
            self.note("no-cascade", f"only failures for {lasted / 1000:.2f}s so far")

    def a_itself_faulted(self) -> bool:
        """A is down, paused, slowed or failing, or cut off from the client."""
        a, net = self.nodes["A"], self.net
        if a.status != "up" or a.slow_ms or a.fail_percent:
            return True
        return any(not net.reachable(x, y) or (net.links.get((x, y)) and not net.links[(x, y)].clean())
                   for x, y in (("client", "A"), ("A", "client")))

    # -- what the page shows ----------------------------------------------------------
    def view(self) -> dict:
        return {"breakers": [b.view() for b in self.breakers.values()], "chart": self.chart_view(),
                "answers": {k: self.metrics[k] for k in ("requests", "ok", "fallback", "error", "timeout")},
                "fallbacks_by": {n: self.metrics.get(f"fallbacks by {n}", 0) for n in ("A", "B")},
                "edges": [["client", "A"], ["A", "B"], ["B", "C"]]}

    def chart_view(self) -> dict:
        """A's busy threads and latency over the last SAMPLES samples, and the latency the chart's top stands for."""
        n = len(self.chart["t"])
        return {**self.chart, "slots": SAMPLES,
                "latency_top": round(max([self.params["timeout"] + A_MARGIN, *self.chart["a_latency"]])),
                "threads_now": self.chart["a_threads"][-1] if n else 0,
                "latency_now": round(self.chart["a_latency"][-1]) if n else 0}

    # -- lab actions ----------------------------------------------------------------
    @action("request", Arg("count", "int", optional=True, default=1, lo=1, hi=50),
            help="Send a burst of extra requests from the client now.")
    def do_request(self, count: int) -> None:
        self.emit("burst", count=count)
        for _ in range(count):
            self.nodes["client"].request_one()

    @action("fail", Arg("node"), Arg("percent", "percent"), nodes=SERVICES, not_for=CLIENT_ONLY, when=not_down,
            refuse="{node} is down; restart it first",
            help="Make A, B or C answer this share of its calls with an error.")
    def do_fail(self, node_id: str, percent: int) -> None:
        self.nodes[node_id].fail_percent = percent
        self.emit("fail", node=node_id, percent=percent)

    @action("recover", Arg("node"), nodes=SERVICES, not_for=CLIENT_ONLY, when=any_state,
            help="Heal A, B or C: restart it if down, resume it, no errors, normal speed.")
    def do_recover(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.status == "down":
            node.restart()
        elif node.status == "paused":
            node.resume()
        node.fail_percent, node.slow_ms = 0, 0.0
        self.emit("recover", node=node_id)
