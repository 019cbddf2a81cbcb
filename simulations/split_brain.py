"""Split brain: two leaders after a partition, and the two classic cures.

Five replicas n1..n5 sit in two racks (rack A: n1, n2; rack B: n3, n4, n5)
and hold one replicated register.  One of them leads: clients may send a
write to any node; a follower FORWARDs it to the leader it knows (or rejects
it if it knows none), and only the leader changes the register and copies it
to the others (REPLICATE, and in every HEARTBEAT it sends every 500 ms).
Every write carries the client's id; the register keeps the ids of the
writes in its history, so a leader that receives a write twice (the network
duplicated it) answers again but never applies it a second time.

A follower that hears no heartbeat for a while suspects the leader and tries
to take over.  What happens next depends on the mode:

naive
  * the first node that notices the silence declares itself leader: no votes,
    no quorum, no generation number;
  * two leaders that meet settle it by id (the higher one stays) and every
    follower copies whatever its leader holds.
  A partition therefore gives each side its own leader, both accept writes,
  and on heal one side's acknowledged writes are silently overwritten.

generation  (the article's fix: a "generation clock")
  * every election increments a generation number, written to disk before
    the new leader acts (a restarted node must not reuse an old one);
  * every request a leader sends carries its generation; a node that has
    seen a higher one REJECTs it and says which generation it is in;
  * a leader that gets a rejection knows it is stale and steps down.
  The stale leader is fenced off as soon as it talks to the new generation.
  But with no quorum both sides still accept writes during the partition, and
  on heal the lower generation's writes are overwritten.

quorum  (what Raft and Paxos add, Ongaro and Ousterhout 2014)
  * a candidate needs the votes of a majority (3 of 5) to lead, each node
    votes once per generation and only for a candidate whose register is at
    least as recent as its own;
  * it first asks "would you vote for me?" (PRE-VOTE) and only bumps its
    generation once a majority says yes, so a cut-off minority does not
    inflate generations (Raft's pre-vote, Ongaro's thesis section 9.6);
  * a write is acknowledged only once a majority has stored it;
  * a leader that cannot hear a majority steps down (check-quorum).
  The minority side cannot elect anyone nor acknowledge anything, so no two
  leaders accept writes in one generation and no acknowledged write is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from .kernel import Arg, Lab, Message, Node, Param, action, not_down, observe, on

HEARTBEAT_EVERY = 500  # ms between a leader's heartbeats
SUSPECT_AFTER = 1500  # ms of silence before a follower suspects its leader
SUSPECT_JITTER = 500  # random extra wait, so followers do not all move at once
LEADER_ALIVE = 1000  # quorum: a node that heard a leader this recently refuses pre-votes
VOTE_WAIT = 400  # quorum: how long a candidate waits for votes before trying again
WRITE_TIMEOUT = 1200  # ms a client waits for an answer to its write

RACKS = {"rack A": ["n1", "n2"], "rack B": ["n3", "n4", "n5"]}
MAJORITY = 3
FIRST_LEADER = "n5"


def rank(node_id: str) -> int:
    return int(node_id[1:])


@dataclass
class Register:
    """The replicated register: its value, the write that set it, and the ids of every write in its history."""

    value: int
    wid: int  # the write that set it
    stamp: list  # [generation, counter]: which of two writes is newer
    gen: int  # the generation of the leader that wrote it
    by: str  # that leader
    history: list  # the ids of the writes it has seen (a duplicate is applied once)


class Replica(Node):
    """One copy of the register, and a would-be leader."""

    def boot(self) -> None:
        # What survives a crash: the register and (with generations) the generation.
        first = 1 if self.lab.generations else 0  # the generation the cluster starts in (0: none)
        self.disk.setdefault("register", Register(0, 0, [first, 0], first, FIRST_LEADER, [0]))
        self.generation: int | None = self.disk.setdefault("generation", 1) if self.lab.generations else None
        self.quorum = self.lab.mode == "quorum"
        self.reg: Register = self.disk["register"]
        self.role = "follower"
        # At the start everyone follows FIRST_LEADER; a restarted node knows no leader until it hears one.
        self.leader: str | None = None if self.restarted else FIRST_LEADER
        self.heard_at: float | None = None if self.restarted else 0.0
        self.tenure = 0  # which of the run's leaderships this node holds or last held (0: none)
        self.watch()

    def view(self) -> dict:
        if self.status == "down":
            label, leader = f"down · v={self.reg.value}", None
        else:
            gen = "" if self.generation is None else f"gen {self.generation} · "
            label, leader = f"{gen}v={self.reg.value}" + ("" if self.leader else " · no leader"), self.leader
        return {"generation": self.generation, "value": self.reg.value, "leader": leader, "label": label}

    @property
    def gen(self) -> int:
        return self.generation or 0

    def others(self) -> list[str]:
        return [n for n in self.lab.nodes if n != self.id]

    def set_generation(self, gen: int) -> None:
        """Generations only go up (every caller passes a higher one), and hit the disk before anything else happens."""
        self.generation = self.disk["generation"] = gen
        self.lab.emit("generation", node=self.id, gen=gen)

    def store(self, reg: Register, why: str) -> None:
        old, self.reg = self.reg, reg
        self.disk["register"] = reg
        self.lab.witness("stored", node=self.id, old=old, new=reg, why=why)

    # -- failure detection: the leader's heartbeat, and silence ------------------------
    def watch(self) -> None:
        self.after(SUSPECT_AFTER + self.rng.random() * SUSPECT_JITTER, self.leader_silent, key="suspect")

    def leader_silent(self) -> None:
        if self.role == "leader":
            return
        self.lab.emit("suspect", node=self.id, leader=self.leader)
        self.leader = None
        if self.quorum:
            self.ask_prevotes()
        else:
            self.claim_leadership()

    # -- leading ------------------------------------------------------------------
    def claim_leadership(self) -> None:
        """naive and generation modes: no vote, whoever notices first leads."""
        if self.lab.generations:
            self.set_generation(self.gen + 1)  # a new generation, on disk first
        self.become_leader("leader silent, no quorum needed")

    def become_leader(self, why: str) -> None:
        self.role, self.leader = "leader", self.id
        self.cancel("suspect")
        self.cancel("election")
        self.match: dict[str, list] = {}  # quorum: the newest stamp each follower stored
        self.uncommitted: list[int] = []  # quorum: writes waiting for a majority
        self.heard_from = {n: self.now for n in self.others()}  # check-quorum: when each one last answered
        self.tenure = self.lab.next_tenure()
        self.lab.emit("leader", node=self.id, gen=self.generation, why=why, tenure=self.tenure)
        self.every(HEARTBEAT_EVERY, self.heartbeat, key="heartbeat")
        self.heartbeat()

    def heartbeat(self) -> None:
        if self.quorum:
            # check-quorum: a leader that has not heard a majority lately steps down.
            recent = [n for n, t in self.heard_from.items() if self.now - t < SUSPECT_AFTER]
            if len(recent) + 1 < MAJORITY:
                self.step_down("cannot hear a majority", None)
                return
        self.tell_followers("HEARTBEAT")

    def tell_followers(self, type: str) -> None:
        """Every request a leader sends carries its generation (None in naive mode) and the register."""
        reg = self.reg
        for other in self.others():
            self.send(other, type, gen=self.generation, leader=self.id, tenure=self.tenure, value=reg.value,
                      wid=reg.wid, stamp=list(reg.stamp), history=list(reg.history))

    def step_down(self, why: str, new_leader: str | None) -> None:
        self.role, self.leader = "follower", new_leader
        self.cancel("heartbeat")
        self.lab.emit("step-down", node=self.id, gen=self.generation, why=why)
        self.watch()

    # -- client writes --------------------------------------------------------------
    @on("WRITE", "FORWARD")
    def client_write(self, msg: Message) -> None:
        """A client's WRITE, or one a follower FORWARDed (`via` it)."""
        wid, value, via = msg.body["wid"], msg.body["value"], msg.src if msg.type == "FORWARD" else None
        if self.role == "leader" and (wid in self.reg.history or wid in self.uncommitted):
            # A duplicate (the network delivered it twice): every write carries the client's id, applied once.
            self.lab.emit("duplicate", node=self.id, wid=wid)
            if not self.quorum:
                self.lab.witness("acknowledged", wid=wid, leader=self.id)  # already stored here: answer again
            elif wid not in self.uncommitted:
                self.uncommitted.append(wid)  # answer again once a majority holds it
                self.try_commit()
        elif self.role == "leader":
            self.accept_write(wid, value)
        elif via is None and self.role == "follower" and self.leader:
            self.lab.emit("forward", wid=wid, node=self.id, leader=self.leader)
            self.send(self.leader, "FORWARD", wid=wid, value=value)
        else:
            why = "knows no leader" if via is None else "is no longer the leader"
            self.lab.witness("write-refused", wid=wid, node=self.id, why=f"{self.id} {why}")

    def accept_write(self, wid: int, value: int) -> None:
        stamp = [self.gen, self.reg.stamp[1] + 1]
        self.store(Register(value, wid, stamp, self.gen, self.id, [*self.reg.history, wid]), "write")
        self.tell_followers("REPLICATE")
        if self.quorum:
            self.uncommitted.append(wid)  # acknowledged once a majority stores it (never, if I step down first)
            self.try_commit()
        else:
            self.lab.witness("acknowledged", wid=wid, leader=self.id)  # stored here: good enough without a quorum

    def try_commit(self) -> None:
        for wid in list(self.uncommitted):
            # (a query, not bookkeeping: the stamp a repeated write got in an earlier tenure is known only there)
            stamp = self.lab.writes[wid].stamp
            stored = 1 + sum(1 for s in self.match.values() if s >= stamp)
            if stored >= MAJORITY:
                self.uncommitted.remove(wid)
                self.lab.witness("acknowledged", wid=wid, leader=self.id)

    @on("ACK")
    def stored_by(self, msg: Message) -> None:
        if self.role == "leader" and msg.body["gen"] == self.generation:
            self.heard_from[msg.src] = self.now
            self.match[msg.src] = max(self.match.get(msg.src, [0, 0]), msg.body["stamp"])
            self.try_commit()

    # -- following ----------------------------------------------------------------------
    @on("HEARTBEAT", "REPLICATE")
    def from_leader(self, msg: Message) -> None:
        """A HEARTBEAT or REPLICATE from a node that believes it leads."""
        src, body = msg.src, msg.body
        gen = body["gen"] or 0
        newer = gen > self.gen
        if self.lab.generations:
            if gen < self.gen:
                # Fencing: an older generation is rejected, and told so.
                self.lab.emit("reject", node=self.id, src=src, gen=gen, mine=self.gen)
                self.send(src, "REJECT", gen=self.gen, leader=self.leader)
                return
            self.newer_generation(gen, src, f"{src} leads generation {gen}", src)
        if self.role == "leader":
            if rank(src) < rank(self.id):
                return  # a rival leader of my generation with a lower id: it will yield to me
            self.step_down(f"{src} also leads and has a higher id", src)
        elif (self.leader not in (None, src) and rank(src) < rank(self.leader) and self.heard_at is not None
              and self.now - self.heard_at < SUSPECT_AFTER and not newer):
            return  # I follow a live leader with a higher id
        self.follow(src, body)
        self.adopt(body)
        if self.quorum:
            self.send(src, "ACK", gen=self.generation, stamp=list(self.reg.stamp))

    def follow(self, leader: str, body: dict) -> None:
        self.lab.witness("accepted", node=self.id, leader=leader, gen=body["gen"], tenure=body["tenure"])
        if self.role != "follower" or self.leader != leader:
            self.role, self.leader = "follower", leader
            self.cancel("election")
            self.lab.emit("follow", node=self.id, leader=leader, gen=self.generation)
        self.heard_at = self.now
        self.watch()

    def adopt(self, body: dict) -> None:
        """Copy the leader's register.  From a new leader (or generation) its copy
        wins whatever I hold; from the same leader only a newer write counts
        (messages may arrive out of order)."""
        reg = self.reg
        same_leader = [body["gen"] or 0, body["leader"]] == [reg.gen, reg.by]
        if body["wid"] == reg.wid or (same_leader and body["stamp"] <= reg.stamp):
            return
        self.store(Register(body["value"], body["wid"], list(body["stamp"]), body["gen"] or 0, body["leader"],
                            list(body["history"])), f"copied from {body['leader']}")

    @on("REJECT")
    def rejected(self, msg: Message) -> None:
        gen = msg.body["gen"]
        self.newer_generation(gen, msg.src, f"rejected by {msg.src}: it is in generation {gen}", msg.body["leader"])

    def newer_generation(self, gen: int, src: str, why: str, new_leader: str | None) -> None:
        """`src` is in a newer generation: adopt it; a leader of an older one is fenced off and steps down."""
        if gen > self.gen:
            self.set_generation(gen)
            if self.role == "leader":
                self.step_down(why, new_leader)
                self.lab.witness("fenced", node=self.id, by=src, gen=gen)

    # -- quorum elections ---------------------------------------------------------------
    def ask_prevotes(self) -> None:
        """Would you vote for me in generation gen+1?  Nothing changes on disk yet."""
        self.role, self.phase, self.votes = "candidate", "pre-vote", [self.id]  # phase: pre-vote, then vote
        self.lab.emit("candidate", node=self.id, phase="pre-vote", gen=self.gen + 1)
        for other in self.others():
            self.send(other, "PRE-VOTE", gen=self.gen + 1, stamp=list(self.reg.stamp))
        self.after(VOTE_WAIT + self.rng.random() * VOTE_WAIT, self.no_majority, key="election")

    def no_majority(self) -> None:
        if self.role == "candidate":
            self.ask_prevotes()  # no majority in time: try again

    @on("PRE-VOTE")
    def prevote_asked(self, msg: Message) -> None:
        body = msg.body
        leader_alive = self.role == "leader" or (self.heard_at is not None and self.now - self.heard_at < LEADER_ALIVE)
        yes = body["gen"] > self.gen and not leader_alive and body["stamp"] >= self.reg.stamp
        self.send(msg.src, "PRE-VOTE-REPLY", gen=body["gen"], granted=yes)

    def start_vote(self) -> None:
        self.set_generation(self.gen + 1)  # the new generation is on disk before anyone is asked
        self.disk["voted"] = [self.gen, self.id]
        self.phase, self.votes = "vote", [self.id]
        self.lab.emit("candidate", node=self.id, phase="vote", gen=self.gen)
        for other in self.others():
            self.send(other, "VOTE", gen=self.gen, stamp=list(self.reg.stamp))

    @on("VOTE")
    def vote_asked(self, msg: Message) -> None:
        src, gen = msg.src, msg.body["gen"]
        if gen > self.gen and self.role == "candidate":
            self.role = "follower"  # someone runs in a newer generation
        self.newer_generation(gen, src, f"{src} runs for generation {gen}", None)
        voted = self.disk.get("voted", [0, None])
        free = voted[0] < gen or voted[1] == src
        yes = gen == self.gen and free and msg.body["stamp"] >= self.reg.stamp
        if yes:
            self.disk["voted"] = [gen, src]  # one vote per generation, remembered on disk
            self.watch()
        self.send(src, "VOTE-REPLY", gen=gen, granted=yes)

    @on("PRE-VOTE-REPLY", "VOTE-REPLY")
    def vote_reply(self, msg: Message) -> None:
        src, kind, body = msg.src, msg.type, msg.body
        if self.role != "candidate" or not body["granted"] or src in self.votes:
            return
        if kind == "PRE-VOTE-REPLY" and self.phase == "pre-vote" and body["gen"] == self.gen + 1:
            self.votes.append(src)
            if len(self.votes) >= MAJORITY:
                self.start_vote()
        elif kind == "VOTE-REPLY" and self.phase == "vote" and body["gen"] == self.gen:
            self.votes.append(src)
            if len(self.votes) >= MAJORITY:
                self.become_leader(f"won {len(self.votes)} of {len(self.lab.nodes)} votes")


