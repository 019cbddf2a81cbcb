"""Hinted handoff: a leaderless store keeps taking writes while a replica is down.

Six nodes n1..n6 sit on a hash ring (consistent hashing, as in Dynamo).  A
key is stored on N = 3 nodes: the first three met walking clockwise from the
key's position, its *preferred replicas*.  Any node can coordinate a request:

Write (coordinator):
  * send the value, with a version number, to the N preferred replicas;
  * a replica that does not answer within ACK_WAIT is suspected down;
  * sloppy quorum: instead of giving up on it, send the value to the next
    healthy node along the ring, a *stand-in*, with a HINT naming the replica
    it was meant for;
  * reply to the client once W nodes have stored it (stand-ins count).

Stand-in:
  * keeps the hinted value apart from its own data, on disk, with the time it
    arrived; a hint older than the hint TTL is thrown away;
  * hands the hint off: when the intended replica says HELLO after a restart
    (and on a timer, in case it missed that), it sends the value over and
    deletes the hint once the replica acknowledges.

Read (coordinator): ask the preferred replicas, answer with the newest of
the first R replies, then write the newest back to any replica that answered
with an older version (read repair).  An `anti-entropy` round compares every
replica's versions with the other replicas of the same keys and repairs them.

With `quorum=strict` there are no stand-ins and no hints: a write succeeds
only if W preferred replicas take it, and a replica that was down stays stale
until read repair or anti-entropy reaches it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from .kernel import Arg, Lab, Node, Param, SimError, action, on

N = 3  # replicas per key
RING = ("n1", "n2", "n3", "n4", "n5", "n6")
ACK_WAIT = 150  # ms a coordinator waits for a replica before suspecting it
CLIENT_WAIT = 800  # ms the client waits for a coordinator before trying the next node
HANDOFF_EVERY = 1000  # ms between a stand-in's attempts to hand its hints off
SETTLE = 1000  # ms the checks give a restarted replica (and a fresh write) before judging
KEYS = ("alice", "bob", "carol", "dave")  # the background traffic: bank balances


def token(node_id: str) -> int:
    """Where a node sits on the ring (degrees): n1 at 0, n2 at 60, ..."""
    return RING.index(node_id) * 360 // len(RING)


def position(key: str) -> int:
    """Where a key falls on the ring (degrees)."""
    return zlib.crc32(key.encode()) % 360


def walk(key: str) -> list[str]:
    """Every node, clockwise from the key's position: the first N are its preferred replicas."""
    pos = position(key)
    first = next((i for i, n in enumerate(RING) if token(n) >= pos), 0)
    return [RING[(first + i) % len(RING)] for i in range(len(RING))]


def preferred(key: str) -> list[str]:
    return walk(key)[:N]


@dataclass
class Hint:
    """A write a stand-in keeps, on disk, for a replica that was down."""

    id: int
    intended: str  # the replica the value was meant for
    key: str
    value: str
    version: int
    stored: float  # when it arrived (it expires hint_ttl later)


@dataclass
class WriteOp:
    op: int
    client: str
    req: int
    key: str
    value: str
    version: int
    acks: list[str] = field(default_factory=list)
    waiting: dict[str, str | None] = field(default_factory=dict)  # node -> the replica it stands in for
    tried: list[str] = field(default_factory=list)
    replied: bool = False


@dataclass
class ReadOp:
    op: int
    client: str
    req: int
    key: str
    waiting: list[str]
    answers: dict[str, dict] = field(default_factory=dict)  # node -> {"value", "version"}
    replied: bool = False


