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

Bully costs O(n^2) messages in the worst case (the lowest node notices
first); the ring costs about 2n token hops, each acknowledged (about 4n
messages).
"""

from __future__ import annotations

import math

from .kernel import Arg, Lab, Node, Param, SimError, action

HEARTBEAT_EVERY = 300  # ms between the leader's heartbeats
SUSPECT_AFTER = 1000  # ms of silence before a follower suspects the leader
ANSWER_WAIT = 150  # bully: how long a candidate waits for an OK
COORDINATOR_WAIT = 600  # bully: how long it then waits for the COORDINATOR
ACK_WAIT = 100  # ring: how long a node waits for its successor's ACK of one hop
HOP_BUDGET = 2 * ACK_WAIT + 50  # ring: what one hop may cost (a skipped node, then a live one)
MAX_EXTRA_DELAY = 50  # ms of extra link delay under which the network still counts as normal

ELECTION_TYPES = ("ELECTION", "OK", "COORDINATOR")


def rank(node_id: str) -> int:
    return int(node_id[1:])


class Member(Node):
    def boot(self) -> None:
        self.role = "follower"
        self.leader: str | None = None
        self.elections_started = 0
        self.election: str | None = None  # ring: the id of the election I started last
        self.announced: str | None = None  # ring: the election whose result I announced
        self.hops = 0  # ring: tokens I have passed on (each waits for its own ACK)
        self.waiting_for = None  # bully: "ok" or "coordinator"
        if self.lab.started:
            # A node that (re)starts does not know who leads: it asks.
            self.start_election("restarted")

    def view(self) -> dict:
        return {"leader": self.leader if self.status != "down" else None, "rank": rank(self.id),
                "label": f"leader: {self.leader}" if self.leader and self.status != "down" else ""}

    # -- failure detection ---------------------------------------------------
    def watch_leader(self) -> None:
        jitter = self.lab.sim.rng.random() * 300
        self.set_timer("suspect", SUSPECT_AFTER + jitter)

    def on_timer(self, name: str, data: dict) -> None:
        if name == "heartbeat" and self.role == "leader":
            for other in self.lab.others(self.id):
                self.send(other, "HEARTBEAT", leader=self.id)
            self.set_timer("heartbeat", HEARTBEAT_EVERY)
        elif name == "suspect" and self.role != "leader":
            self.lab.emit("suspect", node=self.id, leader=self.leader)
            self.start_election("leader silent")
        elif name == "no-ok" and self.role == "candidate":
            self.become_leader()  # nobody higher answered
        elif name == "no-coordinator" and self.role == "candidate":
            self.start_election("no coordinator announced")
        elif name.startswith("no-ack"):
            # The successor did not acknowledge this hop: skip it, pass the token further on.
            self.lab.emit("skip", node=self.id, skipped=data["to"], type=data["kind"])
            self.pass_token(data["kind"], data["token"], after=data["to"])

    def become_leader(self) -> None:
        was_leader = self.role == "leader"
        self.role, self.leader = "leader", self.id
        self.cancel_timer("suspect")
        self.cancel_timer("no-coordinator")
        if self.lab.algorithm == "bully":
            for other in self.lab.others(self.id):
                self.lab.election_msg(self, other, "COORDINATOR", leader=self.id)
        if not was_leader:
            self.lab.emit("leader", node=self.id)
            self.set_timer("heartbeat", 0)

    def follow(self, leader: str) -> None:
        changed = leader != self.leader or self.role != "follower"
        self.role, self.leader = "follower", leader
        self.cancel_timer("no-ok")
        self.cancel_timer("no-coordinator")
        self.cancel_timer("heartbeat")
        self.watch_leader()
        if changed:
            self.lab.emit("follow", node=self.id, leader=leader)

    # -- elections ------------------------------------------------------------
    def start_election(self, why: str) -> None:
        self.role = "candidate"
        self.cancel_timer("heartbeat")
        self.cancel_timer("suspect")
        self.lab.open_election(self, why)
        if self.lab.algorithm == "bully":
            higher = [o for o in self.lab.others(self.id) if rank(o) > rank(self.id)]
            for other in higher:
                self.lab.election_msg(self, other, "ELECTION")
            self.set_timer("no-ok", ANSWER_WAIT)
        else:
            self.election = f"{self.id}.{self.incarnation}.{self.elections_started}"
            self.set_timer("no-coordinator", self.lab.ring_timeout)
            self.pass_token("ELECTION", {"eid": self.election, "ids": self.id})

    def on_message(self, msg) -> None:
        kind, body = msg.type, msg.body
        if kind == "HEARTBEAT":
            leader = body["leader"]
            if self.role == "leader" and rank(leader) < rank(self.id):
                self.start_election("lower leader heard")  # e.g. after a partition heals
            elif self.role != "candidate" or rank(leader) > rank(self.id):
                self.follow(leader)
        elif kind == "ELECTION" and self.lab.algorithm == "bully":
            self.lab.election_msg(self, msg.src, "OK")
            if self.role != "candidate":
                self.start_election(f"election from {msg.src}")
        elif kind == "OK" and self.role == "candidate":
            self.cancel_timer("no-ok")
            self.set_timer("no-coordinator", COORDINATOR_WAIT)
        elif kind == "COORDINATOR" and self.lab.algorithm == "bully":
            if rank(body["leader"]) < rank(self.id):
                self.start_election(f"{body['leader']} claimed to lead")
            else:
                self.follow(body["leader"])
        elif kind in ("ELECTION", "COORDINATOR"):  # ring tokens: acknowledge this hop, then act
            self.lab.election_msg(self, msg.src, "ACK", hop=body["hop"])
            token = {k: v for k, v in body.items() if k != "hop"}
            if kind == "ELECTION":
                self.on_election_token(token)
            else:
                self.on_coordinator_token(token)
        elif kind == "ACK":
            self.cancel_timer(f"no-ack {body['hop']}")
        self.lab.maybe_close_election()

    def on_election_token(self, token: dict) -> None:
        ids = token["ids"].split(",")
        if ids[0] == self.id:
            # Back at its starter, holding the id of every live node: the highest wins.
            if token["eid"] != self.election or self.announced == token["eid"]:
                return  # an older election of mine, or a duplicate of this one
            self.announced = token["eid"]
            winner = max(ids, key=rank)
            if winner == self.id:
                self.become_leader()
            else:
                self.follow(winner)
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
                self.cancel_timer("suspect")
                self.set_timer("no-coordinator", self.lab.ring_timeout)
            self.pass_token("ELECTION", {**token, "ids": f"{token['ids']},{self.id}"})

    def running_my_election(self) -> bool:
        """Ring: my own token is on its way and I still wait for its result."""
        return self.role == "candidate" and self.election is not None and self.announced != self.election \
            and self.has_timer("no-coordinator")

    def on_coordinator_token(self, token: dict) -> None:
        seen = token["seen"].split(",")
        if self.id in seen:
            return  # back at its announcer (or, the announcer gone, at a node that has heard it)
        if rank(token["leader"]) < rank(self.id):
            # The token missed me (I was paused, or my link dropped it): I object with an election.
            if not self.running_my_election():
                self.start_election(f"{token['leader']} announced, but I am higher")
            return
        if token["leader"] == self.id:
            self.become_leader()
        else:
            self.follow(token["leader"])
        self.pass_token("COORDINATOR", {**token, "seen": f"{token['seen']},{self.id}"})

    def pass_token(self, kind: str, token: dict, after: str | None = None) -> None:
        """Send the ring token to my next live successor (the next one after `after` when
        that one did not answer).  Each hop waits for its own ACK."""
        ring = list(self.lab.nodes)
        start = ring.index(after if after else self.id)
        for step in range(1, len(ring)):
            nxt = ring[(start + step) % len(ring)]
            if nxt == self.id:
                break
            self.hops += 1
            self.lab.election_msg(self, nxt, kind, hop=self.hops, **token)
            self.set_timer(f"no-ack {self.hops}", ACK_WAIT, kind=kind, token=token, to=nxt)
            return
        # Nobody else answers: I am alone in the ring.
        if kind == "ELECTION":
            self.become_leader()


class LeaderElection(Lab):
    slug = "leader-election"
    title = "Leader election"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    INVARIANTS = {"agreement": ("*",), "highest-leads": ("*",), "leader-elected": ("*",)}
    PARAMS = (
        Param("algorithm", "bully", "How nodes elect a leader.", choices=("bully", "ring")),
        Param("nodes", 5, "How many nodes (ids n1..nN; the highest id leads first).", lo=3, hi=9),
    )

    def setup(self) -> None:
        self.started = False
        self.algorithm = self.params["algorithm"]
        self.elections: list[dict] = []
        self.current: dict | None = None
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
        for i in range(1, self.params["nodes"] + 1):
            self.add_node(Member(self, f"n{i}"))
        top = list(self.nodes)[-1]
        for node in self.nodes.values():
            node.leader = top
            node.role = "leader" if node.id == top else "follower"
            node.set_timer("heartbeat", 0) if node.id == top else node.watch_leader()
        self.started = True
        calm = f"{self.settle / 1000:.1f} s after the last fault in a normal network"
        self.add_check("agreement", f"{calm.capitalize()}, every live node follows the same leader.")
        self.add_check("highest-leads", f"{calm.capitalize()}, the leader is the highest live id.")
        self.add_check("leader-elected", f"{calm.capitalize()}, no election is still running and one live "
                       "leader is followed by every live node (red while that is not so).")
        self.sim.after(100, self.audit)

    def others(self, node_id: str) -> list[str]:
        return [n for n in self.nodes if n != node_id]

    # -- elections as the page shows them -------------------------------------
    def election_msg(self, sender: Member, dst: str, kind: str, **body) -> None:
        self.count("messages")
        if kind == "ACK":
            self.count("acks")
        if self.current:
            self.current["messages"] += 1
        sender.send(dst, kind, **body)

    def open_election(self, node: Member, why: str) -> None:
        node.elections_started += 1
        self.emit("election", node=node.id, why=why)
        if self.current is None:
            self.count("elections")
            self.current = {"n": self.metrics["elections"], "started_by": node.id, "why": why,
                            "start": round(self.now, 3), "end": None, "took": None, "winner": None,
                            "messages": 0}
            self.elections.append(self.current)
            del self.elections[:-8]

    def maybe_close_election(self) -> None:
        if self.current is None:
            return
        busy = any(n.role == "candidate" for n in self.nodes.values() if n.up)
        in_air = any(m.type in ("ELECTION", "OK", "COORDINATOR") for m in self.net.inflight.values())
        if not busy and not in_air:
            leaders = [n.id for n in self.nodes.values() if n.up and n.role == "leader"]
            self.current.update(end=round(self.now, 3), winner=",".join(leaders) or None,
                                took=round(self.now - self.current["start"], 1))
            self.emit("elected", leader=self.current["winner"], messages=self.current["messages"],
                      ms=round(self.now - self.current["start"], 3))
            self.current = None

    def view(self) -> dict:
        # The nodes in ring order, clockwise: on an oval with n1 at the top, or, from
        # seven nodes on, in two rows (left to right, then back), so labels have room.
        # The ring algorithm also draws the ring's links.
        ids = list(self.nodes)
        layout = {}
        top = -(-len(ids) // 2)
        for i, node_id in enumerate(ids):
            if len(ids) <= 6:
                angle = 2 * math.pi * i / len(ids) - math.pi / 2
                layout[node_id] = [round(50 + 36 * math.cos(angle), 1), round(50 + 32 * math.sin(angle), 1)]
            elif i < top:
                layout[node_id] = [round(10 + 80 * i / (top - 1), 1), 20]
            else:
                step, bottom = 80 / (top - 1), len(ids) - top  # a shorter bottom row sits in the gaps
                layout[node_id] = [round(90 - step * ((top - bottom) / 2 + i - top), 1), 80]
        edges = [[a, ids[(i + 1) % len(ids)]] for i, a in enumerate(ids)] if self.algorithm == "ring" else []
        return {"algorithm": self.algorithm, "elections": self.elections, "layout": layout, "edges": edges}

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
        self.sim.after(100, self.audit)
        self.maybe_close_election()
        struck = (self.net.dropped, self.net.duplicated)
        if struck != self.faults_seen:  # a message was lost or copied by a fault: that disturbs too
            self.faults_seen, self.disturbed_at = struck, self.now
        slowest = self.LATENCY[1] + MAX_EXTRA_DELAY
        if any(m.arrive - m.sent > slowest for m in self.net.inflight.values()):
            self.disturbed_at = self.now  # a message held up by a healed delay is still on its way
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
    @action("elect", Arg("node"), help="Make this node start an election now.")
    def do_elect(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if not node.up:
            raise SimError(f"{node_id} is {node.status}; only a running node can start an election")
        self.disturbed_at = self.now
        node.start_election("asked by the learner")