@dataclass
class Write:
    """A client's write as the lab follows it (bookkeeping, not protocol).  It remembers the write it replaced:
    an acknowledged write is lost once no node's register has it in its history."""

    id: int
    node: str | None  # the node the client sent it to
    value: int
    leader: str | None = None  # the leader that applied it ...
    gen: int | None = None  # ... in this generation
    stamp: list | None = None
    prev: int | None = None  # the write it replaced on that leader's register
    client: str = "waiting"  # what the client was told: waiting, ok, rejected, failed
    why: str = ""


class SplitBrain(Lab):
    slug = "split-brain"
    title = "Split brain"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    INVARIANTS = {
        "single-writer": ("generation", "quorum"),
        "stale-leader-fenced": ("generation", "quorum"),
        "no-lost-write": ("quorum",),
    }
    PARAMS = (
        Param("mode", "naive", "How the cluster copes with a partition: naive (each side elects its own leader), "
              "generation (generation numbers fence a stale leader), quorum (a leader and a write need a majority).",
              choices=("naive", "generation", "quorum")),
    )

    def setup(self) -> None:
        self.mode = self.params["mode"]
        self.generations = self.mode != "naive"
        self.writes: dict[int, Write] = {0: Write(0, None, 0, FIRST_LEADER, client="ok", why="initial value")}
        self.unlost: dict[int, bool] = {0: True}  # acknowledged writes not (yet) lost
        self.tenures: list[dict] = []
        self.seen: dict[str, list] = {}  # node -> the newest leadership it accepted (forgotten in a crash)
        self.metrics.update({"writes": 0, "acknowledged": 0, "rejected": 0, "lost": 0, "elections": 0,
                             "leaders_now": 1, "most_leaders": 1})
        for i in range(1, 6):
            self.add_node(Replica(self, f"n{i}"))
        self.nodes[FIRST_LEADER].become_leader("initial leader")
        self.add_check("single-writer", "Two leaders never accept writes in the same generation (naive mode has no "
                       "generations, so any two leaders accepting writes at once count).")
        self.add_check("stale-leader-fenced", "No node accepts a request from a leader older than one it already "
                       "followed; a stale leader is rejected and steps down.")
        self.add_check("no-lost-write", "No acknowledged write is ever lost: it stays in the history of some "
                       "replica's register (with quorum, acknowledged means stored by a majority).")

    # -- leaderships (bookkeeping): each gets a running number, its tenure ----------------
    def next_tenure(self) -> int:
        """A node's query as it takes the lead: the number of its leadership (for the checks and the page)."""
        return len(self.tenures) + 1

    @observe("leader", "step-down")
    def leadership(self, event: dict) -> None:
        node = event["node"]
        if event["kind"] == "leader":
            self.seen[node] = self.key(event["gen"], event["tenure"])
            self.tenures.append({"n": event["tenure"], "leader": node, "gen": event["gen"],
                                 "from": event["t"], "to": None, "writes": 0, "end": ""})
            self.metrics["elections"] = event["tenure"] - 1  # (the initial leader was not elected)
        else:
            self.tenures[self.nodes[node].tenure - 1].update(to=event["t"], end=event["why"])
        now = sum(1 for n in self.nodes.values() if n.role == "leader")  # (a crashed node has no role)
        self.metrics["leaders_now"] = now
        self.metrics["most_leaders"] = max(self.metrics["most_leaders"], now)

    def key(self, gen: int | None, tenure: int) -> list:
        """How the checks order leaderships: by generation, or by time of election when there are none."""
        return [gen or 0, 0] if self.generations else [0, tenure]

    @observe("crash")
    def crashed(self, event: dict) -> None:
        node = self.nodes[event["node"]]
        self.seen.pop(node.id, None)
        if node.tenure and self.tenures[node.tenure - 1]["to"] is None:  # it was leading
            self.emit("step-down", node=node.id, gen=node.generation, why="crashed")

    # -- checks ------------------------------------------------------------------------
    @observe("accepted")
    def accepted_from(self, fact: dict) -> None:
        """A node accepts a request from a leader: was that leader stale?"""
        key, seen = self.key(fact["gen"], fact["tenure"]), self.seen.get(fact["node"], [0, 0])
        if key < seen:
            self.fail("stale-leader-fenced", f"{fact['node']} accepted a request from stale leader {fact['leader']} "
                      f"(leadership #{fact['tenure']}) after following a newer one")
        self.seen[fact["node"]] = max(seen, key)

    @observe("fenced")
    def fenced(self, fact: dict) -> None:
        self.holds("stale-leader-fenced", f"{fact['node']} learned generation {fact['gen']} from {fact['by']} and "
                   f"stepped down at {self.now / 1000:.2f}s")

    @observe("acknowledged")
    def acknowledged(self, fact: dict) -> None:
        w, leader = self.writes[fact["wid"]], self.nodes[fact["leader"]]
        if w.client != "waiting":
            return  # the client gave up already
        w.client, w.why = "ok", f"acknowledged by {leader.id}"
        self.unlost[w.id] = True
        self.count("acknowledged")
        self.tenures[leader.tenure - 1]["writes"] += 1
        self.emit("write-ok", wid=w.id, leader=leader.id, gen=leader.generation, value=w.value)
        when = f"in generation {leader.gen}" if self.generations else "at once (no generations)"
        for other in self.nodes.values():
            if (other is not leader and other.role == "leader" and other.gen == leader.gen
                    and self.tenures[other.tenure - 1]["writes"]):
                self.fail("single-writer", f"{other.id} and {leader.id} both accepted writes {when}")

    @observe("stored")
    def register_changed(self, fact: dict) -> None:
        node, old, new, why = self.nodes[fact["node"]], fact["old"], fact["new"], fact["why"]
        if why == "write":  # a leader applied a client's write
            w = self.writes[new.wid]
            w.leader, w.gen, w.stamp, w.prev = node.id, node.generation, new.stamp, old.wid
        self.emit("apply", node=node.id, wid=new.wid, value=new.value, why=why)
        if old.wid in self.branch(new.wid):
            return
        # A divergent branch is thrown away on this node: an acknowledged write no node holds any more is lost.
        self.emit("overwrite", node=node.id, dropped=old.wid, value=old.value, by=new.wid)
        held = self.held()
        for w in [self.writes[wid] for wid in self.unlost if wid not in held]:
            del self.unlost[w.id]
            self.count("lost")
            self.emit("write-lost", wid=w.id, value=w.value, leader=w.leader, on=node.id)
            self.fail("no-lost-write", f"acknowledged write w{w.id} (value {w.value} via {w.leader}) "
                      f"was overwritten when {node.id} copied another leader's register")

    def branch(self, wid: int | None) -> dict[int, bool]:
        """The write `wid` and every write before it on its branch (each remembers the one it replaced)."""
        branch: dict[int, bool] = {}
        while wid is not None and wid not in branch:
            branch[wid] = True
            wid = self.writes[wid].prev
        return branch

    def held(self) -> set[int]:
        """Every write still in the history of some node's register (a crashed node's register is on disk)."""
        return {wid for node in self.nodes.values() for wid in self.branch(node.reg.wid)}

    # -- the client's side of a write -----------------------------------------------------
    @observe("forward")
    def forwarded(self, event: dict) -> None:
        self.writes[event["wid"]].why = f"forwarded by {event['node']} to {event['leader']}"

    @observe("write-refused")
    def write_rejected(self, fact: dict) -> None:
        w = self.writes[fact["wid"]]
        if w.client == "waiting":
            w.client, w.why = "rejected", fact["why"]
            self.count("rejected")
            self.emit("write-rejected", wid=w.id, node=fact["node"], why=w.why)

    def client_gives_up(self, wid: int) -> None:
        w = self.writes[wid]
        if w.client == "waiting":
            w.client, w.why = "failed", f"no answer within {WRITE_TIMEOUT} ms"
            self.emit("write-failed", wid=wid, why=w.why)

    @action("write", Arg("node"), Arg("value", "int", lo=0, hi=9999), group="request", when=not_down,
            refuse="{node} is down; write through a running node",
            help="A client writes this value through the given node (a follower forwards it to its leader).")
    def do_write(self, node_id: str, value: int) -> None:
        wid = len(self.writes)
        self.count("writes")
        self.writes[wid] = Write(wid, node_id, value)
        self.emit("write", wid=wid, node=node_id, value=value)
        self.nodes[node_id].receive(Message(0, "client", node_id, "WRITE", {"wid": wid, "value": value},
                                            self.now, self.now))
        self.sim.after(WRITE_TIMEOUT, self.client_gives_up, wid)

    # -- the page -------------------------------------------------------------------------
    def view(self) -> dict:
        held = self.held()
        writes = []
        for w in list(self.writes.values())[1:][-14:]:  # the latest, not the initial value
            if w.leader is None:
                outcome = "pending" if w.client == "waiting" else "rejected"
            else:
                outcome = "kept" if w.id in held else "overwritten"
            writes.append({"id": f"w{w.id}", "node": w.node, "leader": w.leader, "value": w.value, "gen": w.gen,
                           "client": w.client, "why": w.why, "outcome": outcome,
                           "lost": w.client == "ok" and outcome == "overwritten"})
        sides = []
        for i, side in enumerate(self.net.partition or [list(self.nodes)]):
            up = [self.nodes[n] for n in side if self.nodes[n].status != "down"]
            sides.append({"n": i + 1, "nodes": side, "leaders": self.leaders(up),
                          "values": sorted({n.reg.value for n in up}), "majority": len(side) >= MAJORITY})
        racks = []
        for name, members in RACKS.items():
            nodes = [self.nodes[n] for n in members]
            rows = [{"id": n.id, "status": n.status, "role": n.role or "down", "gen": n.generation,
                     "value": n.reg.value, "leader": n.leader if n.status != "down" else None} for n in nodes]
            racks.append({"name": name, "leaders": self.leaders(nodes), "nodes": rows})
        return {"mode": self.mode, "majority": MAJORITY, "racks": racks, "sides": sides, "writes": writes,
                "leaderships": self.tenures[-6:],
                "edges": [["n1", "n2"], ["n3", "n4"], ["n4", "n5"], ["n3", "n5"], ["n2", "n3"]]}

    @staticmethod
    def leaders(nodes: list[Replica]) -> list[dict]:
        return [{"id": n.id, "gen": n.generation} for n in nodes if n.role == "leader"]  # (a crashed node has no role)