class Replica(Node):
    """A storage node: its own data, the hints it keeps for others, and the
    coordinator role for the requests a client sends it."""

    def boot(self) -> None:
        self.data: dict = self.disk.setdefault("data", {})  # key -> {"value", "version"}
        self.hints: list[Hint] = self.disk.setdefault("hints", [])
        self.suspects: list[str] = []  # nodes this one believes are down
        self.ops: dict[int, WriteOp | ReadOp] = {}  # requests this node coordinates
        self.next_op = 1
        self.up_since = self.now
        self.update_role()
        if self.restarted:
            # Back from a crash: tell everyone, so stand-ins hand their hints over.
            for other in [*RING, "client"]:
                if other != self.id:
                    self.send(other, "HELLO")
        if self.hints:
            self.after(HANDOFF_EVERY, self.handoff_round, key="handoff")

    def update_role(self) -> None:
        self.role = "stand-in" if self.hints else "replica"

    def on_message(self, msg) -> None:
        self.trust(msg.src)  # anyone who talks to us is up
        super().on_message(msg)

    def suspect(self, node: str) -> None:
        if node not in self.suspects:
            self.suspects.append(node)
            self.lab.emit("suspect", node=self.id, peer=node)

    def trust(self, node: str) -> None:
        if node in self.suspects:
            self.suspects.remove(node)

    # -- storing ---------------------------------------------------------------------
    def store(self, key: str, value: str, version: int) -> bool:
        """Keep the newer version (last write wins by version number)."""
        have = self.data.get(key)
        if have and have["version"] >= version:
            return False
        self.data[key] = {"value": value, "version": version}
        return True

    def keep_hint(self, intended: str, key: str, value: str, version: int) -> None:
        self.lab.hint_counter += 1
        hint = Hint(self.lab.hint_counter, intended, key, value, version, round(self.now, 3))
        self.hints.append(hint)
        self.update_role()
        self.lab.count("hints_stored")
        self.lab.emit("hint-stored", node=self.id, intended=intended, key=key, version=version, hint=hint.id)
        if not self.pending("handoff"):
            self.after(HANDOFF_EVERY, self.handoff_round, key="handoff")

    @on("STORE")
    def store_asked(self, msg) -> None:
        b = msg.body
        if b.get("intended"):
            self.keep_hint(b["intended"], b["key"], b["value"], b["version"])
        elif self.store(b["key"], b["value"], b["version"]):
            self.lab.emit("store", node=self.id, key=b["key"], version=b["version"])
        self.send(msg.src, "STORED", op=b["op"])

    @on("READ")
    def read_asked(self, msg) -> None:
        have = self.data.get(msg.body["key"]) or {"value": None, "version": 0}
        self.send(msg.src, "VALUE", op=msg.body["op"], key=msg.body["key"], value=have["value"],
                  version=have["version"])

    @on("HINT", "REPAIR")
    def newer_copy(self, msg) -> None:
        b = msg.body
        if self.store(b["key"], b["value"], b["version"]):
            self.lab.emit("repaired" if msg.type == "REPAIR" else "handed-off", node=self.id, key=b["key"],
                          version=b["version"], by=msg.src)
        if msg.type == "HINT":
            self.send(msg.src, "HINT-ACK", hint=b["hint"])

    # -- anti-entropy: compare versions key by key -------------------------------------
    @on("DIGEST")
    def digest(self, msg) -> None:
        behind = []
        for key, version in msg.body["versions"]:
            have = self.data.get(key)
            mine = have["version"] if have else 0
            if mine > version:
                self.send(msg.src, "REPAIR", key=key, value=have["value"], version=mine)
            elif mine < version:
                behind.append(key)
        if behind:
            self.send(msg.src, "WANT", keys=behind)

    @on("WANT")
    def want(self, msg) -> None:
        for key in msg.body["keys"]:
            have = self.data[key]
            self.send(msg.src, "REPAIR", key=key, value=have["value"], version=have["version"])

    # -- coordinating a write ---------------------------------------------------------
    @on("PUT")
    def coordinate_write(self, msg) -> None:
        b = msg.body
        op = WriteOp(self.next_op, msg.src, b["req"], b["key"], b["value"], b["version"])
        self.next_op += 1
        self.ops[op.op] = op
        for node, intended in self.write_targets(op.key):
            self.store_at(op, node, intended)
        self.settle_write(op)

    def write_targets(self, key: str) -> list[tuple[str, str | None]]:
        """The N nodes to write to, each with the replica it stands in for (or None)."""
        wanted = preferred(key)
        if self.lab.quorum == "strict":
            return [(n, None) for n in wanted if n not in self.suspects]
        skipped = [n for n in wanted if n in self.suspects]
        chosen = []
        # Nodes I believe up first; if too few, suspects too (a suspicion may be wrong).
        order = [n for n in walk(key) if n not in self.suspects] + [n for n in walk(key) if n in self.suspects]
        for node in order:
            if len(chosen) == N:
                break
            if node in wanted:
                chosen.append((node, None))
                if node in skipped:  # tried in person after all
                    skipped.remove(node)
            elif skipped:
                chosen.append((node, skipped.pop(0)))
        # A suspect tried in person after all needs no stand-in: give its stand-in to a replica that
        # is still missing, so every preferred replica left out has a hint naming it.
        missing = [n for n in wanted if all(n != node for node, intended in chosen if intended is None)]
        stand_ins = [node for node, intended in chosen if intended is not None]
        return [(n, None) for n, intended in chosen if intended is None] + list(zip(stand_ins, missing))

    def store_at(self, op: WriteOp, node: str, intended: str | None) -> None:
        op.tried.append(node)
        if node == self.id:  # my own copy needs no message
            if intended:
                self.keep_hint(intended, op.key, op.value, op.version)
            elif self.store(op.key, op.value, op.version):
                self.lab.emit("store", node=self.id, key=op.key, version=op.version)
            op.acks.append(node)
            return
        op.waiting[node] = intended
        self.send(node, "STORE", op=op.op, key=op.key, value=op.value, version=op.version, intended=intended)
        self.after(ACK_WAIT, self.store_timed_out, op.op, node, key=("store", op.op, node))

    @on("STORED")
    def stored(self, msg) -> None:
        node, op = msg.src, self.ops.get(msg.body["op"])
        if isinstance(op, WriteOp) and node in op.waiting:
            del op.waiting[node]
            self.cancel(("store", op.op, node))
            op.acks.append(node)
            self.settle_write(op)

    def store_timed_out(self, op_id: int, node: str) -> None:
        op = self.ops.get(op_id)
        if not isinstance(op, WriteOp) or node not in op.waiting:
            return
        intended = op.waiting.pop(node)
        self.suspect(node)
        if self.lab.quorum == "sloppy":
            # Sloppy quorum: the next healthy node along the ring takes the write, with a hint.
            left = [n for n in walk(op.key) if n not in op.tried]
            trusted = [n for n in left if n not in self.suspects]
            if trusted or left:  # a node believed up if any, else a suspect
                self.store_at(op, (trusted or left)[0], intended or node)
            elif (intended or node) != self.id:
                # Nobody is left to stand in: the coordinator keeps the hint itself (as Cassandra does).
                self.keep_hint(intended or node, op.key, op.value, op.version)
        self.settle_write(op)

    def settle_write(self, op: WriteOp) -> None:
        if not op.replied and len(op.acks) >= self.lab.w:
            op.replied = True
            self.send(op.client, "PUT-OK", req=op.req, acks=",".join(op.acks))
        if not op.waiting:
            if not op.replied:
                op.replied = True
                self.send(op.client, "PUT-FAIL", req=op.req, acks=len(op.acks))
            self.ops.pop(op.op, None)

    # -- coordinating a read (with read repair) ---------------------------------------
    @on("GET")
    def coordinate_read(self, msg) -> None:
        key = msg.body["key"]
        asked = [n for n in preferred(key) if n not in self.suspects]
        op = ReadOp(self.next_op, msg.src, msg.body["req"], key, list(asked))
        self.next_op += 1
        self.ops[op.op] = op
        for node in asked:
            if node == self.id:
                have = self.data.get(key) or {"value": None, "version": 0}
                self.answer(op.op, node, have["value"], have["version"])
            else:
                self.send(node, "READ", op=op.op, key=key)
        if op.op in self.ops:
            self.after(ACK_WAIT, self.read_timed_out, op.op, key=("read", op.op))
            self.settle_read(op, timed_out=False)

    @on("VALUE")
    def value(self, msg) -> None:
        self.answer(msg.body["op"], msg.src, msg.body["value"], msg.body["version"])

    def answer(self, op_id: int, node: str, value, version: int) -> None:
        op = self.ops.get(op_id)
        if not isinstance(op, ReadOp) or node not in op.waiting:
            return
        op.waiting.remove(node)
        op.answers[node] = {"value": value, "version": version}
        self.settle_read(op, timed_out=False)

    def read_timed_out(self, op_id: int) -> None:
        op = self.ops.get(op_id)
        if op:
            self.settle_read(op, timed_out=True)

    def settle_read(self, op: ReadOp, timed_out: bool) -> None:
        answers = op.answers
        if not op.replied and len(answers) >= self.lab.r:
            op.replied = True
            newest = max(answers.values(), key=lambda a: a["version"])
            self.send(op.client, "GET-OK", req=op.req, value=newest["value"], version=newest["version"],
                      replies=len(answers))
        if op.waiting and not timed_out:
            return
        for node in op.waiting:
            self.suspect(node)
        if not op.replied:
            op.replied = True
            self.send(op.client, "GET-FAIL", req=op.req, replies=len(answers))
        if answers:  # read repair: bring every replica that answered up to the newest version
            newest = max(answers.values(), key=lambda a: a["version"])
            for node, answer in answers.items():
                if answer["version"] < newest["version"]:
                    self.lab.count("read_repairs")
                    self.lab.emit("read-repair", coordinator=self.id, node=node, key=op.key,
                                  have=answer["version"], version=newest["version"])
                    if node == self.id:
                        self.store(op.key, newest["value"], newest["version"])
                    else:
                        self.send(node, "REPAIR", key=op.key, value=newest["value"], version=newest["version"])
        self.cancel(("read", op.op))
        self.ops.pop(op.op, None)

    # -- handing hints off ----------------------------------------------------------------
    @on("HELLO")
    def hello(self, msg) -> None:
        self.hand_off(only=msg.src)

    def handoff_round(self) -> None:
        self.hand_off()
        if self.hints:
            self.after(HANDOFF_EVERY, self.handoff_round, key="handoff")

    def hand_off(self, only: str | None = None) -> None:
        """Drop expired hints, then send the rest to their replicas.  A replica
        believed down gets only one hint, as a probe."""
        for hint in list(self.hints):
            if self.now - hint.stored > self.lab.hint_ttl:
                self.hints.remove(hint)
                self.lab.hint_gone(self, hint, "expired")
        probed: list[str] = []
        for hint in self.hints:
            replica = hint.intended
            if (only and replica != only) or replica in probed:
                continue
            if replica in self.suspects:
                probed.append(replica)
            self.send(replica, "HINT", hint=hint.id, key=hint.key, value=hint.value, version=hint.version)
            self.after(ACK_WAIT, self.suspect, replica, key=("hint-wait", replica))
        self.update_role()

    @on("HINT-ACK")
    def hint_delivered(self, msg) -> None:
        self.cancel(("hint-wait", msg.src))
        hint = next((h for h in self.hints if h.id == msg.body["hint"]), None)
        if hint:
            self.hints.remove(hint)
            self.lab.hint_gone(self, hint, "delivered")
            self.update_role()

    def view(self) -> dict:
        hints = f"{len(self.hints)} hint{'s' if len(self.hints) != 1 else ''}"
        if self.status == "down":
            return {"label": f"down · {hints} on disk" if self.hints else "down"}
        label = f"{len(self.data)} key{'s' if len(self.data) != 1 else ''}" + (f" · {hints}" if self.hints else "")
        return {"label": label, "hints": len(self.hints), "suspects": list(self.suspects)}


