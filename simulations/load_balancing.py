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

from .kernel import Arg, Lab, Node, Param, SimError, action, fmt_ms

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


class Client(Node):
    """Plays the users: sends requests to the virtual address at `rate` per second."""

    def boot(self) -> None:
        self.role = "client"
        self.pending: dict[int, dict] = {}
        self.schedule()

    def schedule(self) -> None:
        rate = self.lab.rate
        if rate > 0:
            gap = 1000 / rate
            self.set_timer("next", gap * (0.5 + self.lab.sim.rng.random()))
        else:
            self.cancel_timer("next")

    def on_timer(self, name: str, data: dict) -> None:
        if name == "next":
            self.send_request()
            self.schedule()
        elif name.startswith("timeout:"):
            rid = data["rid"]
            req = self.pending.pop(rid, None)
            if req:
                self.lab.finish(rid, req["path"], None, "timeout", self.now - req["sent"],
                                why=f"no answer from {req['to']} (the virtual address)", balancer=req["to"])

    def send_request(self) -> None:
        rng = self.lab.sim.rng
        self.lab.next_rid += 1
        rid = self.lab.next_rid
        path = "/frontend" if rng.random() < 0.4 else "/api"
        user = f"u{rng.randint(1, USERS)}"
        to = self.lab.vip  # whoever owns the virtual address right now
        self.pending[rid] = {"path": path, "sent": self.now, "to": to}
        self.lab.count("requests")
        self.send(to, "REQ", rid=rid, path=path, user=user)
        self.set_timer(f"timeout:{rid}", CLIENT_TIMEOUT, rid=rid)

    def on_message(self, msg) -> None:
        if msg.type == "RESP":
            req = self.pending.pop(msg.body["rid"], None)
            if req is None:
                return  # too late: already counted as a timeout
            self.cancel_timer(f"timeout:{msg.body['rid']}")
            self.lab.finish(msg.body["rid"], req["path"], msg.body.get("replica"), msg.body["status"],
                            self.now - req["sent"], why=msg.body.get("why", ""))


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

    def on_message(self, msg) -> None:
        if msg.type == "PING":
            self.send(msg.src, "PONG", probe=msg.body["probe"])
        elif msg.type == "REQ":
            lo, hi = SERVICE_MS
            work = lo + (hi - lo) * self.lab.sim.rng.random()
            self.set_timer(f"work:{msg.body['rid']}", work, rid=msg.body["rid"], to=msg.src)

    def on_timer(self, name: str, data: dict) -> None:
        if name.startswith("work:"):
            self.lab.work_done(self.id, data["rid"])
            self.send(data["to"], "RESP", rid=data["rid"], status=200, replica=self.id)

    def view(self) -> dict:
        stats = self.lab.stats.get(self.id, {})
        lat = stats.get("latency")
        return {"pool": self.lab.pool_of(self.id), "weight": self.lab.weights.get(self.id, 1),
                "label": (f"w{self.lab.weights.get(self.id, 1)} · " if self.lab.algorithm == "weighted" else "")
                         + f"{stats.get('picks', 0)} req" + (f" · {lat:.0f}ms" if lat is not None else "")}


