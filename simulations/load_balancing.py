"""Load balancing: one address in front of many replicas.

A client sends every request to one virtual address owned by the balancer
`lb`.  The balancer routes by path (/frontend -> the frontend pool, /api ->
the api pool) and, inside the pool, picks a replica with one of four rules:

  * round robin:        the next replica in the list, in turn;
  * weighted:           smooth weighted round robin (as in nginx): every pick
                        adds each replica's weight to its score, the highest
                        score wins and pays back the total weight, so a
                        weight-3 replica gets 3 of every 6 requests, spread out;
  * least connections:  the replica with the fewest requests in progress (ties
                        are broken in turn), so a slow replica, which holds its
                        requests longer, is picked less;
  * random:             any healthy replica, drawn at random.

Health checks: every `health_interval` ms the balancer PINGs each replica.
A replica that misses FALL probes in a row is taken out of rotation; one
that answers RISE probes in a row is put back.  Between a crash and its
detection the balancer still sends requests to the dead replica: those are
the errors of the detection window.  The health endpoint is cheap, so a slow
replica still passes its checks: only least connections notices slowness.

Sticky sessions: the balancer remembers which replica served a user and sends
that user there again while it is healthy (the rule above picks only for new
users, or when a user's replica has gone).

The balancer is a single point of failure.  With `standby` on, a second
balancer `lb2` listens to the active one's ADVERT every ADVERT_EVERY ms
(like VRRP/keepalived) and takes the virtual address over when it hears
nothing for ADVERT_DEAD ms.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial

from .kernel import Arg, Lab, Node, Param, SimError, action, fmt_ms, observe, on

POOL_OF_PATH = {"/frontend": "frontend", "/api": "api"}
PREFIX = {"frontend": "f", "api": "a"}
FALL = 2  # failed probes in a row before a replica is taken out
RISE = 2  # good probes in a row before it is put back
PROBE_TIMEOUT = 250  # ms a probe may take
UPSTREAM_TIMEOUT = 1000  # ms the balancer waits for a replica's answer
CLIENT_TIMEOUT = 1500  # ms the client waits for the balancer's answer
SERVICE_MS = (15.0, 35.0)  # a replica's normal work per request
ADVERT_EVERY = 200  # ms between the active balancer's adverts
ADVERT_DEAD = 700  # ms of silence before the standby takes over
SLOW_MIN = 100  # ms of extra latency that makes a replica "slow" for the checks
USERS = 8  # distinct users (sessions) the client plays
NOT_A_REPLICA = "'{node}' is not a replica (replicas: {listed})"


@dataclass
class Request:
    """A request sent and waited for (by the client, by the balancer)."""

    path: str
    sent: float
    to: str  # the balancer owning the virtual address when it was sent; the replica picked


class Client(Node):
    """Plays the users: sends requests to the virtual address at `rate` per second."""

    def boot(self) -> None:
        self.role = "client"
        self.rid = 0
        self.waiting: dict[int, Request] = {}
        self.schedule()

    def schedule(self) -> None:
        self.at_rate(self.lab.rate, self.send_request, key="next")

    def send_request(self) -> None:
        self.rid = rid = self.rid + 1
        path = "/frontend" if self.rng.random() < 0.4 else "/api"
        user = f"u{self.rng.randint(1, USERS)}"
        to = self.lab.vip  # whoever owns the virtual address right now
        self.waiting[rid] = Request(path, self.now, to)
        self.lab.count("requests")
        self.request(to, "REQ", awaiting=("reply", rid), timeout=CLIENT_TIMEOUT,
                     on_timeout=partial(self.timed_out, rid), rid=rid, path=path, user=user)
        self.schedule()

    def timed_out(self, rid: int) -> None:
        req = self.waiting.pop(rid)
        self.lab.witness("answer", rid=rid, path=req.path, replica=None, status="timeout", ms=self.now - req.sent,
                         why=f"no answer from {req.to} (the virtual address)", balancer=req.to)

    @on("RESP")
    def answer(self, msg) -> None:
        b = msg.body
        if self.answered(("reply", b["rid"])):  # (else too late: already counted as a timeout)
            req = self.waiting.pop(b["rid"])
            self.lab.witness("answer", rid=b["rid"], path=req.path, replica=b.get("replica"), status=b["status"],
                             ms=self.now - req.sent, why=b.get("why", ""))


class Replica(Node):
    """A stateless copy of a service: answers each request after a little work."""

    def boot(self) -> None:
        self.role = self.lab.pool_of(self.id)

    def receive(self, msg) -> None:
        # The health endpoint is cheap: slowness of the real work does not show in it.
        if msg.type == "PING" and self.status == "up":
            self.on_message(msg)
        else:
            super().receive(msg)

    @on("PING")
    def ping(self, msg) -> None:
        self.send(msg.src, "PONG", probe=msg.body["probe"])

    @on("REQ")
    def work(self, msg) -> None:
        rid = msg.body["rid"]
        self.after(self.rng.uniform(*SERVICE_MS), self.respond, msg.src, rid, key=("work", rid))

    def respond(self, to: str, rid: int) -> None:
        self.lab.witness("work-done", replica=self.id, rid=rid)
        self.send(to, "RESP", rid=rid, status=200, replica=self.id)

    def view(self) -> dict:
        stats = self.lab.stats[self.id]
        weight = f"w{self.lab.weights[self.id]} · " if self.lab.algorithm == "weighted" else ""
        latency = f" · {stats['latency']:.0f}ms" if stats["latency"] is not None else ""
        return {"label": f"{weight}{stats['picks']} req{latency}"}


@dataclass
class Backend:
    """What a balancer knows of one replica."""

    up: bool = True  # in rotation (optimistic until probes say otherwise)
    fails: int = 0  # failed probes in a row
    oks: int = 0  # good probes in a row
    conns: int = 0  # requests sent to it and not answered yet


class Balancer(Node):
    """Routes by path, picks a replica by the configured rule, health-checks replicas."""

    def boot(self) -> None:
        # Memory: lost on a crash.  The pools and weights are configuration (lab.pools, lab.weights).
        self.backends = {replica: Backend() for replica in self.lab.all_replicas()}  # healthy until probed
        self.turn: dict[str, int] = {"frontend": 0, "api": 0}
        self.score: dict[str, float] = {}  # smooth weighted round robin's running scores
        self.sessions: dict[str, str] = {}  # "user@pool" -> the replica that served that user
        self.forwarded: dict[int, Request] = {}  # request id -> the replica it went to
        self.probe_no = 0
        self.probes_void = 0  # probes up to this number went out before health checks were turned off
        if self.lab.vip == self.id:
            self.become_active()
        else:
            self.role = "standby"
            self.after(ADVERT_DEAD, self.become_active, key="advert-missed")

    def healthy(self, replica: str) -> bool:
        return replica in self.backends and self.backends[replica].up

    # -- the virtual address: adverts, and taking over ------------------------------
    def become_active(self) -> None:
        """Own the virtual address: at the start, or when the active balancer fell silent."""
        if self.lab.vip != self.id:  # taking the address over from the other balancer
            self.lab.vip = self.id
            self.lab.emit("failover", node=self.id, detail=f"{self.id} owns the virtual address now")
        self.role = "active"
        self.lab.witness("active", node=self.id)
        self.cancel("advert-missed")
        self.after(0, self.advertise, key="advert")
        self.after(0, self.probe_round, key="probe")

    def advertise(self) -> None:
        if self.role == "active":  # (a balancer that stepped back stops)
            for other in self.lab.balancers():
                if other != self.id:
                    self.send(other, "ADVERT")
            self.after(ADVERT_EVERY, self.advertise, key="advert")

    @on("ADVERT")
    def advert(self, msg) -> None:
        if self.role == "active":
            if self.lab.vip == self.id:
                return  # the address is mine: the sender has not heard yet
            self.role = "standby"  # someone else owns the address: step back
        self.after(ADVERT_DEAD, self.become_active, key="advert-missed")  # the active one is alive

    # -- health checks --------------------------------------------------------------
    def probe_round(self) -> None:
        """While active, every health_interval ms: PING each replica (each probe has its own timeout)."""
        if self.role != "active":
            return
        if self.lab.health_checks:
            for replica in self.lab.all_replicas():
                self.probe_no += 1
                key = ("probe", replica, self.probe_no)
                # One timeout per probe: a probe sent every 100 ms must not re-arm the 250 ms timeout of the last.
                self.request(replica, "PING", awaiting=key, timeout=PROBE_TIMEOUT,
                             on_timeout=partial(self.probe_result, key, False), probe=self.probe_no)
        # The next round is booked after this one's timeouts: due at the same moment, it comes after them.
        self.after(self.lab.params["health_interval"], self.probe_round, key="probe")

    @on("PONG")
    def pong(self, msg) -> None:
        key = ("probe", msg.src, msg.body["probe"])
        if self.answered(key):
            self.probe_result(key, True)

    def stop_probes(self) -> None:
        """Health checks turned off: the probes already out no longer count."""
        self.probes_void = self.probe_no

    def probe_result(self, key: tuple, ok: bool) -> None:
        """FALL failed probes in a row take a replica out of rotation, RISE good ones put it back."""
        _, replica, probe = key
        b = self.backends.get(replica)
        if b is None or probe <= self.probes_void:
            return  # removed meanwhile, or sent before health checks were turned off
        b.oks, b.fails = (b.oks + 1, 0) if ok else (0, b.fails + 1)
        if b.up != ok and (b.oks >= RISE if ok else b.fails >= FALL):
            b.up = ok
            self.lab.witness("rotation", node=self.id, replica=replica, up=ok)

    # -- requests -------------------------------------------------------------------
    @on("REQ")
    def route(self, msg) -> None:
        if self.role != "active":
            return
        rid, path, user = msg.body["rid"], msg.body["path"], msg.body["user"]
        pool = POOL_OF_PATH[path]
        replica = self.pick(pool, user)
        if replica is None:
            self.send("client", "RESP", rid=rid, status=503, why=f"no healthy replica in the {pool} pool")
            return
        self.lab.witness("pick", node=self.id, pool=pool, replica=replica, rid=rid)
        self.backends[replica].conns += 1
        self.forwarded[rid] = Request(path, self.now, replica)
        self.request(replica, "REQ", awaiting=("upstream", rid), timeout=UPSTREAM_TIMEOUT,
                     on_timeout=partial(self.upstream_timeout, rid), rid=rid, path=path, user=user)

    @on("RESP")
    def response(self, msg) -> None:
        rid = msg.body["rid"]
        if self.answered(("upstream", rid)):
            fwd = self.forwarded.pop(rid)
            self.release(fwd.to)
            self.lab.witness("latency", replica=fwd.to, ms=self.now - fwd.sent)
            self.send("client", "RESP", rid=rid, status=200, replica=fwd.to)

    def upstream_timeout(self, rid: int) -> None:
        replica = self.forwarded.pop(rid).to
        self.release(replica)
        self.lab.witness("work-done", replica=replica, rid=rid)  # given up on: no longer counted as open
        self.send("client", "RESP", rid=rid, status=504, replica=replica,
                  why=f"{replica} did not answer within {fmt_ms(UPSTREAM_TIMEOUT)}")

    def release(self, replica: str) -> None:
        """One request less in progress (a replica removed meanwhile is not counted any more)."""
        if (b := self.backends.get(replica)) is not None:
            b.conns = max(0, b.conns - 1)

    def pick(self, pool: str, user: str) -> str | None:
        members = self.lab.pools[pool]
        healthy = [r for r in members if self.healthy(r)]
        if not healthy:
            return None
        session = f"{user}@{pool}"
        if self.lab.params["sticky"] and self.sessions.get(session) in healthy:
            return self.sessions[session]  # sticky: the same replica as last time
        algorithm = self.lab.algorithm
        if algorithm == "round-robin":
            while True:  # the next member in turn that is in rotation (there is one)
                choice = members[self.turn[pool] % len(members)]
                self.turn[pool] += 1
                if choice in healthy:
                    break
        elif algorithm == "weighted":  # smooth weighted round robin
            for r in healthy:
                self.score[r] = self.score.get(r, 0) + self.lab.weights[r]
            choice = max(healthy, key=lambda r: self.score[r])
            self.score[choice] -= sum(self.lab.weights[r] for r in healthy)
        elif algorithm == "least-connections":
            start = self.turn[pool] % len(healthy)
            rotated = healthy[start:] + healthy[:start]  # ties go in turn
            choice = min(rotated, key=lambda r: self.backends[r].conns)
            self.turn[pool] += 1
        else:
            choice = self.rng.choice(healthy)
        if self.lab.params["sticky"]:
            self.sessions[session] = choice
        return choice

    def view(self) -> dict:
        if self.status == "down":
            return {"label": "down"}
        return {"label": f"{self.role} · {len(self.forwarded)} open" if self.role == "active" else self.role}


class LoadBalancing(Lab):
    slug = "load-balancing"
    title = "Load balancing"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    INVARIANTS = {
        "even-split": ("round-robin+sticky=off",),  # sticky sessions break an even split by design
        "crash-contained": ("health_checks=on",),
        "steers-away": ("least-connections+sticky=off",),  # sticky sessions send users back to a slow one
    }
    PARAMS = (
        Param("algorithm", "round-robin", "How the balancer picks a replica inside a pool.",
              choices=("round-robin", "least-connections", "random", "weighted")),
        Param("health_interval", 500, "Milliseconds between health probes of each replica.", lo=100, hi=5000),
        Param("health_checks", True, "Probe replicas and take failing ones out of rotation."),
        Param("sticky", False, "Sticky sessions: send a user back to the replica that served them."),
        Param("rate", 10, "Requests per second the client sends.", lo=0, hi=40),
        Param("standby", False, "A second balancer (lb2) that takes over the address when lb dies."),
    )
    UNFAULTABLE = ("client",)

    def setup(self) -> None:
        p = self.params
        self.algorithm = p["algorithm"]
        self.health_checks = p["health_checks"]
        self.health_on_since = 0.0  # when health checks were last turned on (the window starts there)
        self.rate = p["rate"]
        self.vip = "lb"  # the balancer owning the virtual address
        self.pools: dict[str, list[str]] = {"frontend": ["f1", "f2"], "api": ["a1", "a2", "a3"]}
        self.weights: dict[str, int] = {"f1": 2, "f2": 1, "a1": 3, "a2": 2, "a3": 1}
        self.stats: dict[str, dict] = {}  # replica -> what the page shows of it
        self.crashed_at: dict[str, float] = {}
        self.slow_since: dict[str, float] = {}
        self.slow_window: dict[str, Counter] = {}  # slow replica -> who got the requests while it was busy
        self.open_work: dict[str, set] = {}  # replica -> requests sent to it and not yet answered (observed)
        self.active_since: dict[str, float] = {}  # balancer -> when it last took the address
        self.paused: dict[str, list[list[float]]] = {}  # balancer -> [[paused at, resumed at or None], ...]
        self.split: dict[str, dict] = {}  # pool -> round robin's picks since the pool last changed
        self.reset_split()
        self.recent: list[dict] = []
        self.timeline: list[dict] = []
        self.metrics.update({"requests": 0, "ok": 0, "errors": 0, "errors_in_detection": 0, "errors_no_balancer": 0})
        self.add_node(Balancer(self, "lb"))
        if p["standby"]:
            self.add_node(Balancer(self, "lb2"))
        for replica in self.all_replicas():
            self.add_replica_node(replica)
        self.add_node(Client(self, "client"))
        self.add_check("even-split", "Round robin gives each healthy replica the same number of requests, "
                                     "within one (counted since the pool last changed; sticky sessions break it). "
                                     "Not claimed for the other rules, which are uneven by design.")
        self.add_check("crash-contained", "A crashed replica gets no traffic once the detection window "
                                          f"({FALL} missed probes) is over, so errors stay inside that window "
                                          "(the time the balancer spends paused does not count; turning health "
                                          "checks on starts a new window; with them off nothing takes it out, "
                                          "and this check shows it).")
        self.add_check("steers-away", f"While a slow replica (+{SLOW_MIN}ms or more) has more requests open than "
                                      "a healthy peer, new requests go to the peers: it gets less than half of an "
                                      "even share of them. Counted from the requests sent and answered, not from "
                                      "the balancer's counters; least connections claims it (without sticky "
                                      "sessions), the other rules do not steer.")
        if self.algorithm == "weighted":
            self.note("even-split", "not claimed: weighted follows the weights, not an even split")
        elif self.algorithm != "round-robin":
            self.note("even-split", f"not claimed: {self.algorithm} is uneven by design")
        self.every(500, self.audit)

    def invariants(self) -> list[str]:
        # Health checks turned off live: nothing takes a crashed replica out, by design (and the check
        # shows it), so crash-contained is claimed only while they are on.
        names = super().invariants()
        return names if self.health_checks else [n for n in names if n != "crash-contained"]

    # -- topology ------------------------------------------------------------------------
    def add_replica_node(self, replica: str) -> None:
        self.stats[replica] = {"picks": 0, "ok": 0, "errors": 0, "latency": None}
        self.add_node(Replica(self, replica))

    def pool_of(self, replica: str) -> str:
        return next((pool for pool, members in self.pools.items() if replica in members), "removed")

    def all_replicas(self) -> list[str]:
        return [r for members in self.pools.values() for r in members]

    def balancers(self) -> list[str]:
        return [n for n in self.nodes if n.startswith("lb")]

    def active(self) -> Balancer | None:
        node = self.nodes[self.vip]
        return node if node.up and node.role == "active" else None

    def detection_bound(self) -> float:
        return FALL * self.params["health_interval"] + PROBE_TIMEOUT + 50

    # -- what the lab watches --------------------------------------------------------------
    def reset_split(self, *pools: str) -> None:
        """Count round robin's picks afresh (in these pools, or in all)."""
        for pool in pools or self.pools:
            self.split[pool] = {"members": [], "counts": {}}

    def late_by(self, lb: str, replica: str) -> float:
        """How long the balancer has had to notice that `replica` crashed (its detection window so far,
        less the time the balancer was frozen: its timers did not run)."""
        start = max(self.crashed_at[replica], self.active_since[lb], self.health_on_since)
        frozen = sum(max(0.0, (self.now if b is None else b) - max(a, start)) for a, b in self.paused.get(lb, []))
        return self.now - start - frozen

    @observe("active")
    def took_address(self, fact: dict) -> None:
        """A balancer took the address: each one is judged only on the requests it sent itself."""
        self.active_since[fact["node"]] = self.now
        self.reset_split()
        self.open_work, self.slow_window = {}, {}

    @observe("work-done")
    def work_done(self, fact: dict) -> None:
        self.open_work.get(fact["replica"], set()).discard(fact["rid"])

    @observe("latency")
    def round_trip(self, fact: dict) -> None:
        stats, ms = self.stats[fact["replica"]], fact["ms"]
        stats["latency"] = ms if stats["latency"] is None else 0.7 * stats["latency"] + 0.3 * ms

    @observe("pick")
    def picked(self, fact: dict) -> None:
        lb, pool, replica = self.nodes[fact["node"]], fact["pool"], fact["replica"]
        self.stats[replica]["picks"] += 1
        # Slow replicas with more requests open than some peer in rotation (as observed).
        peers = [len(self.open_work.get(r, ())) for r in self.pools[pool]
                 if r not in self.slow_since and r not in self.crashed_at and lb.healthy(r)]
        least = min(peers, default=float("inf"))
        busy_slow = [r for r in self.pools[pool] if r in self.slow_since and len(self.open_work.get(r, ())) > least]
        self.open_work.setdefault(replica, set()).add(fact["rid"])
        if replica in self.crashed_at and (late := self.late_by(lb.id, replica)) > self.detection_bound():
            self.fail("crash-contained", f"{replica} crashed at {fmt_ms(self.crashed_at[replica])} and still got "
                                         f"a request {fmt_ms(late)} later: nobody took it out of rotation")
        for slow in busy_slow:  # a slow replica of this pool is busy: count who gets the new requests
            self.slow_window.setdefault(slow, Counter())[replica] += 1
            self.judge_steering(pool, slow)
        if self.algorithm != "round-robin":
            return  # even-split is not claimed
        healthy = [r for r in self.pools[pool] if lb.healthy(r)]
        split = self.split[pool]
        if split["members"] != healthy or split.get("lb", lb.id) != lb.id:
            # Count afresh.  Each balancer's round robin is judged on its own picks (a resumed old
            # balancer may still pick a few before it hears that another one took over).
            split = self.split[pool] = {"members": healthy, "counts": {}}
        split["lb"] = lb.id
        split["counts"][replica] = split["counts"].get(replica, 0) + 1
        self.judge_split(pool)

    def judge_split(self, pool: str) -> None:
        split = self.split[pool]
        members, counts = split["members"], split["counts"]
        total = sum(counts.values())
        even = total / len(members)
        who = max(members, key=lambda r: abs(counts.get(r, 0) - even))
        worst = abs(counts.get(who, 0) - even)
        split["deviation"] = round(worst, 2)
        if worst > 1 + 1e-9:
            self.fail("even-split", f"{pool}: {who} got {counts.get(who, 0)} of {total} picks, "
                                    f"{worst:.1f} away from its share ({self.algorithm}"
                                    + (", sticky sessions)" if self.params["sticky"] else ")"))
        else:
            self.note("even-split", f"{pool}: {total} picks, at most {worst:.1f} from an even share")

    def judge_steering(self, pool: str, replica: str) -> None:
        """steers-away: of the requests sent while a slow replica had more requests
        open than some healthy peer, the slow one must get less than half of an
        even share (judged once there are enough)."""
        counts = self.slow_window[replica]
        lb = self.active()
        members = [r for r in self.pools[pool] if r not in self.crashed_at and lb is not None and lb.healthy(r)]
        total = sum(counts.values())
        if len(members) < 2 or total < 6 * len(members):
            return
        mine, even = counts.get(replica, 0), total / len(members)
        if mine >= even / 2:
            self.fail("steers-away", f"{replica} is slow (+{fmt_ms(self.nodes[replica].slow_ms)}), yet got "
                                     f"{mine} of the {total} requests sent while it was busier than a peer (an "
                                     f"even share is {even:.1f}): {self.algorithm} does not steer away"
                                     + (" (sticky sessions send users back to it)" if self.params["sticky"] else ""))

    @observe("rotation")
    def rotation(self, fact: dict) -> None:
        """A balancer took a replica out of rotation (how long after its crash?) or put it back."""
        replica = fact["replica"]
        if fact["up"] or replica not in self.crashed_at:
            self.emit("health", **fact)
            return
        after = round(self.late_by(fact["node"], replica), 3)
        self.note("crash-contained", f"{replica} taken out {fmt_ms(after)} after its crash "
                                     f"({self.metrics['errors_in_detection']} errors in the detection window so far)")
        self.emit("health", **fact, after_ms=after)

    @observe("answer")
    def finish(self, fact: dict) -> None:
        """The client got its answer (or gave up waiting)."""
        replica, status = fact["replica"], fact["status"]
        ok = status == 200
        self.count("ok" if ok else "errors")
        if replica in self.stats:
            self.stats[replica]["ok" if ok else "errors"] += 1
        if not ok:
            if replica in self.crashed_at:
                self.count("errors_in_detection")
            if fact.get("balancer") and self.nodes[fact["balancer"]].status != "up":
                self.count("errors_no_balancer")  # the single point of failure at work
            self.emit("error", rid=fact["rid"], path=fact["path"], replica=replica, status=status, why=fact["why"])
        self.recent.append({"rid": fact["rid"], "path": fact["path"], "replica": replica, "status": status,
                            "ms": round(fact["ms"], 1)})
        del self.recent[:-10]
        second = int(self.now // 1000)
        if not self.timeline or self.timeline[-1]["s"] != second:
            self.timeline.append({"s": second, "ok": 0, "err": 0})
            del self.timeline[:-20]
        self.timeline[-1]["ok" if ok else "err"] += 1

    def audit(self) -> None:
        """steers-away's running figures: what each slow replica got while it was busy."""
        lb = self.active()
        for replica in self.slow_since if lb else ():
            counts = self.slow_window.get(replica, Counter())
            peers = [r for r in self.pools[self.pool_of(replica)]
                     if r != replica and lb.healthy(r) and r not in self.slow_since]
            if not peers:
                continue
            total, mine = sum(counts.values()), counts[replica]
            peer_mean = sum(counts[r] for r in peers) / len(peers)
            self.note("steers-away", f"{replica} (+{fmt_ms(self.nodes[replica].slow_ms)}) got {mine} of the {total} "
                                     f"requests sent while it was busier than a peer; healthy peers got "
                                     f"{peer_mean:.1f} each")

    def after_fault(self, fault: str, node_id: str | None) -> None:
        if node_id in self.balancers():
            spans = self.paused.setdefault(node_id, [])
            if fault == "pause":
                spans.append([self.now, None])
            elif fault in ("resume", "crash") and spans and spans[-1][1] is None:
                spans[-1][1] = self.now
            if fault == "crash" and node_id == self.vip:
                self.emit("outage", node=node_id, detail="the balancer owning the virtual address is down")
        elif node_id in self.stats:
            if fault == "crash":
                self.crashed_at[node_id] = self.now
                self.open_work.pop(node_id, None)  # its work in progress is gone
            elif fault == "restart":
                self.crashed_at.pop(node_id, None)
            elif fault == "slow":
                self.slow_window.pop(node_id, None)  # count afresh from this moment
                if self.nodes[node_id].slow_ms >= SLOW_MIN:
                    self.slow_since[node_id] = self.now
                else:
                    self.slow_since.pop(node_id, None)

    # -- lab actions ---------------------------------------------------------------
    @action("traffic", Arg("rate", "int", lo=0, hi=40), group="request",
            help="Set the client's request rate (requests per second, 0 stops).")
    def do_traffic(self, rate: int) -> None:
        self.rate = rate
        self.emit("traffic", rate=rate)
        self.nodes["client"].schedule()

    @action("add", Arg("pool", "word", choices=("frontend", "api")), Arg("weight", "int", optional=True,
            default=1, lo=1, hi=5), help="Add a replica to a pool (weight used by the weighted rule).")
    def do_add(self, pool: str, weight: int) -> None:
        if len(self.pools[pool]) >= 5:
            raise SimError(f"the {pool} pool already has 5 replicas; remove one first")
        n = 1
        while (replica := f"{PREFIX[pool]}{n}") in self.nodes:
            n += 1
        self.pools[pool].append(replica)
        self.weights[replica] = weight
        self.add_replica_node(replica)
        for b in self.balancers():  # (a crashed one learns of it when it boots)
            self.nodes[b].backends.setdefault(replica, Backend())
        self.reset_split(pool)
        self.emit("add", node=replica, pool=pool, weight=weight)

    @action("remove", Arg("replica"), nodes=lambda lab: lab.all_replicas(), not_for=NOT_A_REPLICA,
            help="Take a replica out of its pool for good (it stops getting traffic).")
    def do_remove(self, replica: str) -> None:
        pool = self.pool_of(replica)
        if len(self.pools[pool]) <= 1:
            raise SimError(f"{replica} is the last replica of the {pool} pool; add one first")
        self.pools[pool].remove(replica)
        self.crashed_at.pop(replica, None)
        self.slow_since.pop(replica, None)
        del self.nodes[replica]
        for b in self.balancers():
            self.nodes[b].backends.pop(replica, None)  # a later replica of that name starts afresh
        self.reset_split(pool)  # the turn order shifts: count afresh
        self.emit("remove", node=replica, pool=pool)

    @action("weight", Arg("replica"), Arg("weight", "int", lo=1, hi=5), nodes=lambda lab: lab.all_replicas(),
            not_for=NOT_A_REPLICA, help="Change a replica's weight (used by the weighted rule).")
    def do_weight(self, replica: str, weight: int) -> None:
        self.weights[replica] = weight
        self.reset_split(self.pool_of(replica))
        self.emit("weight", node=replica, weight=weight)

    @action("health", Arg("state", "word", choices=("on", "off")), help="Turn the balancer's health checks on or off.")
    def do_health(self, state: str) -> None:
        if state == "on" and not self.health_checks:
            self.health_on_since = self.now  # a replica that died meanwhile gets a fresh detection window
        self.health_checks = state == "on"
        if not self.health_checks:
            for b in self.balancers():
                self.nodes[b].stop_probes()
        self.emit("health-checks", on=self.health_checks)

    # -- the snapshot -------------------------------------------------------------------
    def view(self) -> dict:
        lb = self.active()
        edges = [["client", "lb"]] + ([["client", "lb2"], ["lb", "lb2"]] if "lb2" in self.nodes else [])
        replicas = []
        top = max([1] + [self.stats[r]["picks"] for r in self.all_replicas()])
        for pool, members in self.pools.items():
            for r in members:
                edges += [[b, r] for b in self.balancers()]
                node, stats = self.nodes[r], self.stats[r]
                replicas.append({"id": r, "pool": pool, "weight": self.weights[r], "status": node.status,
                                 "health": ("up" if lb.healthy(r) else "down") if lb else "unknown",
                                 "conns": lb.backends[r].conns if lb else 0, "slow": node.slow_ms, **stats,
                                 "latency": None if stats["latency"] is None else round(stats["latency"], 1),
                                 "bar": round(100 * stats["picks"] / top)})
        worst_t = max([1] + [b["ok"] + b["err"] for b in self.timeline])
        return {
            "edges": edges,
            "balancer": {"vip": self.vip, "active": lb.id if lb else None, "algorithm": self.algorithm,
                         "health_checks": self.health_checks, "sticky": self.params["sticky"],
                         "rate": self.rate, "sessions": dict(lb.sessions) if lb else {},
                         "detection_ms": self.detection_bound()},
            "pools": {pool: list(m) for pool, m in self.pools.items()},
            "replicas": replicas,
            "split": {pool: {"counts": dict(s["counts"]), "deviation": s.get("deviation", 0)}
                      for pool, s in self.split.items()},
            "recent": list(self.recent),
            "timeline": [{**b, "h_ok": round(40 * b["ok"] / worst_t), "h_err": round(40 * b["err"] / worst_t)}
                         for b in self.timeline],
        }
