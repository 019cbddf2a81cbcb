"""Leader election: the bully algorithm and the ring algorithm.

Every node has a unique id (n1 < n2 < ... < nN).  The leader sends a
HEARTBEAT to everyone; a node that stops hearing it starts an election.

Bully (Garcia-Molina, 1982):
  * send ELECTION to every node with a higher id and wait for an OK;
  * a higher node that is alive answers OK and runs its own election;
  * nobody answered: I am the highest alive, so I send COORDINATOR to all;
  * a node that (re)starts always holds an election, so a restarted
    higher id takes over ("bullies" the current leader).

Ring (Le Lann, 1977; the collect-all ring of Tanenbaum's textbook):
  * nodes sit in a ring ordered by id; the token ELECTION[ids] goes round,
    each live node adding its id and passing it to its next live successor;
    every hop is acknowledged, and a successor that does not ACK that hop
    within a short time is skipped (one timer per hop awaited);
  * when the token is back at its starter, the highest id in it wins and a
    COORDINATOR token goes round once more to announce it;
  * a token that reaches a node already on it has gone round without its
    starter (it crashed): that node drops it and starts a new election.  An
    announcement stops at its announcer, or at a node that already saw it.
  (Chang and Roberts, 1979, refine this ring: each node forwards only the
  highest id seen, so the token stays small.  This lab runs Le Lann's.)

Bully costs O(n^2) messages in the worst case (the lowest node notices first);
the ring costs about 2n token hops, each acknowledged (about 4n messages).
"""

from __future__ import annotations

from functools import partial

from .kernel import Arg, Lab, Node, Param, action, is_up, observe, on

HEARTBEAT_EVERY = 300  # ms between the leader's heartbeats
SUSPECT_AFTER = 1000  # ms of silence before a follower suspects the leader
ANSWER_WAIT = 150  # bully: how long a candidate waits for an OK
COORDINATOR_WAIT = 600  # bully: how long it then waits for the COORDINATOR
ACK_WAIT = 100  # ring: how long a node waits for its successor's ACK of one hop
HOP_BUDGET = 2 * ACK_WAIT + 50  # ring: what one hop may cost (a skipped node, then a live one)
MAX_EXTRA_DELAY = 50  # ms of extra link delay under which the network still counts as normal

ELECTION_TYPES = ("ELECTION", "OK", "COORDINATOR")
COUNTED = (*ELECTION_TYPES, "ACK")  # what an election costs, in messages


def rank(node_id: str) -> int:
    return int(node_id[1:])


class Member(Node):
    """What both algorithms share: the leader's heartbeat, and suspecting its silence."""

    def boot(self) -> None:
        self.role = "follower"
        # The highest id leads from the start.  A node that comes back does not know who leads: it asks.
        self.leader: str | None = None if self.restarted else f"n{self.lab.params['nodes']}"
        if self.restarted:
            self.start_election("restarted")
        elif self.leader == self.id:
            self.role = "leader"
            self.every(HEARTBEAT_EVERY, self.heartbeat, key="heartbeat", first=0)
        else:
            self.watch_leader()

    def view(self) -> dict:
        leader = self.leader if self.status != "down" else None
        return {"leader": leader, "label": f"leader: {leader}" if leader else ""}

    def tell_all(self, type: str, **body) -> None:
        for other in self.lab.nodes:
            if other != self.id:
                self.send(other, type, **body)

    def heartbeat(self) -> None:
        self.tell_all("HEARTBEAT", leader=self.id)

    def watch_leader(self) -> None:
        self.after(SUSPECT_AFTER + self.rng.random() * 300, self.leader_silent, key="suspect")

    def leader_silent(self) -> None:
        self.lab.emit("suspect", node=self.id, leader=self.leader)
        self.start_election("leader silent")

    @on("HEARTBEAT")
    def heard_leader(self, msg) -> None:
        leader = msg.body["leader"]
        if self.role == "leader" and rank(leader) < rank(self.id):
            self.start_election("lower leader heard")  # e.g. after a partition heals
        elif self.role != "candidate" or rank(leader) > rank(self.id):
            self.follow(leader)

    def start_election(self, why: str) -> None:
        self.role = "candidate"
        self.cancel("heartbeat")
        self.cancel("suspect")
        self.lab.emit("election", node=self.id, why=why)

    def await_coordinator(self, wait: float) -> None:
        self.after(wait, self.start_election, "no coordinator announced", key="no-coordinator")

    def become_leader(self) -> None:
        self.cancel("suspect")
        self.cancel("no-coordinator")
        if self.role != "leader":
            self.lab.emit("leader", node=self.id)
            self.every(HEARTBEAT_EVERY, self.heartbeat, key="heartbeat", first=0)
        self.role, self.leader = "leader", self.id

    def follow(self, leader: str) -> None:
        changed = leader != self.leader or self.role != "follower"
        self.role, self.leader = "follower", leader
        self.cancel("no-ok")
        self.cancel("no-coordinator")
        self.cancel("heartbeat")
        self.watch_leader()
        if changed:
            self.lab.emit("follow", node=self.id, leader=leader)


