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

from .kernel import Arg, Lab, Node, Param, SimError, action, observe, on

N = 3  # replicas per key
RING = ("n1", "n2", "n3", "n4", "n5", "n6")
ACK_WAIT = 150  # ms a coordinator waits for a replica before suspecting it
CLIENT_WAIT = 800  # ms the client waits for a coordinator before trying the next node
HANDOFF_EVERY = 1000  # ms between a stand-in's attempts to hand its hints off
SETTLE = 1000  # ms the checks give a restarted replica (and a fresh write) before judging
KEYS = ("alice", "bob", "carol", "dave")  # the background traffic: bank balances
NOTHING = {"value": None, "version": 0}  # a key a replica never stored
TOKENS = {node: i * 360 // len(RING) for i, node in enumerate(RING)}  # where each node sits on the ring (degrees)


def position(key: str) -> int:
    """Where a key falls on the ring (degrees)."""
    return zlib.crc32(key.encode()) % 360


def walk(key: str) -> list[str]:
    """Every node, clockwise from the key's position: the first N are its preferred replicas."""
    pos = position(key)
    first = next((i for i, n in enumerate(RING) if TOKENS[n] >= pos), 0)
    return [RING[(first + i) % len(RING)] for i in range(len(RING))]


def preferred(key: str) -> list[str]:
    return walk(key)[:N]


def trusted_first(nodes: list[str], suspects: list[str]) -> list[str]:
    """The nodes believed up first, then the suspects (a suspicion may be wrong)."""
    return sorted(nodes, key=lambda node: node in suspects)


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
        if self.restarted:  # back from a crash: tell everyone, so stand-ins hand their hints over
            for other in [*(n for n in RING if n != self.id), "client"]:
                self.send(other, "HELLO")
        if self.hints:
            self.after(HANDOFF_EVERY, self.handoff_round, key="handoff")

    def update_role(self) -> None:
        self.role = "stand-in" if self.hints else "replica"

    def on_message(self, msg) -> None:
        if msg.src in self.suspects:  # anyone who talks to us is up
            self.suspects.remove(msg.src)
        super().on_message(msg)

    def suspect(self, node: str) -> None:
        if node not in self.suspects:
            self.suspects.append(node)
            self.lab.emit("suspect", node=self.id, peer=node)

    # -- storing ---------------------------------------------------------------------
    def store(self, key: str, value: str, version: int) -> bool:
        """Keep the newer version (last write wins by version number)."""
        if self.data.get(key, NOTHING)["version"] >= version:
            return False
        self.data[key] = {"value": value, "version": version}
        return True

    def take(self, key: str, value: str, version: int, intended: str | None) -> None:
        """Store a copy, or keep it apart as a hint if it was meant for another replica."""
        if not intended:
            if self.store(key, value, version):
                self.lab.emit("store", node=self.id, key=key, version=version)
            return
        hint = Hint(self.lab.next_hint_number(), intended, key, value, version, round(self.now, 3))
        self.hints.append(hint)
        self.update_role()
        self.lab.emit("hint-stored", node=self.id, intended=intended, key=key, version=version, hint=hint.id)
        if not self.pending("handoff"):
            self.after(HANDOFF_EVERY, self.handoff_round, key="handoff")

    def drop_hint(self, hint: Hint, how: str) -> None:
        self.hints.remove(hint)
        self.update_role()
        self.lab.emit(f"hint-{how}", node=self.id, intended=hint.intended, key=hint.key, version=hint.version,
                      hint=hint.id)

    @on("STORE")
    def store_asked(self, msg) -> None:
        b = msg.body
        self.take(b["key"], b["value"], b["version"], b["intended"])
        self.send(msg.src, "STORED", op=b["op"])

    @on("READ")
    def read_asked(self, msg) -> None:
        have = self.data.get(msg.body["key"]) or NOTHING
        self.send(msg.src, "VALUE", op=msg.body["op"], key=msg.body["key"], **have)

    @on("HINT", "REPAIR")
    def newer_copy(self, msg) -> None:
        b = msg.body
        if self.store(b["key"], b["value"], b["version"]):
            self.lab.emit("repaired" if msg.type == "REPAIR" else "handed-off", node=self.id, key=b["key"],
                          version=b["version"], by=msg.src)
        if msg.type == "HINT":
            self.send(msg.src, "HINT-ACK", hint=b["hint"])

    # -- anti-entropy: compare versions key by key -------------------------------------
    def anti_entropy(self) -> None:
        """Send every other replica of my keys the versions I hold of them."""
        digests: dict[str, list] = {}
        for key in sorted(self.data):
            for peer in preferred(key):
                if peer != self.id:
                    digests.setdefault(peer, []).append([key, self.data[key]["version"]])
        for peer, versions in sorted(digests.items()):
            self.send(peer, "DIGEST", versions=versions)

    @on("DIGEST")
    def digest(self, msg) -> None:
        behind = []
        for key, version in msg.body["versions"]:
            have = self.data.get(key) or NOTHING
            if have["version"] > version:
                self.send(msg.src, "REPAIR", key=key, **have)
            elif have["version"] < version:
                behind.append(key)
        if behind:
            self.send(msg.src, "WANT", keys=behind)

    @on("WANT")
    def want(self, msg) -> None:
        for key in msg.body["keys"]:
            self.send(msg.src, "REPAIR", key=key, **self.data[key])

    # -- coordinating a write ---------------------------------------------------------
    @on("PUT")
    def coordinate_write(self, msg) -> None:
        op = WriteOp(self.next_op, msg.src, **msg.body)  # req, key, value, version: the write as the client sent it
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
        # Sloppy quorum: the first N nodes along the ring, those believed up first (a suspect only if too
        # few are).  Each one that is not a preferred replica stands in for one left out, with a hint naming it.
        chosen = trusted_first(walk(key), self.suspects)[:N]
        in_person = [n for n in chosen if n in wanted]
        stand_ins = [n for n in chosen if n not in wanted]
        missing = [n for n in wanted if n not in in_person]
        return [(n, None) for n in in_person] + list(zip(stand_ins, missing))

    def store_at(self, op: WriteOp, node: str, intended: str | None) -> None:
        op.tried.append(node)
        if node == self.id:  # my own copy needs no message
            self.take(op.key, op.value, op.version, intended)
            op.acks.append(node)
            return
        op.waiting[node] = intended
        self.send(node, "STORE", op=op.op, key=op.key, value=op.value, version=op.version, intended=intended)
        self.after(ACK_WAIT, self.store_timed_out, op, node, key=("store", op.op, node))

    @on("STORED")
    def stored(self, msg) -> None:
        node, op = msg.src, self.ops.get(msg.body["op"])
        if isinstance(op, WriteOp) and node in op.waiting:
            del op.waiting[node]
            self.cancel(("store", op.op, node))
            op.acks.append(node)
            self.settle_write(op)

    def store_timed_out(self, op: WriteOp, node: str) -> None:
        intended = op.waiting.pop(node) or node  # the replica this copy was meant for
        self.suspect(node)
        if self.lab.quorum == "sloppy":
            # Sloppy quorum: the next healthy node along the ring takes the write, with a hint.
            left = trusted_first([n for n in walk(op.key) if n not in op.tried], self.suspects)
            if left:  # a node believed up if any, else a suspect
                self.store_at(op, left[0], intended)
            elif intended != self.id:
                # Nobody is left to stand in: the coordinator keeps the hint itself (as Cassandra does).
                self.take(op.key, op.value, op.version, intended)
        self.settle_write(op)

    def settle_write(self, op: WriteOp) -> None:
        if len(op.acks) >= self.lab.w:
            self.reply(op, "PUT-OK", acks=",".join(op.acks))
        if not op.waiting:
            self.reply(op, "PUT-FAIL", acks=len(op.acks))
            self.ops.pop(op.op, None)

    def reply(self, op: WriteOp | ReadOp, type: str, **body) -> None:
        """Answer the client, once per request."""
        if not op.replied:
            op.replied = True
            self.send(op.client, type, req=op.req, **body)

    # -- coordinating a read (with read repair) ---------------------------------------
    @on("GET")
    def coordinate_read(self, msg) -> None:
        key = msg.body["key"]
        op = ReadOp(self.next_op, msg.src, msg.body["req"], key, [n for n in preferred(key) if n not in self.suspects])
        self.next_op += 1
        self.ops[op.op] = op
        for node in list(op.waiting):
            if node == self.id:
                self.answer(op, node, self.data.get(key) or NOTHING)
            else:
                self.send(node, "READ", op=op.op, key=key)
        if op.op in self.ops:  # (my own copy may have settled it already)
            self.after(ACK_WAIT, self.settle_read, op, True, key=("read", op.op))  # timed out: settle with what came
            self.settle_read(op, timed_out=False)

    @on("VALUE")
    def value(self, msg) -> None:
        op = self.ops.get(msg.body["op"])
        if isinstance(op, ReadOp) and msg.src in op.waiting:
            self.answer(op, msg.src, {"value": msg.body["value"], "version": msg.body["version"]})

    def answer(self, op: ReadOp, node: str, have: dict) -> None:
        op.waiting.remove(node)
        op.answers[node] = have
        self.settle_read(op, timed_out=False)

    def settle_read(self, op: ReadOp, timed_out: bool) -> None:
        newest = max(op.answers.values(), key=lambda a: a["version"], default=NOTHING)
        if len(op.answers) >= self.lab.r:
            self.reply(op, "GET-OK", **newest, replies=len(op.answers))
        if op.waiting and not timed_out:
            return
        for node in op.waiting:
            self.suspect(node)
        self.reply(op, "GET-FAIL", replies=len(op.answers))
        for node, answer in op.answers.items():  # read repair: bring the replicas that answered up to the newest
            if answer["version"] < newest["version"]:
                self.lab.count("read_repairs")
                self.lab.emit("read-repair", coordinator=self.id, node=node, key=op.key, have=answer["version"],
                              version=newest["version"])
                if node == self.id:
                    self.store(op.key, newest["value"], newest["version"])
                else:
                    self.send(node, "REPAIR", key=op.key, **newest)
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
        for hint in [h for h in self.hints if self.now - h.stored > self.lab.hint_ttl]:
            self.drop_hint(hint, "expired")
        probed: list[str] = []
        for hint in self.hints:
            replica = hint.intended
            if (only and replica != only) or replica in probed:
                continue
            if replica in self.suspects:
                probed.append(replica)
            self.send(replica, "HINT", hint=hint.id, key=hint.key, value=hint.value, version=hint.version)
            self.after(ACK_WAIT, self.suspect, replica, key=("hint-wait", replica))

    @on("HINT-ACK")
    def hint_delivered(self, msg) -> None:
        self.cancel(("hint-wait", msg.src))
        hint = next((h for h in self.hints if h.id == msg.body["hint"]), None)
        if hint:
            self.drop_hint(hint, "delivered")

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
        left = [n for n in trusted_first(walk(request.body["key"]), self.suspects) if n not in request.tried]
        if not left:  # any node can coordinate: give up only when every one has been tried
            return self.lab.witness("answered", request=self.requests.pop(req), reply=None)
        request.tried.append(left[0])
        self.send(left[0], request.kind, req=req, **request.body)
        self.after(CLIENT_WAIT, self.coordinator_silent, req, left[0], key=("wait", req))

    def coordinator_silent(self, req: int, node: str) -> None:
        if node not in self.suspects:
            self.suspects.append(node)
        self.try_next(req)

    def on_message(self, msg) -> None:
        if msg.src in self.suspects:  # anyone who talks to me is up
            self.suspects.remove(msg.src)
        super().on_message(msg)

    @on("PUT-OK", "GET-OK", "PUT-FAIL", "GET-FAIL")
    def answered_by(self, msg) -> None:
        request = self.requests.pop(msg.body["req"], None)
        if request:
            self.cancel(("wait", msg.body["req"]))
            self.lab.witness("answered", request=request, reply=msg)


class HintedHandoff(Lab):
    slug = "hinted-handoff"
    title = "Hinted handoff"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    INVARIANTS = {"replicas-converge": ("sloppy",), "writes-available": ("sloppy",)}
    PARAMS = (
        Param("quorum", "sloppy", "sloppy: stand-ins take writes for down replicas and keep hints; "
                                  "strict: only the preferred replicas, no hints.", choices=("sloppy", "strict")),
        Param("w", 2, "Write quorum W: acknowledgements needed before a write succeeds.", lo=1, hi=3),
        Param("r", 2, "Read quorum R: replies needed before a read answers.", lo=1, hi=3),
        Param("hint_ttl", 10_000, "How long (ms) a stand-in keeps a hint before discarding it.", lo=500, hi=600_000),
        Param("rate", 1, "Background writes per second (random keys alice, bob, carol, dave).", lo=0, hi=10),
    )
    UNFAULTABLE = ("client",)

    def setup(self) -> None:
        self.quorum, self.w, self.r = self.params["quorum"], self.params["w"], self.params["r"]
        self.hint_ttl = self.params["hint_ttl"]
        self.disturbed_at = -1.0  # when a fault was last applied or removed
        self.latest: dict[str, dict] = {}  # key -> the latest acknowledged write {"value", "version", "at"}
        self.expired: dict[tuple[str, str], int] = {}  # (replica, key) -> newest version whose hint expired
        self.left_for_repair: set[tuple] = set()  # (replica, key, version) counted as stale_after_expiry
        self.handoffs: list[dict] = []  # recent hints delivered or expired
        self.last_read: dict | None = None
        self.metrics.update({"writes": 0, "writes_failed": 0, "reads": 0, "stale_reads": 0, "hints_stored": 0,
                             "hints_delivered": 0, "hints_expired": 0, "read_repairs": 0, "stale_after_expiry": 0})
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
    @observe("answered")
    def request_done(self, fact: dict) -> None:
        """The client has a coordinator's reply to its request, or none (`reply` None): every node was tried."""
        request, reply = fact["request"], fact["reply"]
        ok = reply is not None and reply.type.endswith("-OK")
        coordinator, answer = (reply.src, reply.body) if reply else ("", {})
        body, ms = request.body, round(self.now - request.t, 3)
        key = body["key"]
        if request.kind == "GET":
            latest = self.latest.get(key, NOTHING)["version"]
            read = {"key": key, "ok": ok, "value": answer.get("value"), "version": answer.get("version", 0),
                    "latest": latest, "stale": ok and answer["version"] < latest}
            self.count("stale_reads", 1 if read["stale"] else 0)
            self.last_read = {**read, "coordinator": coordinator}
            self.emit("read", **read, ms=ms)
        elif ok:
            self.latest[key] = {"value": body["value"], "version": body["version"], "at": self.now}
            self.emit("write-ok", key=key, value=body["value"], version=body["version"], coordinator=coordinator,
                      acks=answer["acks"], ms=ms)
        else:
            self.count("writes_failed")
            why = f"{coordinator}: {reply.type}" if reply else "no coordinator answered"
            self.emit("write-failed", key=key, version=body["version"], why=why, ms=ms)
            up = [n for n in RING if self.nodes[n].status == "up"]
            whole = not self.net.partition and all(link.clean() for link in self.net.links.values()) \
                and not any(self.nodes[n].slow_ms for n in RING)
            calm = self.disturbed_at < request.t  # no fault came or went while it was under way
            if len(up) >= self.w and whole and calm:
                self.fail("writes-available", f"write {key} v{body['version']} failed with {len(up)} nodes up "
                                              f"(W={self.w}, quorum={self.quorum})")

    # -- hints, as the stand-ins report them ------------------------------------------------
    @observe("hint-stored", "hint-delivered", "hint-expired")
    def hint_event(self, event: dict) -> None:
        how = event["kind"].removeprefix("hint-")
        self.count(f"hints_{how}")
        if how == "expired":  # the replica stays stale for this version: read repair's job now
            slot = (event["intended"], event["key"])
            self.expired[slot] = max(self.expired.get(slot, 0), event["version"])
        if how != "stored":
            self.handoffs = (self.handoffs + [{"holder": event["node"], "intended": event["intended"],
                                               "key": event["key"], "version": event["version"], "how": how,
                                               "at": event["t"]}])[-6:]

    def next_hint_number(self) -> int:
        """A query, for the stand-in storing a hint: hints are numbered in the order the cluster stores them."""
        return self.metrics["hints_stored"] + 1

    def hint_waiting(self, node_id: str, key: str | None = None) -> bool:
        """A stand-in still holds a hint for this replica (for this key, if one is named)."""
        return any(h.intended == node_id and (key is None or h.key == key) for n in RING for h in self.nodes[n].hints)

    # -- the live check ------------------------------------------------------------------
    def audit(self) -> None:
        """Every settled replica holds the latest acknowledged version of its keys, unless
        its hint expired: then it is left for read repair or anti-entropy (counted, not red)."""
        stale = []
        for key, latest in self.latest.items():
            if self.now - latest["at"] < SETTLE:
                continue
            for node_id in preferred(key):
                node = self.nodes[node_id]
                if node.status != "up" or self.now - node.up_since < SETTLE or self.hint_waiting(node_id):
                    continue
                have, want = node.data.get(key, NOTHING)["version"], latest["version"]
                if have >= want:
                    continue
                if want > self.expired.get((node_id, key), 0):
                    stale.append((key, node_id, have, want))
                elif (node_id, key, want) not in self.left_for_repair:
                    self.left_for_repair.add((node_id, key, want))
                    self.count("stale_after_expiry")
                    self.emit("left-for-repair", node=node_id, key=key, version=have, latest=want)
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
            self.nodes[node_id].anti_entropy()

    # -- the page ----------------------------------------------------------------------------
    def view(self) -> dict:
        keys = []
        for key in sorted(self.latest)[:8]:
            latest = self.latest[key]
            copies = {n: self.nodes[n].data.get(key, NOTHING) for n in preferred(key)}
            keys.append({"key": key, "pos": position(key), "value": latest["value"], "version": latest["version"],
                         "replicas": [{"node": n, **have, "stale": have["version"] < latest["version"],
                                       "status": self.nodes[n].status, "hinted": self.hint_waiting(n, key)}
                                      for n, have in copies.items()]})
        hints = [{"holder": n, "intended": h.intended, "key": h.key, "version": h.version, "hint": h.id,
                  "expires_in": max(0, round(h.stored + self.hint_ttl - self.now))}
                 for n in RING for h in self.nodes[n].hints][:12]
        return {
            "edges": [[RING[i], RING[(i + 1) % len(RING)]] for i in range(len(RING))],
            "handoff": {"quorum": self.quorum, "n": N, "w": self.w, "r": self.r, "hint_ttl": self.hint_ttl,
                        "keys": keys, "hints": hints, "recent": self.handoffs, "last_read": self.last_read},
        }
