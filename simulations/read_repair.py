"""Read repair: a read notices a stale replica and fixes it.

Three replicas n1, n2, n3 hold every key (N = 3) as a value with a version
number.  A coordinator takes the client's requests:

Write (W of N):
  * give the key its next version number and send it to all three replicas;
  * report success once W replicas acknowledged.  A replica that was down or
    partitioned away misses the write and keeps an older version.

Read (R of N):
  * ask R replicas (another one if a replica does not answer in time);
  * compare the versions they return; the highest wins;
  * read repair: send the newest value back to every replica that answered
    with an older one.  `blocking` waits for those write-backs before
    answering the client (the client never sees an older value again from
    those replicas); `async` answers first and repairs in the background.

The other two ways to converge do not touch reads:
  * `anti-entropy`: each replica periodically sends the versions it holds
    (a Merkle tree in Dynamo and Cassandra; a plain list here) to the
    others, which push back what is newer and ask for what they lack;
  * `on-write`: the coordinator remembers which replica missed which write
    and re-sends the key's newest version, with its value (the two never
    travel apart), until that replica acknowledges it or a newer one.

Whatever the mode, a read whose R replicas overlap the W that took the latest
write (R + W > N) sees it; with R + W <= N it can hit only stale replicas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .kernel import Arg, Lab, Node, Param, SimError, action, observe, on

REPLICAS = ("n1", "n2", "n3")
N = len(REPLICAS)
ACK_WAIT = 200  # ms the coordinator waits for a replica before moving on
RETRY_EVERY = 500  # ms between re-sends of a missed write (on-write mode)
VERIFY_AFTER = 200  # ms after a read's answer before the check looks at its replicas
KEYS = ("x", "y", "z")
NOTHING = {"value": None, "version": 0}


def older(have: dict, version: int, value) -> bool:
    """An older version than `version`, or that version with another value than `value`."""
    return have["version"] < version or (have["version"] == version and have["value"] != value)


class Replica(Node):
    """Stores versioned values; the newer version always wins."""

    def boot(self) -> None:
        self.role = "replica"
        self.data: dict = self.disk.setdefault("data", {})  # key -> {"value", "version"}
        if self.lab.mode == "anti-entropy":
            every = self.lab.params["ae_every"]
            self.every(every, self.anti_entropy, key="anti-entropy", first=every * (1 + self.rng.random()))

    def store(self, key: str, value: str, version: int) -> bool:
        if self.version(key) >= version:
            return False
        self.data[key] = {"value": value, "version": version}
        return True

    def version(self, key: str) -> int:
        return self.data.get(key, NOTHING)["version"]

    @on("WRITE")
    def write(self, msg) -> None:
        b = msg.body
        self.store(b["key"], b["value"], b["version"])
        self.send(msg.src, "WROTE", op=b["op"], key=b["key"], version=b["version"])

    @on("READ")
    def read(self, msg) -> None:
        have = self.data.get(msg.body["key"], NOTHING)
        self.send(msg.src, "VALUE", op=msg.body["op"], key=msg.body["key"], **have)

    @on("REPAIR")
    def repair(self, msg) -> None:
        b = msg.body
        if self.store(b["key"], b["value"], b["version"]):
            self.lab.emit("repaired", node=self.id, key=b["key"], version=b["version"], by=msg.src)
        self.send(msg.src, "REPAIRED", op=b.get("op", 0), key=b["key"], version=b["version"])

    # -- anti-entropy: compare versions key by key, in the background ----------------------
    def anti_entropy(self) -> None:
        self.lab.count("anti_entropy_rounds")
        self.lab.emit("anti-entropy", node=self.id, keys=len(self.data))
        versions = [[k, self.data[k]["version"]] for k in sorted(self.data)]
        for other in [n for n in REPLICAS if n != self.id]:
            self.send(other, "DIGEST", versions=versions)

    @on("DIGEST")
    def digest(self, msg) -> None:
        theirs = dict(msg.body["versions"])
        newer = [k for k in theirs if self.version(k) > theirs[k]]  # mine is newer: here it is
        for key in newer + [k for k in self.data if k not in theirs]:  # ... and the keys the sender lacks
            self.send(msg.src, "REPAIR", key=key, **self.data[key])
        behind = [k for k in theirs if self.version(k) < theirs[k]]  # theirs is newer: I will ask for it
        if behind:
            self.send(msg.src, "WANT", keys=behind)

    @on("WANT")
    def want(self, msg) -> None:
        for key in msg.body["keys"]:
            self.send(msg.src, "REPAIR", key=key, **self.data[key])

    def view(self) -> dict:
        key = self.lab.focus
        have = self.data.get(key)
        return {"label": f"{key}={have['value']} v{have['version']}" if have and self.status != "down" else ""}


@dataclass
class Write:
    op: int
    key: str
    value: str
    version: int
    start: float
    acks: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=lambda: list(REPLICAS))


@dataclass
class Read:
    op: int
    key: str
    r: int
    order: list[str]  # the replicas, in the order they are asked
    start: float
    asked: list[str] = field(default_factory=list)
    answers: dict[str, dict] = field(default_factory=dict)  # replica -> {"value", "version"}
    newest: dict | None = None  # the winning answer, once compared
    repairs: list[str] = field(default_factory=list)  # replicas sent a write-back
    repaired: list[str] = field(default_factory=list)  # ... that confirmed it


class Coordinator(Node):
    """Takes reads and writes, compares replies, and (by mode) repairs."""

    def boot(self) -> None:
        self.role = "coordinator"
        self.disk.setdefault("newest", {})  # key -> the newest write given out, its {"value", "version"}
        self.disk.setdefault("missed", {})  # on-write: (node, key) -> the newest version that replica missed
        self.ops: dict[int, Write | Read] = {}
        self.next_op = 1
        if self.lab.params["rate"]:
            self.every(1000 / self.lab.params["rate"], self.background_op, key="tick")
        if self.disk["missed"]:
            self.after(RETRY_EVERY, self.retry_missed, key="retry")

    def background_op(self) -> None:
        key = KEYS[self.rng.randrange(len(KEYS))]
        if self.rng.random() < 0.5:
            self.write(key, str(self.rng.randrange(10, 100)))
        else:
            self.read(key, self.lab.params["r"], None)

    def track(self, op: Write | Read, on_timeout) -> None:
        """Keep an operation open until it closes, or ACK_WAIT passes without the answers it waits for."""
        self.next_op += 1
        self.ops[op.op] = op
        self.after(ACK_WAIT, on_timeout, op, key=("op", op.op))

    def close(self, op: Write | Read) -> None:
        self.cancel(("op", op.op))
        self.ops.pop(op.op, None)

    # -- writes: to all N, success after W acknowledgements ----------------------------------
    def write(self, key: str, value: str) -> None:
        version = self.disk["newest"].get(key, NOTHING)["version"] + 1
        self.disk["newest"][key] = {"value": value, "version": version}
        op = Write(self.next_op, key, value, version, self.now)
        self.lab.emit("write", key=key, value=value, version=version, w=self.lab.w)
        for node in REPLICAS:
            self.send(node, "WRITE", op=op.op, key=key, value=value, version=version)
        self.track(op, self.write_timed_out)

    @on("WROTE")
    def wrote(self, msg) -> None:
        op = self.ops.get(msg.body["op"])
        if not isinstance(op, Write) or msg.src not in op.waiting:
            return
        op.waiting.remove(msg.src)
        op.acks.append(msg.src)
        self.acked(msg.src, op.key, op.version)
        if len(op.acks) == self.lab.w:  # the W-th acknowledgement: the write succeeded
            self.lab.witness("write-answered", op=op, ok=True)
        if not op.waiting:
            self.close(op)

    def write_timed_out(self, op: Write) -> None:
        if len(op.acks) < self.lab.w:
            self.lab.witness("write-answered", op=op, ok=False)
        for node in op.waiting:
            self.lab.emit("missed", node=node, key=op.key, version=op.version)
            if self.lab.mode == "on-write":  # repair on write: keep pushing until it lands
                missed = self.disk["missed"]
                missed[node, op.key] = max(missed.get((node, op.key), 0), op.version)
                if not self.pending("retry"):
                    self.after(RETRY_EVERY, self.retry_missed, key="retry")
        self.close(op)

    def acked(self, node: str, key: str, version: int) -> None:
        """The replica holds this version: it misses nothing up to it (a late, older one does not count)."""
        if self.disk["missed"].get((node, key), 0) <= version:
            self.disk["missed"].pop((node, key), None)

    def retry_missed(self) -> None:
        for node, key in self.disk["missed"]:
            self.send(node, "REPAIR", key=key, **self.disk["newest"][key])  # the newest write, never a mix
        if self.disk["missed"]:
            self.after(RETRY_EVERY, self.retry_missed, key="retry")

    # -- reads: ask R, the highest version wins, repair the others ------------------------------
    def read(self, key: str, r: int, first: str | None) -> None:
        order = list(REPLICAS)
        self.rng.shuffle(order)
        order.sort(key=lambda node: node != first)  # the replica the learner named goes first
        op = Read(self.next_op, key, r, order, self.now)
        self.lab.witness("read-asked", op=op.op, key=key)
        self.ask_more(op)
        self.track(op, self.read_timed_out)

    def ask_more(self, op: Read) -> None:
        """Ask the next replicas in the read's order, one for each answer still missing."""
        for node in op.order[len(op.asked):][:op.r - len(op.answers)]:
            op.asked.append(node)
            self.send(node, "READ", op=op.op, key=op.key)

    @on("VALUE")
    def value(self, msg) -> None:
        op = self.ops.get(msg.body["op"])
        if not isinstance(op, Read) or msg.src in op.answers or op.newest:
            return
        op.answers[msg.src] = {"value": msg.body["value"], "version": msg.body["version"]}
        if len(op.answers) >= op.r:
            self.compare(op)

    def read_timed_out(self, op: Read) -> None:
        """A replica did not answer: ask one not asked yet, else answer with what came (maybe nothing)."""
        if len(op.asked) < N and len(op.answers) < op.r:
            self.ask_more(op)
            self.after(ACK_WAIT, self.read_timed_out, op, key=("op", op.op))
        else:
            self.answer(op)

    def compare(self, op: Read) -> None:
        """The heart of read repair: the highest version wins, older answers are repaired."""
        answers = op.answers
        op.newest = newest = dict(max(answers.values(), key=lambda a: a["version"]))
        stale = [n for n in answers if answers[n]["version"] < newest["version"]]
        self.lab.emit("compare", key=op.key, answers=[[n, answers[n]["version"]] for n in answers],
                      newest=newest["version"], stale=stale)
        if self.lab.mode in ("blocking", "async"):
            for node in stale:
                op.repairs.append(node)
                self.lab.count("read_repairs")
                self.lab.emit("write-back", node=node, key=op.key, version=newest["version"],
                              blocking=self.lab.mode == "blocking")
                self.send(node, "REPAIR", op=op.op, key=op.key, **newest)
        if self.lab.mode == "blocking" and op.repairs:
            self.after(ACK_WAIT, self.read_timed_out, op, key=("op", op.op))  # wait for the write-backs
        else:
            self.answer(op)

    @on("REPAIRED")
    def repaired(self, msg) -> None:
        self.acked(msg.src, msg.body["key"], msg.body["version"])
        op = self.ops.get(msg.body["op"])
        if isinstance(op, Read) and msg.src in op.repairs and msg.src not in op.repaired:
            op.repaired.append(msg.src)
            if len(op.repaired) == len(op.repairs):
                self.answer(op)

    def answer(self, op: Read) -> None:
        self.lab.witness("read-answered", op=op)
        self.close(op)

    def view(self) -> dict:
        return {"label": f"W={self.lab.w} · {self.lab.mode}"}