class Bully(Member):
    def start_election(self, why: str) -> None:
        super().start_election(why)
        for other in self.lab.nodes:
            if rank(other) > rank(self.id):
                self.send(other, "ELECTION")
        self.after(ANSWER_WAIT, self.nobody_higher, key="no-ok")

    def nobody_higher(self) -> None:
        """No OK came: I am the highest alive, and I tell everyone."""
        self.tell_all("COORDINATOR", leader=self.id)
        self.become_leader()

    @on("ELECTION")
    def election_from(self, msg) -> None:
        self.send(msg.src, "OK")
        if self.role != "candidate":
            self.start_election(f"election from {msg.src}")

    @on("OK")
    def higher_alive(self, msg) -> None:
        if self.role == "candidate":
            self.cancel("no-ok")
            self.await_coordinator(COORDINATOR_WAIT)

    @on("COORDINATOR")
    def coordinator(self, msg) -> None:
        if rank(msg.body["leader"]) < rank(self.id):
            self.start_election(f"{msg.body['leader']} claimed to lead")
        else:
            self.follow(msg.body["leader"])


class Ring(Member):
    def boot(self) -> None:
        self.election: str | None = None  # the id of the election I started last
        self.announced: str | None = None  # the election whose result I announced
        self.hops = 0  # tokens I have passed on (each waits for its own ACK)
        self.elections_started = 0
        super().boot()

    def start_election(self, why: str) -> None:
        super().start_election(why)
        self.elections_started += 1
        self.election = f"{self.id}.{self.incarnation}.{self.elections_started}"
        self.await_coordinator(self.lab.ring_timeout)
        self.pass_token("ELECTION", {"eid": self.election, "ids": self.id})

    def acknowledge(self, msg) -> dict:
        """Acknowledge this hop; the rest of the message is the token."""
        self.send(msg.src, "ACK", hop=msg.body["hop"])
        return {k: v for k, v in msg.body.items() if k != "hop"}

    @on("ACK")
    def hop_acknowledged(self, msg) -> None:
        self.answered(("hop", msg.body["hop"]))

    @on("ELECTION")
    def election_token(self, msg) -> None:
        token = self.acknowledge(msg)
        ids = token["ids"].split(",")
        if ids[0] == self.id:
            # Back at its starter, holding the id of every live node: the highest wins.
            if token["eid"] != self.election or self.announced == token["eid"]:
                return  # an older election of mine, or a duplicate of this one
            self.announced = token["eid"]
            winner = max(ids, key=rank)
            self.adopt(winner)
            self.pass_token("COORDINATOR", {"eid": token["eid"], "leader": winner, "seen": self.id})
        elif self.id in ids:
            # I am on the token already: it went all the way round without its starter.
            self.lab.emit("token-dropped", node=self.id, eid=token["eid"], type="ELECTION",
                          why=f"it came back without its starter {ids[0]}")
            if not self.running_my_election():
                self.start_election(f"{ids[0]}'s token came back without {ids[0]}")
        else:
            if self.role != "leader":
                self.role = "candidate"
                self.cancel("suspect")
                self.await_coordinator(self.lab.ring_timeout)
            self.pass_token("ELECTION", {**token, "ids": f"{token['ids']},{self.id}"})

    def adopt(self, leader: str) -> None:
        """The election's result: lead if it is me, else follow."""
        if leader == self.id:
            self.become_leader()
        else:
            self.follow(leader)

    def running_my_election(self) -> bool:
        """My own token is on its way and I still wait for its result."""
        return self.role == "candidate" and self.announced != self.election and self.pending("no-coordinator")

    @on("COORDINATOR")
    def coordinator_token(self, msg) -> None:
        token = self.acknowledge(msg)
        if self.id in token["seen"].split(","):
            return  # back at its announcer (or, the announcer gone, at a node that has heard it)
        if rank(token["leader"]) < rank(self.id):
            # The token missed me (I was paused, or my link dropped it): I object with an election.
            if not self.running_my_election():
                self.start_election(f"{token['leader']} announced, but I am higher")
            return
        self.adopt(token["leader"])
        self.pass_token("COORDINATOR", {**token, "seen": f"{token['seen']},{self.id}"})

    def pass_token(self, kind: str, token: dict, skipped: str | None = None) -> None:
        """Send the ring token to my successor.  Each hop waits for its own ACK: a successor that
        does not acknowledge in time is skipped, and the token goes to the one after it."""
        if skipped:
            self.lab.emit("skip", node=self.id, skipped=skipped, type=kind)
        ring = list(self.lab.nodes)
        nxt = ring[(ring.index(skipped or self.id) + 1) % len(ring)]
        if nxt == self.id:  # nobody else answers: I am alone in the ring
            if kind == "ELECTION":
                self.become_leader()
            return
        self.hops += 1
        self.request(nxt, kind, awaiting=("hop", self.hops), timeout=ACK_WAIT, hop=self.hops, **token,
                     on_timeout=partial(self.pass_token, kind, token, nxt))


