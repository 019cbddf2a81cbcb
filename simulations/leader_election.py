"""Leader election: the bully algorithm and the ring algorithm.

Every node has a unique id (n1 < n2 < ... < nN).  The leader sends a
HEARTBEAT to everyone; a node that stops hearing it starts an election.

Bully (Garcia-Molina, 1982):
  * send ELECTION to every node with a higher id and wait for an OK;
  * a higher node that is alive answers OK and runs its own election;
  * nobody answered: I am the highest alive, so I send COORDINATOR to all;
  * a node that (re)starts always holds an election, so a restarted
    higher id takes over ("bullies" the current leader).

Ring (Chang and Roberts, 1979, as told by Tanenbaum):
  * nodes sit in a ring ordered by id; the token ELECTION[ids] goes round,
    each live node adding its id and passing it to its next live successor
    (a successor that does not ACK within a short time is skipped);
  * when the token is back at its starter, the highest id in it wins and a
    COORDINATOR token goes round once more to announce it.

Bully costs O(n^2) messages in the worst case (the lowest node notices
first); the ring costs about 2n token hops.
"""

from __future__ import annotations

import math

from .kernel import Arg, Lab, Node, Param, SimError, action

HEARTBEAT_EVERY = 300  # ms between the leader's heartbeats
SUSPECT_AFTER = 1000  # ms of silence before a follower suspects the leader
ANSWER_WAIT = 150  # bully: how long a candidate waits for an OK
COORDINATOR_WAIT = 600  # bully: how long it then waits for the COORDINATOR
ACK_WAIT = 100  # ring: how long a node waits for its successor's ACK
SETTLE = 3000  # ms after a disturbance before the checks expect agreement

ELECTION_TYPES = ("ELECTION", "OK", "COORDINATOR")


def rank(node_id: str) -> int:
    return int(node_id[1:])


class Member(Node):
    def boot(self) -> None:
        self.role = "follower"
        self.leader: str | None = None
        self.elections_started = 0
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
        elif name == "no-ack":
            self.pass_token(data["type"], data["ids"], data["leader"], skip=data["to"])

    def become_leader(self) -> None:
        self.role, self.leader = "leader", self.id
        self.cancel_timer("suspect")
        self.lab.emit("leader", node=self.id)
        if self.lab.algorithm == "bully":
            for other in self.lab.others(self.id):
                self.lab.election_msg(self, other, "COORDINATOR", leader=self.id)
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
            self.set_timer("no-coordinator", COORDINATOR_WAIT * len(self.lab.nodes))
            self.pass_token("ELECTION", [self.id], None)

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
        elif kind in ("ELECTION", "COORDINATOR"):  # ring tokens
            self.send(msg.src, "ACK")
            self.on_token(kind, body["ids"].split(","), body.get("leader"))
        elif kind == "ACK":
            self.cancel_timer("no-ack")
        self.lab.maybe_close_election()

    def on_token(self, kind: str, ids: list[str], leader: str | None) -> None:
        if kind == "ELECTION":
            if ids[0] == self.id:  # back at the starter: announce the highest id
                winner = max(ids, key=rank)
                self.leader = winner
                self.pass_token("COORDINATOR", ids, winner)
                if winner == self.id:
                    self.become_leader()
                else:
                    self.follow(winner)
            else:
                if self.role != "leader":
                    self.role = "candidate"
                    self.cancel_timer("suspect")
                    self.set_timer("no-coordinator", COORDINATOR_WAIT * len(self.lab.nodes))
                self.pass_token("ELECTION", ids + [self.id], None)
        else:
            if ids[0] == self.id:
                return  # the announcement went all the way round
            if leader == self.id:
                self.become_leader()
            else:
                self.follow(leader)
            self.pass_token("COORDINATOR", ids, leader)

    def pass_token(self, kind: str, ids: list[str], leader: str | None, skip: str | None = None) -> None:
        """Send the ring token to the next node after `skip` (or after me)."""
        ring = list(self.lab.nodes)
        start = ring.index(skip if skip else self.id)
        for step in range(1, len(ring)):
            nxt = ring[(start + step) % len(ring)]
            if nxt == self.id:
                break
            self.lab.election_msg(self, nxt, kind, ids=",".join(ids), leader=leader)
            self.set_timer("no-ack", ACK_WAIT, type=kind, ids=ids, leader=leader, to=nxt)
            return
        # Nobody else answers: I am alone in the ring.
        if kind == "ELECTION":
            self.become_leader()


class LeaderElection(Lab):
    slug = "leader-election"
    title = "Leader election"
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
        self.metrics.update({"messages": 0, "elections": 0, "acks": 0})
        for i in range(1, self.params["nodes"] + 1):
            self.add_node(Member(self, f"n{i}"))
        top = list(self.nodes)[-1]
        for node in self.nodes.values():
            node.leader = top
            node.role = "leader" if node.id == top else "follower"
            node.set_timer("heartbeat", 0) if node.id == top else node.watch_leader()
        self.started = True
        self.add_check("agreement", "Once elections settle in a connected network, every live node follows the same leader.")
        self.add_check("highest-leads", "Once elections settle in a connected network, the leader is the highest live id.")
        self.sim.after(100, self.audit)

    def others(self, node_id: str) -> list[str]:
        return [n for n in self.nodes if n != node_id]

    # -- elections as the page shows them -------------------------------------
    def election_msg(self, sender: Member, dst: str, kind: str, **body) -> None:
        self.count("messages")
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

    def audit(self) -> None:
        self.sim.after(100, self.audit)
        self.maybe_close_election()
        connected = not self.net.partition and not any(link.cut or link.loss for link in self.net.links.values())
        live = [n for n in self.nodes.values() if n.up]
        if not connected or self.now - self.disturbed_at < SETTLE or self.current or len(live) < len(
                [n for n in self.nodes.values() if n.status != "down"]):
            return
        beliefs = sorted({n.leader or "nobody" for n in live})
        if len(beliefs) > 1:
            self.fail("agreement", f"live nodes disagree on the leader: {', '.join(beliefs)}")
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