@dataclass
class Request:
    """A client's request: where it was tried so far."""

    kind: str  # PUT or GET
    body: dict
    t: float
    tried: list[str] = field(default_factory=list)


class Client(Node):
    """Sends writes and reads to a coordinator: the key's first preferred
    replica, or the next node along the ring if that one does not answer, and
    so on around the whole ring (any live node may coordinate)."""

    def boot(self) -> None:
        self.role = "client"
        self.next_req = 1
        self.versions: dict[str, int] = {}
        self.suspects: list[str] = []
        self.requests: dict[int, Request] = {}
        if self.lab.params["rate"]:
            self.every(1000 / self.lab.params["rate"], self.background_write, key="tick")

    def background_write(self) -> None:
        key = KEYS[self.rng.randrange(len(KEYS))]
        self.ask("PUT", key, str(self.rng.randrange(10, 500)))

    def ask(self, kind: str, key: str, value: str | None = None) -> None:
        req = self.next_req
        self.next_req += 1
        body = {"key": key}
        if kind == "PUT":
            self.versions[key] = self.versions.get(key, 0) + 1
            body.update(value=value, version=self.versions[key])
        self.requests[req] = Request(kind, body, self.now)
        self.lab.count("writes" if kind == "PUT" else "reads")
        self.try_next(req)

    def try_next(self, req: int) -> None:
        request = self.requests[req]
        key = request.body["key"]
        order = [n for n in walk(key) if n not in self.suspects] + [n for n in walk(key) if n in self.suspects]
        left = [n for n in order if n not in request.tried]
        if not left:  # any node can coordinate: give up only when every one has been tried
            return self.finish(req, ok=False, why="no coordinator answered")
        coordinator = left[0]
        request.tried.append(coordinator)
        self.send(coordinator, request.kind, req=req, **request.body)
        self.after(CLIENT_WAIT, self.coordinator_silent, req, coordinator, key=("wait", req))

    def coordinator_silent(self, req: int, node: str) -> None:
        if req in self.requests:
            if node not in self.suspects:
                self.suspects.append(node)
            self.try_next(req)

    def on_message(self, msg) -> None:
        if msg.src in self.suspects:  # anyone who talks to me is up
            self.suspects.remove(msg.src)
        super().on_message(msg)

    @on("PUT-OK", "GET-OK", "PUT-FAIL", "GET-FAIL")
    def answered_by(self, msg) -> None:
        req = msg.body["req"]
        if req not in self.requests:
            return
        self.cancel(("wait", req))
        if msg.type in ("PUT-OK", "GET-OK"):
            self.finish(req, ok=True, coordinator=msg.src, answer=msg.body)
        else:
            self.finish(req, ok=False, why=f"{msg.src}: {msg.type}", coordinator=msg.src)

    def finish(self, req: int, ok: bool, why: str = "", coordinator: str = "", answer: dict | None = None) -> None:
        self.lab.request_done(self.requests.pop(req), ok, why, coordinator, answer or {})


