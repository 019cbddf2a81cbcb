"""Sharding: a router spreads the keys of one data set over several shards.

Each shard holds only part of the data; a router (or a smart client) knows
the *placement*, the rule that says which shard owns a key, and forwards each
read or write there.  Three placement rules are in common use:

  * hash mod N:   owner = shards[hash(key) mod N].  Even, simple, and brutal
                  to change: when N becomes N+1 a key stays put only if
                  hash mod N == hash mod (N+1), so about N/(N+1) of all keys move.
  * ranges:       each shard owns a contiguous range of keys (u00000-u24999,
                  ...), as in Bigtable, HBase or MongoDB's ranged shards.
                  Range scans stay on one shard; a new shard takes over half of
                  the fullest range (a split), so only that half moves.
  * consistent hashing (Karger et al. 1997): every shard places V virtual
                  nodes at random tokens on a hash ring; a key belongs to the
                  first virtual node clockwise from hash(key).  A new shard
                  only takes the arcs in front of its own tokens, about
                  1/(N+1) of the keys; with many virtual nodes per shard the
                  arcs average out (Dynamo, Cassandra).

Rebalancing (add or remove a shard) is "copy, then switch", one chunk at
a time (a chunk: the keys that go from one given shard to another):

  1. the router computes the target placement and writes it to its disk;
     every key whose owner changes is *moving*: its old owner serves it;
  2. once the requests already sent for a chunk's keys have finished, the
     router holds new ones and asks the losing shard to COPY the chunk to the
     gaining shard, which stores it and tells the router COPIED (retried until
     acknowledged, so a crash only delays the chunks of the crashed shard);
  3. the router switches that chunk to its new owner, tells the losing shard
     to DROP the keys it gave away, and releases the chunk's held requests.
     When every chunk has switched, the target placement becomes the
     placement.  Chunks of healthy shards never wait for a crashed one.

Every stored key carries a version, bumped by each write.  A HANDOFF carries
the versions it copies, and a shard refuses a copy older than what it holds:
a retried or delayed HANDOFF that lands after the switch, when the new owner
has already taken a newer write, is stale and must not overwrite it (the
`versions` param turns this off to show the lost write).  A DROP names its
rebalance, and a shard keeps a key that a later rebalance brought back.

A shard that fails takes only its own keys with it: requests for keys on
other shards keep succeeding.  The router itself is not sharded: crash it
and every key fails (replicate the router, or let clients route).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections import Counter
from dataclasses import dataclass

from .kernel import Arg, Lab, Link, Node, Param, SimError, action, any_state, observe, on

KEY_SPACE = 100_000  # keys are u00000 .. u99999
SHARD_TIMEOUT = 300  # ms the router waits for a shard
CLIENT_TIMEOUT = 1000  # ms the client waits for the router
COPY_RETRY = 500  # ms a chunk's copy may take before it is abandoned and tried again later
COPY_HOLD_MAX = 800  # ms: the longest a copy attempt holds requests (below CLIENT_TIMEOUT)
LOAD_WINDOW = 2000  # ms over which the load per shard is measured
MAX_SHARDS = 10
WRITE_SHARE = 0.3  # share of the background requests that are writes
RING_ALLOWANCE = 0.35  # consistent hashing: spread allowed by the ring itself (relative; 4/sqrt(vnodes) at 128)
FAIR_VNODES = 128  # consistent hashing: from this many virtual nodes per shard, the allowance covers the lottery
GRID = 100  # keys shown in the key -> shard map


def key_hash(key: str) -> int:
    """A stable 64-bit hash of a key (never Python's hash(), which changes per process)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def random_tokens(rng, count: int) -> list[int]:
    """Random ring positions for a new shard's virtual nodes (as Cassandra picks them)."""
    return [rng.getrandbits(64) for _ in range(count)]


class Placement:
    """Which shard owns a key, for one strategy and one configuration.

    The configuration is plain data kept on the router's disk:
    {"shards": [ids in order], "ranges": [[first key, shard], ...],
     "tokens": {shard: [ring positions]}}."""

    def __init__(self, strategy: str, config: dict):
        self.strategy = strategy
        self.shards = list(config["shards"])
        self.starts = [start for start, _ in config.get("ranges", [])]
        self.range_owner = [shard for _, shard in config.get("ranges", [])]
        ring = sorted((token, shard) for shard in self.shards for token in config.get("tokens", {}).get(shard, []))
        self.ring_tokens = [token for token, _ in ring]
        self.ring_shards = [shard for _, shard in ring]

    def owner(self, key: str) -> str:
        if self.strategy == "mod":
            return self.shards[key_hash(key) % len(self.shards)]
        if self.strategy == "range":
            return self.range_owner[bisect.bisect_right(self.starts, key) - 1]
        # consistent: the first virtual node clockwise from the key's hash
        i = bisect.bisect_right(self.ring_tokens, key_hash(key))
        return self.ring_shards[i % len(self.ring_shards)]

    def ring_share(self) -> dict[str, float]:
        """Share of the ring each shard owns (consistent hashing only)."""
        share = {s: 0.0 for s in self.shards}
        toks, owners, full = self.ring_tokens, self.ring_shards, 2 ** 64
        for i, token in enumerate(toks):
            # the arc (previous token, token] belongs to this token's shard
            prev = toks[i - 1] if i else toks[-1] - full
            share[owners[i]] += (token - prev) / full
        return share


class Shard(Node):
    """Stores its keys on disk and answers GET / PUT; copies keys on request."""

    def boot(self) -> None:
        self.role = "shard"
        self.data: dict = self.disk.setdefault("data", {})
        self.version: dict = self.disk.setdefault("version", {})  # key -> how many writes it has seen
        self.epoch: dict = self.disk.setdefault("epoch", {})  # key -> the rebalance that brought it here

    def view(self) -> dict:
        return {"label": f"{self.lab.key_count.get(self.id, 0)} keys · {self.lab.rate_of(self.id):.0f}/s"}

    @on("GET")
    def get(self, msg) -> None:
        self.send(msg.src, "REPLY", rid=msg.body["rid"], value=self.data.get(msg.body["key"]))

    @on("PUT")
    def put(self, msg) -> None:
        key = msg.body["key"]
        self.data[key] = msg.body["value"]
        self.version[key] = self.version.get(key, 0) + 1
        self.send(msg.src, "REPLY", rid=msg.body["rid"], value=msg.body["value"])

    @on("COPY")
    def copy(self, msg) -> None:
        """Hand my copies of the moving keys, with their versions, to their new owner."""
        b = msg.body
        items = {k: [self.version.get(k, 0), self.data[k]] for k in b["keys"] if k in self.data}
        self.send(b["to"], "HANDOFF", rebalance=b["rebalance"], attempt=b["attempt"], n=len(items), items=items)

    @on("HANDOFF")
    def handoff(self, msg) -> None:
        b = msg.body
        stale = []
        for key, (v, value) in b["items"].items():
            if key in self.data and v <= self.version.get(key, 0) and self.lab.params["versions"]:
                stale.append(key)  # I hold this version or a newer one: refuse the old copy
                continue
            self.data[key], self.version[key] = value, v
            self.epoch[key] = max(self.epoch.get(key, 0), b["rebalance"])
        if stale:
            self.lab.emit("stale-handoff", node=self.id, giver=msg.src, rebalance=b["rebalance"], refused=len(stale))
        self.send("router", "COPIED", rebalance=b["rebalance"], attempt=b["attempt"], giver=msg.src, n=b["n"])

    @on("DROP")
    def drop(self, msg) -> None:
        for k in msg.body["keys"]:
            if self.epoch.get(k, 0) < msg.body["rebalance"]:  # not if a later rebalance brought it back
                self.data.pop(k, None)
                self.version.pop(k, None)


@dataclass
class Routed:
    """A client request as the router handles it."""

    rid: int
    op: str
    key: str
    value: str | None
    shard: str = ""  # the shard it was sent to


class Router(Node):
    """Routes each request to the owner of its key; runs rebalances."""

    def boot(self) -> None:
        self.role = "router"
        if "config" not in self.disk:  # the first start: a restart finds its placement on disk
            self.disk["config"] = self.initial_config()
        self.placement = Placement(self.lab.strategy, self.disk["config"])
        self.in_service: dict[int, Routed] = {}  # requests a shard is working on
        self.held: dict[str, list[Routed]] = {}  # chunk -> requests held while its COPY is out
        self.moving: dict[str, list[str]] = {}  # key -> [from, to] until its chunk switches
        self.chunks: dict[str, list[str]] = {}  # chunk "from>to" -> its keys, until it switches
        self.copying: dict[str, int] = {}  # chunk -> the COPY attempt under way (its keys are held)
        self.tries: dict[str, int] = {}  # chunk -> failed copy attempts so far
        self.phase = "idle"
        self.target: Placement | None = None  # the placement a rebalance is moving to
        if target := self.disk.get("target"):  # a rebalance was under way when I crashed: resume it from my disk
            self.lab.emit("rebalance-resumed", node=self.id, rebalance=target["id"])
            self.begin(target)

    def view(self) -> dict:
        return {"phase": self.phase, "label": f"{self.lab.strategy} · {self.phase}"}

    def initial_config(self) -> dict:
        """Shards s1..sN with equal slices of the key space (u00000.., u25000.., ...) or random ring tokens."""
        n, strategy = self.lab.params["shards"], self.lab.strategy
        shards = [f"s{i}" for i in range(1, n + 1)]
        config = {"shards": shards}
        if strategy == "range":
            config["ranges"] = [["" if i == 0 else f"u{i * KEY_SPACE // n:05d}", s] for i, s in enumerate(shards)]
        if strategy == "consistent":
            config["tokens"] = {s: random_tokens(self.rng, self.lab.params["vnodes"]) for s in shards}
        return config

    # -- requests -------------------------------------------------------------------
    def owner(self, key: str) -> str:
        """During a rebalance a key whose chunk has not switched yet is served by
        its old owner, every other key by its owner in the target placement."""
        if key in self.moving:
            return self.moving[key][0]
        return (self.target or self.placement).owner(key)

    @on("REQ")
    def request_in(self, msg) -> None:
        self.route(Routed(**msg.body))

    def route(self, req: Routed) -> None:
        chunk = self.chunk_of(req.key)
        if chunk in self.copying:
            self.held.setdefault(chunk, []).append(req)  # its chunk is being copied: wait for the switch
            self.lab.count("held")
            return
        req.shard = shard = self.owner(req.key)
        self.in_service[req.rid] = req
        self.lab.witness("routed", shard=shard)
        if req.op == "read":
            self.send(shard, "GET", rid=req.rid, key=req.key)
        else:
            self.send(shard, "PUT", rid=req.rid, key=req.key, value=req.value)
        self.after(SHARD_TIMEOUT, self.shard_silent, req.rid, key=("req", req.rid))

    @on("REPLY")
    def reply(self, msg) -> None:
        req = self.in_service.pop(msg.body["rid"], None)
        if req:  # (None: it already timed out)
            self.cancel(("req", req.rid))
            self.send("client", "RESP", rid=req.rid, ok=True, value=msg.body["value"], shard=req.shard)
            self.maybe_copy()

    def shard_silent(self, rid: int) -> None:
        req = self.in_service.pop(rid, None)
        if req:
            self.send("client", "RESP", rid=req.rid, ok=False, shard=req.shard,
                      error=f"{req.shard} did not answer in {SHARD_TIMEOUT}ms")
            self.maybe_copy()

    # -- rebalancing: copy, then switch, one chunk at a time ----------------------------
    def begin(self, target: dict) -> None:
        self.disk["target"] = target
        target.setdefault("done", [])  # chunks already switched (on disk: a restart skips them)
        self.target = Placement(self.lab.strategy, target["config"])
        self.moving, self.chunks, self.copying, self.tries = {}, {}, {}, {}
        for key, (src, dst) in target["moved"].items():
            chunk = f"{src}>{dst}"
            if chunk not in target["done"]:
                self.moving[key] = [src, dst]
                self.chunks.setdefault(chunk, []).append(key)
        self.phase = "copying"
        self.maybe_copy()

    def chunk_of(self, key: str) -> str | None:
        return "{}>{}".format(*self.moving[key]) if key in self.moving else None

    def maybe_copy(self) -> None:
        """Copy a chunk once no request already sent for one of its keys can
        still land on its old shard; each chunk drains on its own."""
        if self.phase != "copying":
            return
        if not self.chunks:
            self.finish_rebalance()
            return
        busy = {self.chunk_of(r.key) for r in self.in_service.values()}
        for chunk in self.chunks:
            waiting = self.pending(("again", chunk))  # to try its copy again
            if chunk not in self.copying and not waiting and chunk not in busy:
                self.send_copy(chunk)

    def send_copy(self, chunk: str) -> None:
        """While a chunk's COPY is out, requests for its keys are held."""
        src, dst = chunk.split(">")
        keys = self.chunks[chunk]
        self.disk["copies"] = attempt = self.disk.get("copies", 0) + 1  # never reused, even after a crash
        self.copying[chunk] = attempt
        self.send(src, "COPY", rebalance=self.disk["target"]["id"], attempt=attempt, to=dst, n=len(keys), keys=keys)
        # A failed attempt waits longer the next time, so a slow link still gets its copy
        # through, but never so long that a held request would time out at the client.
        wait = min(COPY_RETRY * 2 ** self.tries.get(chunk, 0), COPY_HOLD_MAX)
        self.after(wait, self.copy_timed_out, chunk, key=("copy", chunk))

    def copy_timed_out(self, chunk: str) -> None:
        """No COPIED in time: give up this attempt, let the old owner serve the
        chunk's keys again, and try again a little later."""
        if self.copying.pop(chunk, None) is None:
            return
        self.lab.emit("copy-retry", node=self.id, chunk=chunk)
        self.tries[chunk] = self.tries.get(chunk, 0) + 1
        self.after(COPY_RETRY, self.maybe_copy, key=("again", chunk))
        self.release(chunk)

    def release(self, chunk: str) -> None:
        for req in self.held.pop(chunk, []):
            self.route(req)

    @on("COPIED")
    def copied(self, msg) -> None:
        rebalance, src, dst = msg.body["rebalance"], msg.body["giver"], msg.src
        chunk = f"{src}>{dst}"
        if self.copying.get(chunk) != msg.body["attempt"]:  # (attempt numbers are never reused)
            return  # an abandoned attempt or a duplicate: the chunk may have changed since
        # Switch this chunk: its keys now live on dst.
        del self.copying[chunk]
        self.cancel(("copy", chunk))
        keys = self.chunks.pop(chunk)
        self.disk["target"]["done"].append(chunk)
        self.send(src, "DROP", rebalance=rebalance, n=len(keys), keys=keys)
        self.lab.emit("chunk-switched", rebalance=rebalance, src=src, dst=dst, n=len(keys))
        for key in keys:
            del self.moving[key]
        self.release(chunk)  # to the new owner
        self.maybe_copy()

    def finish_rebalance(self) -> None:
        target = self.disk.pop("target")
        self.disk["config"] = target["config"]
        self.placement = Placement(self.lab.strategy, target["config"])
        self.moving, self.phase, self.target = {}, "idle", None
        self.lab.emit("rebalanced", rebalance=target["id"], shards=list(self.placement.shards),
                      ms=round(self.now - target["start"], 3))


class Client(Node):
    """Drives traffic: background reads and writes of random keys, and the learner's requests."""

    def boot(self) -> None:
        self.role = "client"
        self.asked = 0  # requests sent so far (they number the requests)
        if self.lab.params["rate"]:
            self.every(1000 / self.lab.params["rate"], self.background, key="tick")

    def view(self) -> dict:
        return {"label": f"{self.lab.params['rate']} req/s"}

    def background(self) -> None:
        keys = self.lab.keys
        key = keys[int(self.rng.random() * len(keys))]
        if self.rng.random() < WRITE_SHARE:
            self.ask("write", key, f"v{int(self.now)}")
        else:
            self.ask("read", key)

    def ask(self, op: str, key: str, value: str | None = None) -> None:
        self.asked += 1
        request = {"rid": self.asked, "op": op, "key": key, "value": value}
        self.lab.witness("asked", **request)
        self.send("router", "REQ", **request)
        self.after(CLIENT_TIMEOUT, self.router_silent, self.asked, key=("req", self.asked))

    def router_silent(self, rid: int) -> None:
        self.lab.witness("finished", rid=rid, ok=False, error="the router did not answer")

    @on("RESP")
    def response(self, msg) -> None:
        if self.answered(("req", msg.body["rid"])):
            self.lab.witness("finished", **msg.body)  # {rid, ok, shard, and value or error}


@dataclass
class Write:
    """A write as the client saw it: when it started and when it was acknowledged."""

    value: str | None
    start: float
    ack: float | None = None


@dataclass
class Request:
    op: str
    key: str
    start: float
    write: Write | None = None


class Sharding(Lab):
    slug = "sharding"
    title = "Sharding"
    # moved-share is no invariant for ranges (repeated splits leave them uneven) nor for consistent hashing
    # with few virtual nodes (one rebalance is a lottery): the check shows both.  See invariants().
    INVARIANTS = {"moved-share": ("mod", "consistent"), "isolation": ("*",)}
    PARAMS = (
        Param("strategy", "mod", "How the router maps a key to a shard: hash mod N, key ranges, "
              "or consistent hashing with virtual nodes.", choices=("mod", "consistent", "range")),
        Param("shards", 4, "How many shards to start with (s1..sN).", lo=2, hi=8),
        Param("vnodes", 128, "Consistent hashing: virtual nodes (ring tokens) per shard.", lo=1, hi=256),
        Param("keys", 2000, "How many keys the data set holds at the start.", lo=1000, hi=5000),
        Param("rate", 8, "Background requests per second (30% writes).", lo=0, hi=20),
        Param("versions", True, "Every key carries a version and a shard refuses a handoff older than what it "
              "holds. Off: a late or retried handoff overwrites newer writes (watch no-lost-write).",),
    )
    FAULTS = ("crash", "restart", "pause", "resume", "partition", "cut", "heal", "delay", "loss", "slow")
    UNFAULTABLE = ("client",)

    def setup(self) -> None:
        p = self.params
        self.strategy = p["strategy"]
        self.requests: dict[int, Request] = {}
        self.loads: dict[str, list[float]] = {}
        self.stats: dict[str, dict] = {}
        self.failures: list[dict] = []
        # Until when each shard (and the router, in front of every shard) was last faulty: inf while it is.
        self.faulty_until: dict[str, float] = {"router": -1.0}
        self.rebalance: dict | None = None  # the last one, as the page shows it
        self.moved_keys: dict[str, bool] = {}
        # The data set: distinct random keys u00000..u99999, drawn with the run's generator.
        self.keys = [f"u{n:05d}" for n in self.rng.sample(range(KEY_SPACE), p["keys"])]
        self.metrics.update({"requests": 0, "ok": 0, "failed": 0, "held": 0, "moved": 0})
        self.add_node(Client(self, "client"))
        router = self.add_node(Router(self, "router"))
        for _ in range(p["shards"]):
            self.add_shard()
        # Load the data set onto its owners.
        for key in self.keys:
            self.nodes[router.placement.owner(key)].disk["data"][key] = "v0"
        self.recount()
        self.add_check("moved-share", "A rebalance moves the share of keys the strategy predicts from the number "
                       "of shards: about N/(N+1) for hash mod N, about 1/(N+1) for consistent hashing (Karger et al. "
                       "1997; with few virtual nodes one rebalance strays far from it), about 1/(2N) for a range "
                       "split while the ranges are even (repeated splits make them uneven, and then it goes red).")
        self.add_check("isolation", "A request fails only if its key's own shard is down or cut off: a crashed "
                       "shard fails only its own keys. (A fault on the router, in front of every shard, fails "
                       "any key: that is not a shard's doing and not judged here.)")
        self.add_check("no-lost-write", "A read returns the latest write the client was told succeeded (or one "
                       "that was still in flight or failed): judged from what the client saw, never from the "
                       "shards, so an acknowledged write that a rebalance loses turns it red.")
        # What the client has seen, per key: the writes that a read may still return.
        self.history: dict[str, list[Write]] = {k: [Write("v0", 0.0, 0.0)] for k in self.keys}
        self.checks["moved-share"].detail = "no rebalance yet: add or remove a shard"
        self.every(100, self.update_trouble)

    # -- shards and placement ---------------------------------------------------
    def add_shard(self) -> str:
        sid = f"s{len(self.stats) + 1}"  # numbered in the order they are made (retired ones keep their stats)
        self.stats[sid] = {"ok": 0, "failed": 0}
        self.faulty_until[sid] = -1.0
        self.add_node(Shard(self, sid))
        return sid

    @property
    def router(self) -> Router:
        return self.nodes["router"]

    def shards(self) -> list[str]:
        return [n for n in self.nodes if n.startswith("s")]

    def recount(self) -> None:
        """Keys per shard under the placement the router uses now."""
        placement = self.router.placement
        owners = Counter(placement.owner(key) for key in self.keys)
        self.key_count = {s: owners[s] for s in placement.shards}

    # -- requests, as the client sees them ------------------------------------------
    @observe("asked")
    def request_made(self, fact: dict) -> None:
        self.count("requests")
        self.requests[fact["rid"]] = req = Request(fact["op"], fact["key"], self.now)
        if req.op == "write":
            req.write = Write(fact["value"], self.now)
            self.writes_of(req.key).append(req.write)

    def writes_of(self, key: str) -> list[Write]:
        # A key nobody has written yet reads as nothing (None): a "write" before time began.
        return self.history.setdefault(key, [Write(None, -1.0, -1.0)])

    def client_saw(self, req: Request, ok: bool, value) -> None:
        """The client's view, for no-lost-write.  A write w is superseded once
        another write started after w was acknowledged and was itself
        acknowledged: from then on a read must not return w.  A write that
        failed or is still in flight may or may not have landed, so a read may
        return it.  The check never looks at the shards or the router."""
        writes = self.writes_of(req.key)
        if not ok:
            return
        if req.op == "write":
            req.write.ack = self.now
            del writes[:-64]  # a bounded memory of each key's writes
            return
        newest = [w for w in writes if w.ack is not None and w.ack < req.start]
        allowed = [w.value for w in writes
                   if not (w.ack is not None and any(o is not w and o.start > w.ack for o in newest))]
        if value not in allowed:
            latest = max(newest, key=lambda w: w.ack, default=None)
            told = f"'{latest.value}' (acknowledged at {latest.ack / 1000:.2f}s)" if latest else "nothing"
            self.fail("no-lost-write", f"read of {req.key} returned {value!r}, but the client had been told "
                      f"{told} was written: an acknowledged write was lost")

    @observe("routed")
    def note_load(self, fact: dict) -> None:
        """The router sent a request to a shard."""
        times = self.loads.setdefault(fact["shard"], [])
        times.append(self.now)
        while times and times[0] < self.now - LOAD_WINDOW:
            times.pop(0)

    def rate_of(self, shard: str) -> float:
        return sum(1 for t in self.loads.get(shard, []) if t >= self.now - LOAD_WINDOW) * 1000 / LOAD_WINDOW

    @observe("finished")
    def request_finished(self, fact: dict) -> None:
        """The client got its answer, or gave up waiting for it (once: then it stops waiting)."""
        req = self.requests.pop(fact["rid"])
        ok, error = fact["ok"], fact.get("error")
        self.client_saw(req, ok, fact.get("value"))
        owners = [fact["shard"]] if fact.get("shard") else self.owners_of(req.key)
        self.stats[owners[0]]["ok" if ok else "failed"] += 1
        self.count("ok" if ok else "failed")
        self.emit("done", rid=fact["rid"], op=req.op, key=req.key, shard=owners[0], ok=ok,
                  ms=round(self.now - req.start, 3), **({"value": fact["value"]} if ok else {"error": error}))
        if ok:
            return
        self.failures.append({"t": round(self.now), "key": req.key, "shard": owners[0], "error": error})
        del self.failures[:-6]
        # Isolation: a failure must be explained by a fault of the key's own shard.
        self.update_trouble()
        if self.faulty_until["router"] >= req.start:
            # Not a shard's doing: the router in front of every shard was faulty (a single point of failure).
            self.note("isolation", f"last failure: {req.key}, while the router was faulty")
        elif not any(self.faulty_until[o] >= req.start for o in owners):
            self.fail("isolation", f"{req.key} failed although its shard {'/'.join(owners)} is healthy: {error}")
        else:  # a red check keeps the detail of its first breach
            self.note("isolation", f"last failure: {req.key} on faulty {'/'.join(owners)}")

    def owners_of(self, key: str) -> list[str]:
        """The shard(s) responsible for a key now: both ends while it is moving."""
        return list(self.router.moving[key]) if key in self.router.moving else [self.router.owner(key)]

    def invariants(self) -> list[str]:
        lottery = self.strategy == "consistent" and self.params["vnodes"] < FAIR_VNODES
        return [name for name in super().invariants() if not (lottery and name == "moved-share")]

    # -- which shards are faulty (for the isolation check) -------------------------
    def healthy(self, name: str) -> bool:
        """Up, at full speed, and with clean links both ways to the router (for the router:
        to the client, whose every request goes through it)."""
        node, net = self.nodes.get(name), self.net
        if node is None:
            return True  # retired
        peer = "client" if name == "router" else "router"
        return node.status == "up" and not node.slow_ms and not any(
            net.blocked(a, b) or not net.links.get((a, b), Link()).clean() for a, b in ((name, peer), (peer, name)))

    def update_trouble(self) -> None:
        for name, until in self.faulty_until.items():
            if not self.healthy(name):
                self.faulty_until[name] = math.inf
            elif until == math.inf:
                self.faulty_until[name] = self.now

    def after_fault(self, fault: str, node_id: str | None) -> None:
        self.update_trouble()

    # -- rebalancing -----------------------------------------------------------------
    def plan(self, op: str, shard: str) -> dict:
        """The target configuration and the keys whose owner changes."""
        old = self.router.disk["config"]
        shards = list(old["shards"])
        n = len(shards)
        new = {"shards": shards + [shard] if op == "add" else [s for s in shards if s != shard]}
        note = ""
        if self.strategy == "range":
            ranges = [list(r) for r in old["ranges"]]
            if op == "add":
                # Split the fullest range at its median key; the new shard takes the upper half.
                fullest = max(shards, key=lambda s: (self.key_count.get(s, 0), -shards.index(s)))
                mine = sorted(k for k in self.keys if self.router.placement.owner(k) == fullest)
                ranges = sorted(ranges + [[mine[len(mine) // 2], shard]])
                note = f"half of the fullest range ({fullest})"
            else:
                i = next(i for i, r in enumerate(ranges) if r[1] == shard)
                del ranges[i]
                if i == 0:
                    ranges[0][0] = ""  # the next range now starts at the very beginning
                note = f"all of {shard}'s range, merged into its neighbour"
            new["ranges"] = ranges
        if self.strategy == "consistent":
            tokens = {s: list(t) for s, t in old["tokens"].items() if s != shard}
            if op == "add":
                tokens[shard] = random_tokens(self.rng, self.params["vnodes"])
            new["tokens"] = tokens
        before, after = Placement(self.strategy, old), Placement(self.strategy, new)
        owners = {key: [before.owner(key), after.owner(key)] for key in self.keys}
        moved = {key: [a, b] for key, (a, b) in owners.items() if a != b}
        # What theory predicts for this change.
        if self.strategy == "mod":
            expected = mod_moved_share(shards, new["shards"])
            m = len(new["shards"])
            note = f"N/(N+1) = {n}/{m}" if op == "add" else f"about (N-1)/N = {m}/{n}"
        elif self.strategy == "consistent":
            expected = 1 / len(new["shards"]) if op == "add" else 1 / n
            note = f"1/(N+1) = 1/{n + 1}" if op == "add" else f"1/N = 1/{n}"
        else:
            # Predicted from the shard count alone, as for the other strategies: with even
            # ranges a split hands over half of one shard, a removal all of one.  Repeated
            # splits leave the ranges uneven, and then the prediction (and the check) fails.
            expected = 1 / (2 * n) if op == "add" else 1 / n
            note += f"; with even ranges 1/(2N) = 1/{2 * n}" if op == "add" else f"; with even ranges 1/N = 1/{n}"
        return {"config": new, "moved": moved, "expected": expected, "note": note}

    def start_rebalance(self, op: str, shard: str) -> None:
        plan = self.plan(op, shard)
        number = self.rebalance["id"] + 1 if self.rebalance else 1
        total, moved = len(self.keys), len(plan["moved"])
        share, expected = moved / total, plan["expected"]
        se = math.sqrt(max(expected * (1 - expected), 1e-9) / total)
        tolerance = 5 * se + (RING_ALLOWANCE * expected if self.strategy == "consistent" else 0.0) + 1 / total
        self.moved_keys = dict.fromkeys(plan["moved"], True)
        self.rebalance = {"id": number, "op": op, "shard": shard, "strategy": self.strategy,
                          "from": len(self.router.placement.shards), "to": len(plan["config"]["shards"]),
                          "moved": moved, "total": total, "share": round(share, 4),
                          "expected": round(expected, 4), "note": plan["note"], "tolerance": round(tolerance, 4),
                          "ok": abs(share - expected) <= tolerance, "start": round(self.now, 3)}
        self.count("moved", moved)
        self.emit("rebalance", **self.rebalance)
        chunks = len({f"{a}>{b}" for a, b in plan["moved"].values()})
        self.rebalance.update(phase="copying", chunks=chunks, chunks_done=0, end=None, ms=None)  # for the page
        detail = (f"{op} {shard}: moved {share:.1%} of keys, expected {expected:.1%} ({plan['note']}), "
                  f"tolerance ±{tolerance:.1%}")
        if self.rebalance["ok"]:
            self.holds("moved-share", detail)
        else:
            self.fail("moved-share", detail)
        self.router.begin({"id": number, "op": op, "shard": shard, "config": plan["config"],
                           "moved": plan["moved"], "start": self.rebalance["start"]})

    @observe("chunk-switched")
    def chunk_switched(self, event: dict) -> None:
        self.rebalance["chunks_done"] += 1

    @observe("rebalanced")
    def switched(self, event: dict) -> None:
        """The router switched to the new placement."""
        self.recount()
        r = self.rebalance
        r.update(phase="done", end=round(self.now, 3), ms=round(self.now - r["start"], 1))
        if r["op"] == "remove":  # the emptied shard leaves the cluster
            del self.nodes[r["shard"]]
            self.update_trouble()  # its trouble record stays: a request sent to it while it was faulty may still fail
            self.emit("retired", node=r["shard"])

    def ready_to_rebalance(self) -> None:
        router = self.router
        if router.status != "up":
            raise SimError(f"the router is {router.status}: restart or resume it first")
        if router.phase != "idle":
            raise SimError("a rebalance is still under way; wait for it to finish")
        for sid in self.shards():
            if self.nodes[sid].status != "up":
                raise SimError(f"{sid} is {self.nodes[sid].status}: a rebalance copies keys from every shard, "
                               f"so restart or resume it first")

    # -- views ------------------------------------------------------------------------
    def view(self) -> dict:
        placement = self.router.placement
        total = max(len(self.keys), 1)
        ring = placement.ring_share() if self.strategy == "consistent" else {}
        ranges = self.router.disk["config"].get("ranges", [])
        ends = [start for start, _ in ranges[1:]] + ["end"]
        spans = {owner: f"{start or 'start'} – {end}" for (start, owner), end in zip(ranges, ends)}
        shards = []
        for sid in self.shards():
            count = self.key_count.get(sid, 0)
            shards.append({"id": sid, "status": self.nodes[sid].status, "color": (int(sid[1:]) - 1) % 10,
                           "keys": count, "share": round(count / total, 4), "pct": round(100 * count / total, 1),
                           "rate": round(self.rate_of(sid), 1), "ok": self.stats[sid]["ok"],
                           "failed": self.stats[sid]["failed"], "range": spans.get(sid, ""),
                           "ring": round(ring.get(sid, 0.0), 4)})
        peak = max([s["rate"] for s in shards] + [1.0])
        for s in shards:
            s["bar"] = round(100 * s["rate"] / peak)
        ordered = sorted(self.keys)
        sample = [ordered[i * len(ordered) // GRID] for i in range(min(GRID, len(ordered)))]
        grid = [{"key": key, "shard": placement.owner(key), "moved": key in self.moved_keys} for key in sample]
        return {
            "strategy": self.strategy,
            "shards": shards,
            "rebalance": self.rebalance,
            "grid": grid,
            "grid_moved": sum(1 for g in grid if g["moved"]),
            "failures": list(self.failures),
            "total_keys": len(self.keys),
            "edges": [["client", "router"]] + [["router", s] for s in self.shards()],
        }

    # -- actions ------------------------------------------------------------------------
    @action("write", Arg("key", "text"), Arg("value", "text"), help="Write a value under a key (e.g. u01234 hello).")
    def do_write(self, key: str, value: str) -> None:
        if key not in self.keys:
            if len(self.keys) >= 10_000:
                raise SimError("the data set is full (10,000 keys); write to an existing key")
            self.keys.append(key)
            self.recount()
        self.nodes["client"].ask("write", key, value)

    @action("read", Arg("key", "text"), help="Read a key through the router.")
    def do_read(self, key: str) -> None:
        self.nodes["client"].ask("read", key)

    @action("add-shard", help="Add a shard and rebalance: watch how many keys move.")
    def do_add_shard(self) -> None:
        self.ready_to_rebalance()
        if len(self.shards()) >= MAX_SHARDS:
            raise SimError(f"at most {MAX_SHARDS} shards")
        sid = self.add_shard()
        self.emit("shard-added", node=sid)
        self.start_rebalance("add", sid)

    @action("remove-shard", Arg("node"), nodes=lambda lab: lab.shards(), when=any_state,
            not_for="'{node}' is not a shard (shards: {listed})",
            help="Move a shard's keys to the others and retire it.")
    def do_remove_shard(self, shard: str) -> None:
        if len(self.shards()) <= 2:
            raise SimError("keep at least two shards")
        self.ready_to_rebalance()
        self.start_rebalance("remove", shard)

    @action("hot-key", Arg("key", "text", optional=True), Arg("count", "int", optional=True, default=100, lo=1, hi=200),
            help="A burst of reads of one key over one second (a celebrity key): one shard takes it all.")
    def do_hot_key(self, key: str | None, count: int) -> None:
        key = key or min(self.keys)
        client = self.nodes["client"]
        for i in range(count):
            client.after(i * 1000 / count, client.ask, "read", key, key=("hot", self.now, i))
        self.emit("hot-key", key=key, count=count, shard=self.owners_of(key)[0])


def mod_moved_share(old: list[str], new: list[str]) -> float:
    """Exact share of keys that change shard under hash mod N when the shard list
    changes from `old` to `new`: hash values repeat their pattern every lcm(N, N')."""
    period = math.lcm(len(old), len(new))
    return sum(old[r % len(old)] != new[r % len(new)] for r in range(period)) / period