class ReadRepair(Lab):
    slug = "read-repair"
    title = "Read repair"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    INVARIANTS = {"answered-replicas-newest": ("blocking", "async")}
    PARAMS = (
        Param("mode", "blocking", "How stale replicas get fixed: on reads (blocking or async write-back), by "
                                  "background anti-entropy, or by re-sending missed writes.",
              choices=("blocking", "async", "anti-entropy", "on-write")),
        Param("w", 2, "Write quorum W: replica acknowledgements before a write succeeds.", lo=1, hi=3),
        Param("r", 2, "Read quorum R for the background reads.", lo=1, hi=3),
        Param("ae_every", 5000, "anti-entropy: ms between a replica's comparison rounds.", lo=500, hi=60_000),
        Param("rate", 1, "Background operations per second (half writes, half reads of x, y, z).", lo=0, hi=10),
    )

    def setup(self) -> None:
        self.mode, self.w = self.params["mode"], self.params["w"]
        self.latest: dict[str, dict] = {}  # key -> latest acknowledged write {"value", "version"}
        self.written: set[str] = set()  # keys with a write done (acknowledged or not)
        self.latest_when_asked: dict[int, dict] = {}  # open read -> the latest acknowledged write when it began
        self.focus: str | None = None  # the key the page shows on the nodes
        self.last_read: dict | None = None
        self.write_backs: list[dict] = []
        self.metrics.update({"writes": 0, "writes_failed": 0, "reads": 0, "stale_reads": 0, "read_repairs": 0,
                             "anti_entropy_rounds": 0})
        for node_id in REPLICAS:
            self.add_node(Replica(self, node_id))
        self.coordinator = self.add_node(Coordinator(self, "coordinator"))
        self.add_check("answered-replicas-newest", "After a read, every replica that answered holds the newest "
                                                   "version the read saw, with the same value.")
        self.add_check("read-returns-latest", "A read returns the latest acknowledged write, value and version; "
                                              "guaranteed when R + W > N, not when R + W <= N.")

    # -- the client: what the coordinator answers, judged against the truth -----------------
    @observe("write-answered")
    def write_answered(self, fact: dict) -> None:
        op = fact["op"]
        self.written.add(op.key)
        self.focus = op.key
        self.count("writes")
        if fact["ok"]:
            self.latest[op.key] = {"value": op.value, "version": op.version}
            self.emit("write-ok", key=op.key, version=op.version, acks=",".join(op.acks),
                      ms=round(self.now - op.start, 3))
        else:
            self.count("writes_failed")
            self.emit("write-failed", key=op.key, version=op.version, acks=",".join(op.acks))

    @observe("read-asked")
    def read_asked(self, fact: dict) -> None:
        self.latest_when_asked[fact["op"]] = self.latest.get(fact["key"], NOTHING)

    @observe("read-answered")
    def read_answered(self, fact: dict) -> None:
        op = fact["op"]
        asked = self.latest_when_asked.pop(op.op)  # value and version: a write acknowledged meanwhile may win
        latest, latest_value = asked["version"], asked["value"]
        self.count("reads")
        if op.newest is None:  # too few replicas answered
            self.emit("read-failed", key=op.key, r=op.r, answers=len(op.answers))
            return
        key, newest = op.key, op.newest
        self.focus = key
        stale = older(newest, latest, latest_value)  # the version, and the value, the client acknowledged
        self.count("stale_reads", 1 if stale else 0)
        read = {"key": key, "r": op.r, "value": newest["value"], "version": newest["version"], "latest": latest,
                "stale": stale, "ms": round(self.now - op.start, 3)}
        self.last_read = {**read, "w": self.w, "repairs": list(op.repairs), "mode": self.mode, "answers": [
            {"node": n, **a, "stale": a["version"] < newest["version"]} for n, a in op.answers.items()]}
        self.emit("read", **read)
        if stale:
            overlap = "R + W > N, so this should not happen" if op.r + self.w > N else "R + W <= N"
            self.fail("read-returns-latest", f"read {key} with R={op.r} returned {newest['value']!r} "
                                             f"v{newest['version']}, the latest acknowledged is {latest_value!r} "
                                             f"v{latest} ({overlap})")
        else:
            self.note("read-returns-latest", f"last read {key} v{newest['version']} (R={op.r}, W={self.w})")
        self.sim.after(VERIFY_AFTER, self.verify_read, key, list(op.answers), newest["version"], newest["value"])
        self.write_backs = (self.write_backs + [{"node": node, "key": key, "version": newest["version"],
                                                 "at": round(self.now, 3)} for node in op.repairs])[-6:]

    def verify_read(self, key: str, answered: list[str], newest: int, value) -> None:
        late = [n for n in answered if older(self.nodes[n].data.get(key, NOTHING), newest, value)]
        if late:
            self.fail("answered-replicas-newest", f"{VERIFY_AFTER}ms after reading {key}, {', '.join(late)} still "
                                                  f"{'holds' if len(late) == 1 else 'hold'} an older version than "
                                                  f"v{newest} or another value than {value!r} (mode {self.mode})")
        else:
            self.note("answered-replicas-newest", f"{key}: {', '.join(answered)} "
                                                  f"{'holds' if len(answered) == 1 else 'hold'} v{newest}")

    # -- actions ---------------------------------------------------------------------------
    def require_coordinator(self) -> None:
        if self.coordinator.status != "up":
            raise SimError(f"the coordinator is {self.coordinator.status}; restart or resume it first")

    @action("write", Arg("key", "text"), Arg("value", "text"), group="request",
            help="Write key = value to all replicas; succeed after W acknowledgements.")
    def do_write(self, key: str, value: str) -> None:
        self.require_coordinator()
        self.coordinator.write(key, value)

    @action("read", Arg("key", "text"), Arg("r", "int", lo=1, hi=3), Arg("first", optional=True), group="request",
            help="Read a key from R replicas (optionally starting with one you name) and compare versions.")
    def do_read(self, key: str, r: int, first: str | None) -> None:
        if first is not None and first not in REPLICAS:
            raise SimError(f"first must be a replica ({', '.join(REPLICAS)}); got '{first}'")
        self.require_coordinator()
        self.coordinator.read(key, r, first)

    @action("anti-entropy", help="One anti-entropy round now: every live replica compares versions with the others.")
    def do_anti_entropy(self) -> None:
        live = [n for n in REPLICAS if self.nodes[n].status == "up"]
        if len(live) < 2:
            raise SimError("anti-entropy needs at least two live replicas")
        for node in live:
            self.nodes[node].anti_entropy()

    # -- the page ----------------------------------------------------------------------------
    def view(self) -> dict:
        keys = []
        for key in sorted(self.written)[:6]:
            copies = {n: self.nodes[n].data.get(key, NOTHING) for n in REPLICAS}
            newest = max(have["version"] for have in copies.values())
            keys.append({"key": key, "latest": self.latest.get(key, NOTHING)["version"], "replicas": [
                {"node": n, **have, "stale": have["version"] < newest, "status": self.nodes[n].status}
                for n, have in copies.items()]})
        return {
            "edges": [["coordinator", n] for n in REPLICAS],
            "repair": {"mode": self.mode, "n": N, "w": self.w, "r": self.params["r"], "keys": keys,
                       "last_read": self.last_read, "write_backs": self.write_backs,
                       "missed": [{"node": n, "key": k} for n, k in self.coordinator.disk["missed"]]},
        }