class LeaderElection(Lab):
    slug = "leader-election"
    title = "Leader election"
    INVARIANTS = {"agreement": ("*",), "highest-leads": ("*",), "leader-elected": ("*",)}
    PARAMS = (
        Param("algorithm", "bully", "How nodes elect a leader.", choices=("bully", "ring")),
        Param("nodes", 5, "How many nodes (ids n1..nN; the highest id leads first).", lo=3, hi=9),
    )

    def setup(self) -> None:
        self.algorithm = self.params["algorithm"]
        self.elections: list[dict] = []  # the last eight, as the page lists them
        self.current: dict | None = None  # the one running
        self.sent_before = 0  # election messages sent before the current one began
        self.disturbed_at = 0.0
        self.faults_seen = (0, 0)  # messages the network dropped and duplicated, at the last audit
        n = self.params["nodes"]
        # Ring: a candidate waits for the announcement as long as two rounds of hops may take.
        self.ring_timeout = 2 * n * HOP_BUDGET
        election = ANSWER_WAIT + COORDINATOR_WAIT if self.algorithm == "bully" else self.ring_timeout
        # How long after the last fault the checks expect one agreed leader: the leader's silence
        # is noticed, an election runs, and one more may be needed if the first lost its way.
        self.settle = SUSPECT_AFTER + 300 + 2 * election + 500
        self.metrics.update({"messages": 0, "elections": 0, "acks": 0})
        member = Bully if self.algorithm == "bully" else Ring
        for i in range(1, n + 1):
            self.add_node(member(self, f"n{i}"))
        calm = f"{self.settle / 1000:.1f} s after the last fault in a normal network"
        self.add_check("agreement", f"{calm}, every live node follows the same leader.")
        self.add_check("highest-leads", f"{calm}, the leader is the highest live id.")
        self.add_check("leader-elected", f"{calm}, no election is still running and one live "
                       "leader is followed by every live node (red while that is not so).")
        self.every(100, self.audit)

    # -- elections as the page shows them: watched, not reported by the nodes ----------------
    def update_metrics(self) -> None:
        self.metrics["messages"] = sum(self.net.sent_by_type.get(t, 0) for t in COUNTED)
        self.metrics["acks"] = self.net.sent_by_type.get("ACK", 0)
        if self.current:
            self.current["messages"] = self.metrics["messages"] - self.sent_before

    @observe("election")
    def election_started(self, event: dict) -> None:
        if self.current is None:
            self.count("elections")
            self.update_metrics()
            self.sent_before = self.metrics["messages"]
            self.current = {"n": self.metrics["elections"], "started_by": event["node"], "why": event["why"],
                            "start": round(self.now, 3), "end": None, "took": None, "winner": None, "messages": 0}
            self.elections.append(self.current)
            del self.elections[:-8]

    def handled(self, node: Node, msg) -> None:
        self.maybe_close_election()

    def maybe_close_election(self) -> None:
        """An election ends when no live node is a candidate and no election message is on the wire."""
        if self.current is None or any(n.up and n.role == "candidate" for n in self.nodes.values()):
            return
        if any(m.type in ELECTION_TYPES for m in self.net.inflight.values()):
            return
        self.update_metrics()  # (the election's message count)
        leaders = [n.id for n in self.nodes.values() if n.up and n.role == "leader"]
        done, took = self.current, self.now - self.current["start"]
        done.update(end=round(self.now, 3), took=round(took, 1), winner=",".join(leaders) or None)
        self.emit("elected", leader=done["winner"], messages=done["messages"], ms=round(took, 3))
        self.current = None

    def view(self) -> dict:
        ids = list(self.nodes)
        edges = [[a, ids[(i + 1) % len(ids)]] for i, a in enumerate(ids)] if self.algorithm == "ring" else []
        return {"algorithm": self.algorithm, "elections": [dict(e) for e in self.elections], "edges": edges}

    # -- checks -------------------------------------------------------------------
    def after_fault(self, fault: str, node_id: str | None) -> None:
        self.disturbed_at = self.now

    def normal(self) -> bool:
        """No partition, cut, loss or delay over MAX_EXTRA_DELAY; no paused or slowed node.
        (A pending drop-next or duplicate-next counts as a fault when it strikes.)"""
        if self.net.partition:
            return False
        if any(link.cut or link.loss or link.delay > MAX_EXTRA_DELAY for link in self.net.links.values()):
            return False
        return all(n.status != "paused" and not n.slow_ms for n in self.nodes.values())

    def audit(self) -> None:
        self.maybe_close_election()
        # A message lost or copied by a fault disturbs too, and so does one still on its way
        # because a delay (healed since) held it up.
        struck = (self.net.dropped, self.net.duplicated)
        held_up = any(m.arrive - m.sent > self.LATENCY[1] + MAX_EXTRA_DELAY for m in self.net.inflight.values())
        if struck != self.faults_seen or held_up:
            self.faults_seen, self.disturbed_at = struck, self.now
        live = [n for n in self.nodes.values() if n.up]
        if not self.normal() or self.now - self.disturbed_at < self.settle or not live:
            return
        calm = f"{(self.now - self.disturbed_at) / 1000:.1f} s after the last fault"
        beliefs = sorted({n.leader or "nobody" for n in live})
        leaders = [n.id for n in live if n.role == "leader"]
        candidates = [n.id for n in live if n.role == "candidate"]
        if len(beliefs) == 1 and leaders == beliefs and not candidates and self.current is None:
            self.holds("leader-elected", f"{leaders[0]} leads, followed by all {len(live)} live nodes")
        elif self.current is not None or candidates:
            self.fail("leader-elected", f"{calm}, an election is still running "
                      f"(candidates: {', '.join(candidates) or 'none'}; believed leaders: {', '.join(beliefs)})")
        else:
            self.fail("leader-elected", f"{calm}, no single live leader: live nodes follow {', '.join(beliefs)}"
                      f" and {', '.join(leaders) or 'nobody'} acts as leader")
        if len(beliefs) > 1:
            self.fail("agreement", f"{calm}, live nodes disagree on the leader: {', '.join(beliefs)}")
        highest = max((n.id for n in live), key=rank)
        if beliefs != [highest]:
            self.fail("highest-leads", f"{highest} is the highest live id but nodes follow {', '.join(beliefs)}")
        else:
            self.checks["highest-leads"].detail = f"{highest} leads"

    # -- lab actions ----------------------------------------------------------------
    @action("elect", Arg("node"), when=is_up, refuse="{node} is {status}; only a running node can start an election",
            help="Make this node start an election now.")
    def do_elect(self, node_id: str) -> None:
        self.disturbed_at = self.now
        self.nodes[node_id].start_election("asked by the learner")