class HintedHandoff(Lab):
    slug = "hinted-handoff"
    title = "Hinted handoff"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    # strict keeps no hints, so a replica that missed a write stays stale: replicas-converge is no invariant there
    INVARIANTS = {"replicas-converge": ("sloppy",), "writes-available": ("sloppy",)}
    PARAMS = (
        Param("quorum", "sloppy", "sloppy: stand-ins take writes for down replicas and keep hints; "
                                  "strict: only the preferred replicas, no hints.", choices=("sloppy", "strict")),
        Param("w", 2, "Write quorum W: acknowledgements needed before a write succeeds.", lo=1, hi=3),
        Param("r", 2, "Read quorum R: replies needed before a read answers.", lo=1, hi=3),
        Param("hint_ttl", 10_000, "How long (ms) a stand-in keeps a hint before discarding it.", lo=500, hi=600_000),
        Param("rate", 1, "Background writes per second (random keys alice, bob, carol, dave).", lo=0, hi=10),
    )
    FAULTS = ("crash", "restart", "pause", "resume", "partition", "cut", "heal", "delay", "loss", "slow",
              "drop-next", "duplicate-next")
    UNFAULTABLE = ("client",)

    def setup(self) -> None:
        self.quorum, self.w, self.r = self.params["quorum"], self.params["w"], self.params["r"]
        self.hint_ttl = self.params["hint_ttl"]
        self.hint_counter = 0
        self.disturbed_at = -1.0  # when a fault was last applied or removed
        self.latest: dict[str, dict] = {}  # key -> the latest acknowledged write {"value", "version", "at"}
        self.expired: dict[tuple[str, str], int] = {}  # (replica, key) -> newest version whose hint expired
        self.left_for_repair: set[tuple] = set()
        self.handoffs: list[dict] = []  # recent hints delivered or expired
        self.last_read: dict | None = None
        self.metrics.update({"writes": 0, "writes_failed": 0, "reads": 0, "stale_reads": 0, "hints_stored": 0,
                             "hints_delivered": 0, "hints_expired": 0, "read_repairs": 0,
                             "stale_after_expiry": 0})
        for node_id in RING:
            self.add_node(Replica(self, node_id))
        self.client = self.add_node(Client(self, "client"))
        self.add_check("replicas-converge", "Once a replica is back and its hints are handed off, it holds the "
                                            "latest acknowledged value of every key it replicates. A replica whose "
                                            "hint expired stays stale until read repair or anti-entropy (counted, "
                                            "not red); a strict quorum keeps no hints, so there a replica that "
                                            "missed a write stays stale and the check goes red.")
        self.add_check("writes-available", "While at least W nodes are up and the network is whole (no fault came "
                                           "or went during the write), every write is acknowledged.")
        self.every(250, self.audit)

    def after_fault(self, fault: str, node_id: str | None) -> None:
        self.disturbed_at = self.now

    # -- what the client saw -----------------------------------------------------------
    def request_done(self, request: Request, ok: bool, why: str, coordinator: str, answer: dict) -> None:
        body = request.body
        key = body["key"]
        ms = round(self.now - request.t, 3)
        if request.kind == "PUT":
            if ok:
                self.latest[key] = {"value": body["value"], "version": body["version"], "at": self.now}
                self.emit("write-ok", key=key, value=body["value"], version=body["version"], coordinator=coordinator,
                          acks=answer.get("acks", ""), ms=ms)
                return
            self.count("writes_failed")
            self.emit("write-failed", key=key, version=body["version"], why=why, ms=ms)
            up = [n for n in RING if self.nodes[n].status == "up"]
            whole = not self.net.partition and not any(not link.clean() for link in self.net.links.values()) \
                and not any(self.nodes[n].slow_ms for n in RING)
            calm = self.disturbed_at < request.t  # no fault came or went while it was under way
            if len(up) >= self.w and whole and calm:
                self.fail("writes-available", f"write {key} v{body['version']} failed with {len(up)} nodes up "
                                              f"(W={self.w}, quorum={self.quorum})")
            return
        latest = self.latest.get(key, {"version": 0, "value": None})
        stale = ok and answer["version"] < latest["version"]
        self.count("stale_reads", 1 if stale else 0)
        self.last_read = {"key": key, "ok": ok, "value": answer.get("value"), "version": answer.get("version", 0),
                          "latest": latest["version"], "stale": stale, "coordinator": coordinator}
        self.emit("read", key=key, ok=ok, value=answer.get("value"), version=answer.get("version", 0),
                  latest=latest["version"], stale=stale, ms=ms)

    def hint_gone(self, holder: Replica, hint: Hint, how: str) -> None:
        self.count(f"hints_{how}")
        if how == "expired":  # the replica stays stale for this version: read repair's job now
            slot = (hint.intended, hint.key)
            self.expired[slot] = max(self.expired.get(slot, 0), hint.version)
        self.handoffs = (self.handoffs + [{"holder": holder.id, "intended": hint.intended, "key": hint.key,
                                           "version": hint.version, "how": how, "at": round(self.now, 3)}])[-6:]
        self.emit(f"hint-{how}", node=holder.id, intended=hint.intended, key=hint.key, version=hint.version,
                  hint=hint.id)

    # -- the live check ------------------------------------------------------------------
    def pending_hints_for(self, node_id: str) -> int:
        return sum(1 for n in RING for h in self.nodes[n].hints if h.intended == node_id)

    def stale_replicas(self) -> list[tuple[str, str, int, int]]:
        """(key, replica, its version, latest) for every settled replica that is behind."""
        stale = []
        for key, latest in self.latest.items():
            if self.now - latest["at"] < SETTLE:
                continue
            for node_id in preferred(key):
                node = self.nodes[node_id]
                if node.status != "up" or self.now - node.up_since < SETTLE or self.pending_hints_for(node_id):
                    continue
                have = node.data.get(key, {}).get("version", 0)
                if have < latest["version"] <= self.expired.get((node_id, key), 0):
                    self.count_once(node_id, key, have, latest["version"])
                elif have < latest["version"]:
                    stale.append((key, node_id, have, latest["version"]))
        return stale

    def count_once(self, node_id: str, key: str, have: int, latest: int) -> None:
        """A settled replica is behind because its hint expired: expected, and shown, not red."""
        if (node_id, key, latest) not in self.left_for_repair:
            self.left_for_repair.add((node_id, key, latest))
            self.count("stale_after_expiry")
            self.emit("left-for-repair", node=node_id, key=key, version=have, latest=latest)

    def audit(self) -> None:
        stale = self.stale_replicas()
        if stale:
            key, node, have, want = stale[0]
            self.fail("replicas-converge", f"{node} holds {key} v{have}, the latest is v{want}"
                                           + (f" (+{len(stale) - 1} more)" if len(stale) > 1 else ""))
        else:
            expired = self.metrics["stale_after_expiry"]
            self.holds("replicas-converge", f"{len(self.latest)} keys, every settled replica up to date"
                       + (f" ({expired} left stale by an expired hint, for read repair or anti-entropy)"
                          if expired else ""))

    # -- actions ---------------------------------------------------------------------------
    @action("write", Arg("key", "text"), Arg("value", "text"), group="request",
            help="Client: write key = value (a new version) through a coordinator.")
    def do_write(self, key: str, value: str) -> None:
        self.client.ask("PUT", key, value)

    @action("read", Arg("key", "text"), group="request", help="Client: read a key (R replies, then read repair).")
    def do_read(self, key: str) -> None:
        self.client.ask("GET", key)

    @action("hint-ttl", Arg("ms", "ms", lo=100, hi=600_000), help="Set how long stand-ins keep hints.")
    def do_hint_ttl(self, ms: float) -> None:
        self.hint_ttl = ms
        self.emit("hint-ttl", ms=ms)

    @action("anti-entropy", help="Every live replica compares versions with the other replicas of its keys "
                                 "and repairs the older copies.")
    def do_anti_entropy(self) -> None:
        live = [n for n in RING if self.nodes[n].status == "up"]
        if len(live) < 2:
            raise SimError("anti-entropy needs at least two live replicas")
        self.count("anti_entropy_rounds")
        self.emit("anti-entropy", nodes=live)
        for node_id in live:
            node = self.nodes[node_id]
            peers: dict[str, list] = {}
            for key in sorted(node.data):
                for peer in preferred(key):
                    if peer != node_id:
                        peers.setdefault(peer, []).append([key, node.data[key]["version"]])
            for peer in RING:
                if peer in peers:
                    node.send(peer, "DIGEST", versions=peers[peer])

    # -- the page ----------------------------------------------------------------------------
    def view(self) -> dict:
        keys = []
        for key in sorted(self.latest)[:8]:
            latest = self.latest[key]
            replicas = []
            for node_id in preferred(key):
                node = self.nodes[node_id]
                have = node.data.get(key, {"value": None, "version": 0})
                replicas.append({"node": node_id, "value": have["value"], "version": have["version"],
                                 "stale": have["version"] < latest["version"], "status": node.status,
                                 "hinted": self.pending_hints_for_key(node_id, key)})
            keys.append({"key": key, "pos": position(key), "value": latest["value"], "version": latest["version"],
                         "replicas": replicas})
        hints = [{"holder": n, "intended": h.intended, "key": h.key, "version": h.version, "hint": h.id,
                  "expires_in": max(0, round(h.stored + self.hint_ttl - self.now))}
                 for n in RING for h in self.nodes[n].hints][:12]
        return {
            "edges": [[RING[i], RING[(i + 1) % len(RING)]] for i in range(len(RING))],
            "handoff": {"quorum": self.quorum, "n": N, "w": self.w, "r": self.r, "hint_ttl": self.hint_ttl,
                        "keys": keys, "hints": hints, "recent": self.handoffs, "last_read": self.last_read},
        }

    def pending_hints_for_key(self, node_id: str, key: str) -> bool:
        return any(h.intended == node_id and h.key == key for n in RING for h in self.nodes[n].hints)