class Balancer(Node):
    """Routes by path, picks a replica by the configured rule, health-checks replicas."""

    def boot(self) -> None:
        # Memory: lost on a crash.  The pools and weights are configuration (lab.pools).
        self.health: dict[str, dict] = {}
        self.conns: dict[str, int] = {}
        self.turn: dict[str, int] = {"frontend": 0, "api": 0}
        self.score: dict[str, float] = {}
        self.sessions: dict[str, str] = {}
        self.inflight: dict[int, dict] = {}
        self.probe_no = 0
        self.probes: dict[str, set[int]] = {}  # replica -> probes sent and not yet answered or timed out
        self.active_since = self.now
        for replica in self.lab.all_replicas():
            self.know(replica)
        if self.lab.vip == self.id:
            self.become_active(quiet=True)
        else:
            self.role = "standby"
            self.set_timer("advert-missed", ADVERT_DEAD)

    def know(self, replica: str) -> None:
        """Start tracking a replica: optimistic (healthy) until probes say otherwise."""
        self.health.setdefault(replica, {"up": True, "fails": 0, "oks": 0})
        self.conns.setdefault(replica, 0)

    def release(self, replica: str) -> None:
        """One request less in progress (a replica removed meanwhile is not counted any more)."""
        if replica in self.conns:
            self.conns[replica] = max(0, self.conns[replica] - 1)

    def healthy(self, replica: str) -> bool:
        return self.health.get(replica, {}).get("up", False)

    def become_active(self, quiet: bool = False) -> None:
        self.role = "active"
        self.active_since = self.now
        self.lab.vip = self.id
        if not quiet:
            self.lab.emit("failover", node=self.id, detail=f"{self.id} owns the virtual address now")
        self.lab.reset_split("balancer changed")
        self.lab.forget_open_work()
        self.cancel_timer("advert-missed")
        self.set_timer("advert", 0)
        self.set_timer("probe", 0)

    # -- timers: adverts, health probes, upstream timeouts ---------------------
    def on_timer(self, name: str, data: dict) -> None:
        if name == "advert" and self.role == "active":
            for other in self.lab.balancers():
                if other != self.id:
                    self.send(other, "ADVERT")
            self.set_timer("advert", ADVERT_EVERY)
        elif name == "advert-missed" and self.role == "standby":
            self.become_active()
        elif name == "probe" and self.role == "active":
            if self.lab.health_checks:
                self.probe_all()
            self.set_timer("probe", self.lab.params["health_interval"])
        elif name.startswith("probe-timeout:"):
            self.probes.get(data["replica"], set()).discard(data["probe"])
            self.probe_result(data["replica"], False)
        elif name.startswith("upstream:"):
            req = self.inflight.pop(data["rid"], None)
            if req:
                self.release(req["replica"])
                self.lab.work_done(req["replica"], data["rid"])  # given up on: no longer counted as open
                self.send("client", "RESP", rid=data["rid"], status=504, replica=req["replica"],
                          why=f"{req['replica']} did not answer within {fmt_ms(UPSTREAM_TIMEOUT)}")

    def probe_all(self) -> None:
        for replica in self.lab.all_replicas():
            self.probe_no += 1
            self.probes.setdefault(replica, set()).add(self.probe_no)
            self.send(replica, "PING", probe=self.probe_no)
            # One timer per probe: a probe sent every 100 ms must not re-arm the 250 ms timeout of the last.
            self.set_timer(f"probe-timeout:{replica}:{self.probe_no}", PROBE_TIMEOUT, replica=replica,
                           probe=self.probe_no)

    def probe_result(self, replica: str, ok: bool) -> None:
        h = self.health.get(replica)
        if h is None:
            return  # removed meanwhile
        if ok:
            h["fails"], h["oks"] = 0, h["oks"] + 1
            if not h["up"] and h["oks"] >= RISE:
                h["up"] = True
                self.lab.health_changed(self, replica, True)
        else:
            h["oks"], h["fails"] = 0, h["fails"] + 1
            if h["up"] and h["fails"] >= FALL:
                h["up"] = False
                self.lab.health_changed(self, replica, False)

    # -- messages ------------------------------------------------------------------
    def on_message(self, msg) -> None:
        body = msg.body
        if msg.type == "ADVERT":
            if self.role == "standby":
                self.set_timer("advert-missed", ADVERT_DEAD)
            elif self.lab.vip != self.id:
                self.role = "standby"  # someone else owns the address: step back
                self.set_timer("advert-missed", ADVERT_DEAD)
        elif msg.type == "PONG":
            if body["probe"] in self.probes.get(msg.src, ()):
                self.probes[msg.src].discard(body["probe"])
                self.cancel_timer(f"probe-timeout:{msg.src}:{body['probe']}")
                self.probe_result(msg.src, True)
        elif msg.type == "REQ" and self.role == "active":
            self.route(body["rid"], body["path"], body["user"])
        elif msg.type == "RESP":
            req = self.inflight.pop(body["rid"], None)
            if req:
                self.cancel_timer(f"upstream:{body['rid']}")
                self.release(req["replica"])
                self.lab.observe_latency(req["replica"], self.now - req["sent"])
                self.send("client", "RESP", rid=body["rid"], status=200, replica=req["replica"])

    def route(self, rid: int, path: str, user: str) -> None:
        pool = POOL_OF_PATH[path]
        replica, balanced = self.pick(pool, user)
        if replica is None:
            self.send("client", "RESP", rid=rid, status=503, why=f"no healthy replica in the {pool} pool")
            return
        self.lab.record_pick(self, pool, replica, balanced, rid)
        self.conns[replica] += 1
        self.inflight[rid] = {"replica": replica, "sent": self.now}
        self.send(replica, "REQ", rid=rid, path=path, user=user)
        self.set_timer(f"upstream:{rid}", UPSTREAM_TIMEOUT, rid=rid)

    def pick(self, pool: str, user: str) -> tuple[str | None, bool]:
        members = self.lab.pools[pool]
        healthy = [r for r in members if self.healthy(r)]
        if not healthy:
            return None, False
        session = f"{user}@{pool}"
        if self.lab.params["sticky"] and self.sessions.get(session) in healthy:
            return self.sessions[session], False  # sticky: the same replica as last time
        algorithm = self.lab.algorithm
        if algorithm == "round-robin":
            choice = self.next_in_turn(pool, members)
        elif algorithm == "weighted":
            # Smooth weighted round robin.
            total = 0
            for r in healthy:
                self.score[r] = self.score.get(r, 0) + self.lab.weights[r]
                total += self.lab.weights[r]
            choice = max(healthy, key=lambda r: self.score[r])
            self.score[choice] -= total
        elif algorithm == "least-connections":
            start = self.turn[pool] % len(healthy)
            rotated = healthy[start:] + healthy[:start]  # ties go in turn
            choice = min(rotated, key=lambda r: self.conns[r])
            self.turn[pool] += 1
        else:
            choice = self.lab.sim.rng.choice(healthy)
        if self.lab.params["sticky"]:
            self.sessions[session] = choice
        return choice, True

    def next_in_turn(self, pool: str, members: list[str]) -> str:
        for _ in range(len(members)):
            candidate = members[self.turn[pool] % len(members)]
            self.turn[pool] += 1
            if self.healthy(candidate):
                return candidate
        return members[0]  # unreachable: pick() checked that one is healthy

    def view(self) -> dict:
        if self.status == "down":
            return {"label": "down"}
        return {"label": f"{self.role} · {len(self.inflight)} open" if self.role == "active" else self.role}


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
    FAULTS = ("crash", "restart", "pause", "resume", "slow", "delay", "loss", "partition", "cut", "heal",
              "drop-next", "duplicate-next")
    UNFAULTABLE = ("client",)

    def setup(self) -> None:
        p = self.params
        self.algorithm = p["algorithm"]
        self.health_checks = p["health_checks"]
        self.health_on_since = 0.0  # when health checks were last turned on (the window starts there)
        self.rate = p["rate"]
        self.next_rid = 0
        self.vip = "lb"
        self.pools: dict[str, list[str]] = {"frontend": ["f1", "f2"], "api": ["a1", "a2", "a3"]}
        self.weights: dict[str, int] = {"f1": 2, "f2": 1, "a1": 3, "a2": 2, "a3": 1}
        self.stats: dict[str, dict] = {}
        self.crashed_at: dict[str, float] = {}
        self.slow_since: dict[str, float] = {}
        self.slow_window: dict[str, dict[str, int]] = {}
        self.slow_share: dict[str, dict] = {}
        self.open_work: dict[str, set] = {}  # replica -> requests sent to it and not yet answered (observed)
        self.paused: dict[str, list[list[float]]] = {}  # balancer -> [[paused at, resumed at or None], ...]
        self.split: dict[str, dict] = {}
        self.recent: list[dict] = []
        self.timeline: list[dict] = []
        self.metrics.update({"requests": 0, "ok": 0, "errors": 0, "errors_in_detection": 0,
                             "errors_no_balancer": 0})
        self.add_node(Balancer(self, "lb"))
        if p["standby"]:
            self.add_node(Balancer(self, "lb2"))
        for pool in self.pools:
            for replica in self.pools[pool]:
                self.add_replica_node(replica)
        self.add_node(Client(self, "client"))
        for pool in self.pools:
            self.reset_split("start", pool)
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
                                      "even share of them. Counted from "
                                      "the requests sent and answered, not from the balancer's counters; least "
                                      "connections claims it (without sticky sessions), the other rules do not "
                                      "steer.")
        if self.algorithm != "round-robin":
            self.checks["even-split"].detail = (f"not claimed: {self.algorithm} is uneven by design" if
                                                self.algorithm != "weighted" else
                                                "not claimed: weighted follows the weights, not an even split")
        self.sim.after(500, self.audit)

    def invariants(self) -> list[str]:
        # Health checks turned off live: nothing takes a crashed replica out, by design (and the check
        # shows it), so crash-contained is claimed only while they are on.
        names = super().invariants()
        return names if self.health_checks else [n for n in names if n != "crash-contained"]

    # -- topology helpers ------------------------------------------------------------
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
        node = self.nodes.get(self.vip)
        return node if node is not None and node.status == "up" and node.role == "active" else None

    def detection_bound(self) -> float:
        return FALL * self.params["health_interval"] + PROBE_TIMEOUT + 50

    # -- measurements -----------------------------------------------------------------
    def reset_split(self, why: str, pool: str | None = None) -> None:
        for name in [pool] if pool else list(self.pools):
            self.split[name] = {"since": round(self.now, 3), "why": why,
                                "counts": {}, "members": []}

    def paused_between(self, lb: str, start: float) -> float:
        """How long the balancer was frozen since `start` (its timers did not run)."""
        total = 0.0
        for a, b in self.paused.get(lb, []):
            b = self.now if b is None else b
            total += max(0.0, b - max(a, start))
        return total

    def forget_open_work(self) -> None:
        """A balancer took over: steers-away judges it only on the requests it sent itself."""
        self.open_work, self.slow_window = {}, {}

    def work_done(self, replica: str, rid: int) -> None:
        self.open_work.get(replica, set()).discard(rid)

    def record_pick(self, lb: Balancer, pool: str, replica: str, balanced: bool, rid: int) -> None:
        self.stats[replica]["picks"] += 1
        # Slow replicas with more requests open than some peer in rotation (as observed).
        peers = [len(self.open_work.get(r, ())) for r in self.pools[pool]
                 if r not in self.slow_since and r not in self.crashed_at and lb.healthy(r)]
        least = min(peers, default=None)
        busy_slow = [r for r in self.pools[pool] if r in self.slow_since and least is not None
                     and len(self.open_work.get(r, ())) > least]
        self.open_work.setdefault(replica, set()).add(rid)
        down_since = self.crashed_at.get(replica)
        if down_since is not None:
            start = max(down_since, lb.active_since, self.health_on_since)
            late = self.now - start - self.paused_between(lb.id, start)
            if late > self.detection_bound():
                self.fail("crash-contained", f"{replica} crashed at {fmt_ms(down_since)} and still got a request "
                                             f"{fmt_ms(late)} later: nobody took it out of rotation")
        for slow in busy_slow:
            # A slow replica of this pool is busy: count who gets the new requests.
            window = self.slow_window.setdefault(slow, {})
            window[replica] = window.get(replica, 0) + 1
            self.judge_steering(pool, slow)
        if self.algorithm != "round-robin":
            return  # even-split is not claimed
        healthy = [r for r in self.pools[pool] if lb.healthy(r)]
        split = self.split[pool]
        if split["members"] != healthy or split.get("lb", lb.id) != lb.id:
            # Each balancer's round robin is judged on its own picks (a resumed old balancer may
            # still pick a few before it hears that another one took over).
            self.reset_split("healthy replicas changed" if split["members"] != healthy else "another balancer picks",
                             pool)
            split = self.split[pool]
            split["members"] = healthy
        split["lb"] = lb.id
        split["counts"][replica] = split["counts"].get(replica, 0) + 1
        self.judge_split(pool)

    def judge_split(self, pool: str) -> None:
        split = self.split[pool]
        members, counts = split["members"], split["counts"]
        total = sum(counts.values())
        weighted = self.algorithm == "weighted"
        weight_sum = sum(self.weights[r] if weighted else 1 for r in members)
        worst, who = 0.0, None
        for r in members:
            share = (self.weights[r] if weighted else 1) / weight_sum
            off = abs(counts.get(r, 0) - total * share)
            if off > worst:
                worst, who = off, r
        split["deviation"] = round(worst, 2)
        if worst > 1 + 1e-9:
            self.fail("even-split", f"{pool}: {who} got {counts.get(who, 0)} of {total} picks, "
                                    f"{worst:.1f} away from its share ({self.algorithm}"
                                    + (", sticky sessions)" if self.params["sticky"] else ")"))
        elif self.checks["even-split"].ok:
            self.checks["even-split"].detail = f"{pool}: {total} picks, at most {worst:.1f} from an even share"

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
                                     f"{mine} of the {total} requests sent while it was busier than a peer (an even share "
                                     f"is {even:.1f}): {self.algorithm} does not steer away"
                                     + (" (sticky sessions send users back to it)" if self.params["sticky"] else ""))

    def observe_latency(self, replica: str, ms: float) -> None:
        stats = self.stats.get(replica)
        if stats is not None:
            old = stats["latency"]
            stats["latency"] = ms if old is None else 0.7 * old + 0.3 * ms

    def finish(self, rid: int, path: str, replica: str | None, status, ms: float, why: str = "",
               balancer: str | None = None) -> None:
        ok = status == 200
        self.count("ok" if ok else "errors")
        if replica in self.stats:
            self.stats[replica]["ok" if ok else "errors"] += 1
        if not ok:
            if replica in self.crashed_at:
                self.count("errors_in_detection")
            if balancer is not None and getattr(self.nodes.get(balancer), "status", "down") != "up":
                self.count("errors_no_balancer")  # the single point of failure at work
            self.emit("error", rid=rid, path=path, replica=replica, status=status, why=why)
        self.recent.append({"rid": rid, "path": path, "replica": replica, "status": status, "ms": round(ms, 1)})
        del self.recent[:-10]
        second = int(self.now // 1000)
        if not self.timeline or self.timeline[-1]["s"] != second:
            self.timeline.append({"s": second, "ok": 0, "err": 0})
            del self.timeline[:-20]
        self.timeline[-1]["ok" if ok else "err"] += 1

    def health_changed(self, lb: Balancer, replica: str, up: bool) -> None:
        fields = {"node": lb.id, "replica": replica, "up": up}
        if not up and replica in self.crashed_at:
            start = max(self.crashed_at[replica], lb.active_since, self.health_on_since)
            fields["after_ms"] = round(self.now - start - self.paused_between(lb.id, start), 3)
            if self.checks["crash-contained"].ok:
                self.checks["crash-contained"].detail = (
                    f"{replica} taken out {fmt_ms(fields['after_ms'])} after its crash "
                    f"({self.metrics['errors_in_detection']} errors in the detection window so far)")
        self.emit("health", **fields)

    # -- the audit: the slow-replica check -----------------------------------------------
    def audit(self) -> None:
        self.sim.after(500, self.audit)
        lb = self.active()
        for replica in list(self.slow_since):
            pool = self.pool_of(replica)
            if pool == "removed" or lb is None:
                continue
            counts = self.slow_window.get(replica, {})
            peers = [r for r in self.pools[pool] if r != replica and lb.healthy(r) and r not in self.slow_since]
            if not peers:
                continue
            total = sum(counts.values())
            mine = counts.get(replica, 0)
            peer_mean = sum(counts.get(r, 0) for r in peers) / len(peers)
            self.slow_share[replica] = {"mine": mine, "total": total, "peer_mean": round(peer_mean, 1)}
            if self.checks["steers-away"].ok:
                self.checks["steers-away"].detail = (
                    f"{replica} (+{fmt_ms(self.nodes[replica].slow_ms)}) got {mine} of the {total} requests sent "
                    f"while it was busier than a peer; healthy peers got {peer_mean:.1f} each")

    # -- reacting to faults ------------------------------------------------------------
    def after_fault(self, fault: str, node_id: str | None) -> None:
        if node_id in self.balancers() and fault in ("pause", "crash", "resume", "restart"):
            spans = self.paused.setdefault(node_id, [])
            if fault == "pause":
                spans.append([self.now, None])
            elif spans and spans[-1][1] is None:
                spans[-1][1] = self.now
        if node_id in self.stats:
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
                    self.slow_share.pop(node_id, None)
        elif node_id in self.balancers() and fault == "crash" and node_id == self.vip:
            self.emit("outage", node=node_id, detail="the balancer owning the virtual address is down")

    # -- lab actions ---------------------------------------------------------------
    @action("traffic", Arg("rate", "int", lo=0, hi=40), group="request",
            help="Set the client's request rate (requests per second, 0 stops).")
    def do_traffic(self, rate: int) -> None:
        self.rate = rate
        self.emit("traffic", rate=rate)
        client = self.nodes["client"]
        client.schedule()

    @action("add", Arg("pool", "word", choices=("frontend", "api")), Arg("weight", "int", optional=True,
            default=1, lo=1, hi=5), help="Add a replica to a pool (weight used by the weighted rule).")
    def do_add(self, pool: str, weight: int) -> None:
        if len(self.pools[pool]) >= 5:
            raise SimError(f"the {pool} pool already has 5 replicas; remove one first")
        n = 1
        while f"{PREFIX[pool]}{n}" in self.nodes:
            n += 1
        replica = f"{PREFIX[pool]}{n}"
        self.pools[pool].append(replica)
        self.weights[replica] = weight
        self.add_replica_node(replica)
        for b in self.balancers():
            if self.nodes[b].status != "down":
                self.nodes[b].know(replica)
        self.reset_split("replica added", pool)
        self.emit("add", node=replica, pool=pool, weight=weight)

    @action("remove", Arg("replica"), help="Take a replica out of its pool for good (it stops getting traffic).")
    def do_remove(self, replica: str) -> None:
        pool = self.pool_of(replica)
        if replica not in self.stats or pool == "removed":
            raise SimError(f"'{replica}' is not a replica (replicas: {', '.join(self.all_replicas())})")
        if len(self.pools[pool]) <= 1:
            raise SimError(f"{replica} is the last replica of the {pool} pool; add one first")
        self.pools[pool].remove(replica)
        self.crashed_at.pop(replica, None)
        self.slow_since.pop(replica, None)
        del self.nodes[replica]
        for b in self.balancers():
            self.nodes[b].health.pop(replica, None)  # a later replica of that name starts afresh
            self.nodes[b].conns.pop(replica, None)
        self.reset_split("replica removed", pool)  # the turn order shifts: count afresh
        self.emit("remove", node=replica, pool=pool)

    @action("weight", Arg("replica"), Arg("weight", "int", lo=1, hi=5),
            help="Change a replica's weight (used by the weighted rule).")
    def do_weight(self, replica: str, weight: int) -> None:
        if replica not in self.weights or self.pool_of(replica) == "removed":
            raise SimError(f"'{replica}' is not a replica (replicas: {', '.join(self.all_replicas())})")
        self.weights[replica] = weight
        self.reset_split("weights changed", self.pool_of(replica))
        self.emit("weight", node=replica, weight=weight)

    @action("health", Arg("state", "word", choices=("on", "off")), help="Turn the balancer's health checks on or off.")
    def do_health(self, state: str) -> None:
        if state == "on" and not self.health_checks:
            self.health_on_since = self.now  # a replica that died meanwhile gets a fresh detection window
        self.health_checks = state == "on"
        if not self.health_checks:
            for b in self.balancers():  # probes already out are forgotten
                node = self.nodes[b]
                for replica, out in node.probes.items():
                    for probe in out:
                        node.cancel_timer(f"probe-timeout:{replica}:{probe}")
                    out.clear()
        self.emit("health-checks", on=self.health_checks)

    # -- the snapshot -------------------------------------------------------------------
    def view(self) -> dict:
        lb = self.active()
        layout = {"client": [6, 50], "lb": [30, 50]}
        edges = [["client", "lb"]]
        if "lb2" in self.nodes:
            layout["lb2"] = [30, 80]
            edges += [["client", "lb2"], ["lb", "lb2"]]
        replicas = []
        for pool, y, (left, right) in (("frontend", 16, (60, 88)), ("api", 84, (44, 88))):
            members = self.pools[pool]
            for i, r in enumerate(members):
                x = left + (right - left) * i / (len(members) - 1) if len(members) > 1 else (left + right) / 2
                layout[r] = [round(x, 1), y]
                for b in self.balancers():
                    edges.append([b, r])
                node = self.nodes[r]
                stats = self.stats[r]
                replicas.append({
                    "id": r, "pool": pool, "weight": self.weights[r], "status": node.status,
                    "health": ("up" if lb.healthy(r) else "down") if lb else "unknown",
                    "conns": lb.conns.get(r, 0) if lb else 0, "picks": stats["picks"], "ok": stats["ok"],
                    "errors": stats["errors"],
                    "latency": round(stats["latency"], 1) if stats["latency"] is not None else None,
                    "slow": node.slow_ms})
        top = max([1] + [r["picks"] for r in replicas])
        for r in replicas:
            r["bar"] = round(100 * r["picks"] / top)
        worst_t = max([1] + [b["ok"] + b["err"] for b in self.timeline])
        return {
            "layout": layout, "edges": edges,
            "balancer": {"vip": self.vip, "active": lb.id if lb else None, "algorithm": self.algorithm,
                         "health_checks": self.health_checks, "sticky": self.params["sticky"],
                         "rate": self.rate, "sessions": dict(lb.sessions) if lb else {},
                         "detection_ms": self.detection_bound()},
            "pools": {pool: list(m) for pool, m in self.pools.items()},
            "replicas": replicas,
            "split": {pool: {"since": s["since"], "why": s["why"], "counts": dict(s["counts"]),
                             "deviation": s.get("deviation", 0)} for pool, s in self.split.items()},
            "recent": list(self.recent),
            "timeline": [{**b, "h_ok": round(40 * b["ok"] / worst_t), "h_err": round(40 * b["err"] / worst_t)}
                         for b in self.timeline],
        }
