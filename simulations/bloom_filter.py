"""Bloom filter: a small bit array in front of a slow store.

The store holds the items (say, the keys of an on-disk table) and every
lookup costs a slow read.  The filter (Bloom, 1970) answers the question
"could the store have this item?" from memory, so most lookups for absent
items never reach the store:

  * the filter is an array of m bits, all 0, and k hash functions;
  * insert(x): set the k bits at positions g_1(x) .. g_k(x);
  * query(x):  if any of those k bits is 0, x was never inserted:
               answer "definitely not" (no store lookup);
               if all k are 1, answer "maybe" and ask the store, because
               other items may have set those bits (a false positive).

A false negative is impossible: inserting x set all of x's bits and nothing
clears a bit.  The false-positive rate after n inserts is about
(1 - e^(-kn/m))^k, smallest when k = (m/n) ln 2.

The k positions come from k independent hash values: 32-bit slices of
blake2b digests of the item (one 512-bit digest per 16 hash functions,
each digest with its own salt), taken mod m.  Independent hashes are what
the formula assumes.  The cheaper trick many libraries use, double hashing
(g_i = h1 + i*h2 mod m, Kirsch and Mitzenmacher 2006), has a floor: two
items that share h1 and h2 mod m collide on all k bits, so its false-positive
rate never drops below about 1/m^2 per stored item, which is far above the
formula when m is small and k large (m=128, k=16).

The filter lives in memory.  After a crash it starts empty, so until it
has rebuilt itself from a scan of the store it must not answer "definitely
not": it sends every query to the store.  Items the store confirms are
added to the filter as well, so an insert that races a rebuild is never
missed.

A Bloom filter cannot delete: clearing an item's bits also clears bits
that other items share, and those items become false negatives.  The
`delete` action does exactly that, to show why (counting Bloom filters,
Fan et al. 2000, keep a counter per position instead of a bit).
"""

from __future__ import annotations

import hashlib
import math
import random
from functools import partial

from .kernel import Arg, Lab, Node, Param, SimError, action, observe, on

CLIENT_TIMEOUT = 1500  # ms the client waits for an answer
SCAN_RETRY = 500  # ms between attempts to scan the store while rebuilding
MAX_ITEMS = 100_000  # items the store accepts
SHOWN_BITS = 1024  # bits drawn in the bit array (the first ones)
Z = 4.5  # the FP check allows this many standard errors
TARGET_FP = 0.01  # "design capacity": items the filter holds at 1% with the best k
HASHES_PER_DIGEST = 16  # a 64-byte blake2b digest gives sixteen 32-bit hash values


def hash_values(item: str, k: int) -> list[int]:
    """k independent 32-bit hash values of `item` (deterministic: no per-process seed)."""
    data, values = item.encode(), []
    for block in range(-(-k // HASHES_PER_DIGEST)):
        digest = hashlib.blake2b(data, digest_size=64, salt=block.to_bytes(16, "big")).digest()
        values += [int.from_bytes(digest[4 * i:4 * i + 4], "big") for i in range(HASHES_PER_DIGEST)]
    return values[:k]


def random_item(rng: random.Random, prefix: str) -> str:
    return f"{prefix}:{rng.getrandbits(40):010x}"


def formula(m: int, k: int, n: int) -> float:
    """The textbook false-positive rate (1 - e^(-kn/m))^k."""
    return (1 - math.exp(-k * n / m)) ** k if n else 0.0


def best_k(m: int, n: int) -> float:
    return (m / n) * math.log(2) if n else float("inf")


def capacity(m: int) -> int:
    """Items the filter holds at TARGET_FP when k is optimal: n = m (ln 2)^2 / ln(1/p)."""
    return max(1, int(m * math.log(2) ** 2 / math.log(1 / TARGET_FP)))


def fp_standard_error(m: int, k: int, n: int, queries: int) -> float:
    """How far a measured FP rate may stray by chance: the binomial error of the
    queries plus the spread of the filter itself (how many bits kn throws set)."""
    p = formula(m, k, n)
    throws = k * n
    empty = m * (1 - 1 / m) ** throws
    var_set = empty + m * (m - 1) * (1 - 2 / m) ** throws - empty * empty  # variance of the number of 0 bits
    fill = 1 - math.exp(-k * n / m)
    sd_fill = k * fill ** (k - 1) * math.sqrt(max(var_set, 0.0)) / m
    return math.sqrt(p * (1 - p) / queries + sd_fill ** 2)


class Bloom:
    """m bits and k hash functions."""

    def __init__(self, m: int, k: int):
        self.m, self.k = m, k
        self.bits = bytearray(m)
        self.ones = 0  # bits set

    def positions(self, item: str) -> list[int]:
        """g_1(x) .. g_k(x): the k hash values, each mod m."""
        return [h % self.m for h in hash_values(item, self.k)]

    def add(self, item: str) -> None:
        for p in self.positions(item):
            if not self.bits[p]:
                self.bits[p] = 1
                self.ones += 1

    def might_contain(self, item: str) -> bool:
        return all(self.bits[p] for p in self.positions(item))  # one 0 bit is enough: definitely not

    def clear(self, item: str) -> None:
        """The naive delete: clear the item's bits (other items share them!)."""
        for p in self.positions(item):
            if self.bits[p]:
                self.bits[p] = 0
                self.ones -= 1


# --------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------


class Store(Node):
    """The slow source of truth: every read or write takes store_ms."""

    def boot(self) -> None:
        self.role = "store"
        self.disk.setdefault("items", {})  # item -> True (a dict keeps insertion order)
        self.disk.setdefault("bytes", 0)

    def view(self) -> dict:
        return {"items": len(self.disk["items"]),
                "label": f"{len(self.disk['items'])} items · {self.lab.params['store_ms']}ms"}

    def on_message(self, msg) -> None:
        # The store is slow: it answers each request after store_ms.
        self.after(self.lab.params["store_ms"], self.serve, msg, key=("io", msg.id, msg.type))

    def keep(self, items: list[str]) -> None:
        for item in items:
            if item not in self.disk["items"]:
                self.disk["items"][item] = True
                self.disk["bytes"] += len(item.encode())

    def serve(self, msg) -> None:
        items, body = self.disk["items"], msg.body
        if msg.type == "GET":
            self.send(msg.src, "FOUND", rid=body["rid"], item=body["item"], found=body["item"] in items)
        elif msg.type == "PUT":
            self.keep(body["items"])
            self.send(msg.src, "STORED", rid=body.get("rid"), n=len(body["items"]), items=body["items"])
        elif msg.type == "DEL":
            if items.pop(body["item"], None):
                self.disk["bytes"] -= len(body["item"].encode())
        elif msg.type == "SCAN":
            self.send(msg.src, "SCANNED", n=len(items), items=list(items))


class Filter(Node):
    """The service in front of the store; its Bloom filter lives in memory."""

    def boot(self) -> None:
        self.role = "filter"
        self.bloom = Bloom(self.lab.m, self.lab.k)
        self.last: dict | None = None  # the learner's last item (for the drawing)
        self.waiting: dict[int, str] = {}  # queries waiting for the store: rid -> my answer
        self.state = "ready"
        if self.restarted:  # memory is empty: rebuild from the store first
            self.state = "rebuilding"
            self.after(0, self.rebuild, key="rebuild")

    def view(self) -> dict:
        return {"state": self.state, "bits_set": self.bloom.ones,
                "label": f"{self.state} · {100 * self.bloom.ones / self.bloom.m:.0f}% bits set"}

    # -- rebuilding after a crash or a resize: scan the store ---------------------------
    def rebuild(self) -> None:
        self.bloom = Bloom(self.lab.m, self.lab.k)
        self.state = "rebuilding"
        self.lab.emit("rebuilding", node=self.id, m=self.bloom.m, k=self.bloom.k)
        self.scan()

    def scan(self) -> None:
        self.request("store", "SCAN", awaiting="scan", timeout=SCAN_RETRY, on_timeout=self.scan)

    @on("SCANNED")
    def scanned(self, msg) -> None:
        if self.state != "rebuilding":
            return
        for item in msg.body["items"]:
            self.bloom.add(item)
        self.state = "ready"
        self.answered("scan")
        self.lab.emit("rebuilt", node=self.id, items=msg.body["n"], bits_set=self.bloom.ones)

    def show(self, item: str, op: str, answer: str | None = None) -> None:
        positions = self.bloom.positions(item)
        self.last = {"item": item, "op": op, "answer": answer, "t": round(self.now, 3),
                     "bits": [{"pos": p, "lit": bool(self.bloom.bits[p])} for p in positions]}

    # -- insert: set the k bits, then store --------------------------------------------
    @on("INSERT")
    def insert(self, msg) -> None:
        self.bloom.add(msg.body["item"])
        self.show(msg.body["item"], "insert")
        self.send("store", "PUT", rid=msg.body["rid"], items=[msg.body["item"]])

    @on("STORED")
    def stored(self, msg) -> None:
        for item in msg.body["items"]:  # the store has it: so must the filter (covers a racing rebuild)
            self.bloom.add(item)
        self.send("client", "INSERTED", rid=msg.body["rid"])

    @on("DELETE")
    def delete(self, msg) -> None:
        self.bloom.clear(msg.body["item"])  # the naive delete: other items lose bits too
        self.show(msg.body["item"], "delete")
        self.send("store", "DEL", item=msg.body["item"])
        self.send("client", "DELETED", rid=msg.body["rid"])

    # -- query: one 0 bit means "definitely not"; otherwise ask the store ----------------
    @on("QUERY")
    def query(self, msg) -> None:
        rid, item, mode = msg.body["rid"], msg.body["item"], self.lab.mode
        if mode == "no-filter" or self.state != "ready":
            answer = "no filter" if mode == "no-filter" else "maybe (rebuilding)"
        elif self.bloom.might_contain(item):
            answer = "maybe"
        else:
            answer = "definitely not"
        if msg.body.get("learner"):
            self.show(item, "query", answer)
        self.lab.witness("verdict", item=item, answer=answer)
        if answer == "definitely not":
            self.send("client", "ANSWER", rid=rid, answer=answer)
        else:
            self.waiting[rid] = answer
            self.send("store", "GET", rid=rid, item=item)

    @on("FOUND")
    def found(self, msg) -> None:
        answer = self.waiting.pop(msg.body["rid"], "maybe")
        self.send("client", "ANSWER", rid=msg.body["rid"], answer=answer, found=msg.body["found"])


class Client(Node):
    """Asks about items (some that were inserted, most that never were) and notes how each query ended."""

    def boot(self) -> None:
        self.role = "client"
        self.sent = 0
        self.waiting: dict[int, tuple[str, str, float]] = {}  # request id -> (kind, item, when it was sent)
        self.inserted: list[str] = []  # every item ever inserted (a batch load adds its items here too)
        self.recent: list[dict] = []  # the last queries' outcomes (for the page)
        if self.lab.params["rate"]:
            self.every(1000 / self.lab.params["rate"], self.background_query, key="tick")

    def view(self) -> dict:
        return {"label": f"{self.lab.params['rate']} queries/s"}

    def background_query(self) -> None:
        if self.inserted and self.rng.random() * 100 < self.lab.params["present"]:
            item = self.inserted[int(self.rng.random() * len(self.inserted))]
        else:
            item = random_item(self.rng, "user")
        self.ask("QUERY", item, learner=False)

    def ask(self, kind: str, item: str, learner: bool = True) -> None:
        self.sent += 1
        rid = self.sent
        self.waiting[rid] = (kind, item, self.now)
        if kind == "INSERT" and item not in self.inserted:
            self.inserted.append(item)
        self.request("filter", kind, awaiting=("req", rid), timeout=CLIENT_TIMEOUT, rid=rid, item=item, learner=learner,
                     on_timeout=partial(self.finish, rid, {"error": "no answer"}))

    def on_message(self, msg) -> None:  # every answer: the one its request waits for
        rid = msg.body.get("rid")
        if self.answered(("req", rid)):
            self.finish(rid, msg.body)

    def finish(self, rid: int, body: dict) -> None:
        """A request answered or timed out.  A "maybe" the store does not confirm is a false positive."""
        kind, item, sent = self.waiting.pop(rid)
        if kind != "QUERY":
            return
        answer, found = body.get("answer"), body.get("found")
        if body.get("error"):
            self.lab.count("errors")
            outcome = "no answer"
        elif answer == "definitely not":
            outcome = "no lookup"
        elif found:
            outcome = "found"
        elif answer == "maybe":
            outcome = "false positive"
            self.lab.count("false_positives")
        else:
            outcome = "not found"
        entry = {"item": item, "answer": answer or "-", "outcome": outcome, "ms": round(self.now - sent, 1)}
        self.recent.append(entry)
        del self.recent[:-8]
        self.lab.emit("answer", rid=rid, **entry)


# --------------------------------------------------------------------------
# The lab
# --------------------------------------------------------------------------


class BloomFilterLab(Lab):
    slug = "bloom-filter"
    title = "Bloom filter"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    INVARIANTS = {"no-false-negatives": ("*",), "fp-rate": ("bloom",)}
    PARAMS = (
        Param("mode", "bloom", "Put a Bloom filter in front of the store, or send every query to the store.",
              choices=("bloom", "no-filter")),
        Param("m", 1024, "Bits in the filter.", lo=64, hi=65536),
        Param("k", 4, "Hash functions (bits set per item).", lo=1, hi=16),
        Param("items", 100, "Random items inserted at the start.", lo=0, hi=5000),
        Param("rate", 4, "Background queries per second.", lo=0, hi=20),
        Param("present", 20, "Percent of background queries that ask for an inserted item.", lo=0, hi=100),
        Param("store_ms", 40, "How long one store read or write takes (ms).", lo=1, hi=1000),
    )
    FAULTS = ("crash", "restart", "pause", "resume", "partition", "cut", "heal", "delay", "loss", "slow")
    UNFAULTABLE = ("client",)

    def setup(self) -> None:
        p = self.params
        self.mode = p["mode"]
        self.m, self.k = p["m"], p["k"]
        self.points: list[dict] = []  # measurements for the chart (this m and k)
        self.last_measure: dict | None = None
        self.metrics.update({"queries": 0, "definitely_not": 0, "maybe": 0, "false_positives": 0,
                             "store_lookups": 0, "lookups_saved": 0, "false_negatives": 0, "errors": 0})
        self.client: Client = self.add_node(Client(self, "client"))
        self.filter: Filter = self.add_node(Filter(self, "filter"))
        self.store: Store = self.add_node(Store(self, "store"))
        self.add_check("no-false-negatives", "The filter never says \"definitely not\" for an item the store holds.")
        self.add_check("fp-rate", f"The measured false-positive rate is within {Z} standard errors of "
                       "(1 - e^(-kn/m))^k.")
        self.checks["fp-rate"].detail = "not measured yet: run measure"
        self.load([random_item(self.rng, "user") for _ in range(p["items"])])

    def n(self) -> int:
        return len(self.store.disk["items"])

    @observe("verdict")
    def verdict(self, fact: dict) -> None:
        """The filter's verdict, judged against the truth in the store."""
        item, answer = fact["item"], fact["answer"]
        self.count("queries")
        if answer == "definitely not":
            self.count("definitely_not")
            self.count("lookups_saved")
            if item in self.store.disk["items"]:
                self.count("false_negatives")
                self.fail("no-false-negatives", f"\"definitely not\" for {item}, which the store holds")
        else:
            self.count("store_lookups")
            if answer == "maybe":
                self.count("maybe")

    # -- measuring -------------------------------------------------------------------
    def measure(self, queries: int) -> dict:
        """Query the filter with items that were never inserted and count the 'maybe's;
        then ask it about every stored item: any 'definitely not' is a false negative."""
        bloom, m, k, n = self.filter.bloom, self.m, self.k, self.n()
        positives = sum(bloom.might_contain(random_item(self.rng, "probe")) for _ in range(queries))
        stored = list(self.store.disk["items"])[:20_000]
        misses = [item for item in stored if not bloom.might_contain(item)]
        measured, expected = positives / queries, formula(m, k, n)
        tolerance = Z * fp_standard_error(m, k, n, queries) + 1 / queries
        result = {"n": n, "queries": queries, "positives": positives, "measured": round(measured, 5),
                  "formula": round(expected, 5), "from_fill": round((bloom.ones / m) ** k, 5),
                  "tolerance": round(tolerance, 5), "ok": abs(measured - expected) <= tolerance,
                  "members": len(stored), "false_negatives": len(misses),
                  "best_k": round(best_k(m, n), 2) if n else None}
        self.last_measure = result
        self.points.append({"n": n, "measured": result["measured"], "formula": result["formula"]})
        del self.points[:-24]
        self.emit("measured", m=m, k=k, **result)
        detail = (f"n={n}: measured {measured:.2%} over {queries} queries, formula {expected:.2%}, "
                  f"tolerance ±{tolerance:.2%}")
        if result["ok"]:
            self.holds("fp-rate", detail)
        else:
            self.fail("fp-rate", detail)
        if misses:
            self.count("false_negatives", len(misses))
            self.fail("no-false-negatives", f"{len(misses)} of {len(stored)} stored items get \"definitely not\" "
                      f"(e.g. {misses[0]})")
        else:
            self.note("no-false-negatives", f"all {len(stored)} stored items answer \"maybe\"")
        return result

    def load(self, items: list[str]) -> None:
        """A batch load: the items go into the store and the filter in one step."""
        self.client.inserted += items
        for item in items:
            self.filter.bloom.add(item)
        self.store.keep(items)

    def bulk_insert(self, count: int) -> None:
        self.load([random_item(self.rng, "user") for _ in range(count)])
        self.emit("inserted", count=count, n=self.n(), bits_set=self.filter.bloom.ones)

    def ready(self, what: str) -> None:
        if self.store.status != "up":
            raise SimError(f"the store is {self.store.status}: restart or resume it to {what}")
        if self.filter.status != "up":
            raise SimError(f"the filter is {self.filter.status}: restart or resume it to {what}")
        if self.filter.state != "ready":
            raise SimError(f"the filter is still rebuilding from the store; wait to {what}")

    # -- views -------------------------------------------------------------------------
    def view(self) -> dict:
        m, k, n = self.m, self.k, self.n()
        # A crashed filter has lost its memory: draw it empty.
        bloom = self.filter.bloom if self.filter.status != "down" else Bloom(m, k)
        shown = min(m, SHOWN_BITS)
        hash_set = int(self.store.disk["bytes"] + n * 16 / 0.75)  # item bytes + (hash, pointer) per slot at 75% load
        saved = self.metrics["lookups_saved"]
        asked = self.metrics["queries"]
        absent = self.metrics["false_positives"] + self.metrics["definitely_not"]
        return {
            "mode": self.mode, "m": m, "k": k, "n": n,
            "filter_state": self.filter.state if self.filter.status != "down" else "down",
            "capacity": capacity(m),
            "fill": round(bloom.ones / m, 4),
            "bits_set": bloom.ones,
            "best_k": round(best_k(m, n), 2) if n else None,
            "formula": round(formula(m, k, n), 5),
            "bits": {"shown": shown, "set": "".join("1" if bit else "0" for bit in bloom.bits[:shown])},
            "last": self.filter.last if self.filter.status != "down" else None,
            "recent": list(self.client.recent),
            "measure": self.last_measure,
            "chart": {"points": list(self.points)},  # drawn by the web (pattern_lab/runs/charts.py)
            "live_fp": round(self.metrics["false_positives"] / absent, 4) if absent else None,
            "saved_share": round(saved / asked, 4) if asked else None,
            "memory": {"bloom": math.ceil(m / 8), "hash_set": hash_set,
                       "bits_per_item": round(m / n, 1) if n else None,
                       "bloom_pct": round(100 * math.ceil(m / 8) / max(hash_set, math.ceil(m / 8)), 1)},
            "edges": [["client", "filter"], ["filter", "store"]],
        }

    # -- actions --------------------------------------------------------------------------
    @action("insert", Arg("item", "text"), help="Insert an item: the filter sets its k bits, the store keeps it.")
    def do_insert(self, item: str) -> None:
        if self.n() >= MAX_ITEMS:
            raise SimError(f"the store is full ({MAX_ITEMS} items)")
        self.client.ask("INSERT", item)

    @action("query", Arg("item", "text"), help="Ask whether an item is there: \"definitely not\" or \"maybe\".")
    def do_query(self, item: str) -> None:
        self.client.ask("QUERY", item)

    @action("delete", Arg("item", "text"),
            help="Delete an item the naive way, clearing its k bits: items sharing a bit become false negatives.")
    def do_delete(self, item: str) -> None:
        if item not in self.store.disk["items"]:
            raise SimError(f"the store has no item '{item}'")
        self.client.ask("DELETE", item)

    @action("insert-random", Arg("count", "int", lo=1, hi=20_000),
            help="Insert this many random items at once, then measure the false-positive rate.")
    def do_insert_random(self, count: int) -> None:
        self.ready("insert in bulk")
        if self.n() + count > MAX_ITEMS:
            raise SimError(f"the store holds at most {MAX_ITEMS} items ({self.n()} now)")
        self.bulk_insert(count)
        self.measure(10_000)

    @action("measure", Arg("queries", "int", optional=True, default=10_000, lo=100, hi=20_000),
            help="Query the filter with items never inserted and compare the false-positive rate with the formula.")
    def do_measure(self, queries: int) -> None:
        self.ready("measure")
        self.measure(queries)

    @action("overfill", help="Keep inserting well past the filter's capacity, measuring as n grows.")
    def do_overfill(self) -> None:
        self.ready("overfill it")
        target = max(4 * capacity(self.m), 2 * self.n())
        if target > MAX_ITEMS:
            raise SimError(f"the store holds at most {MAX_ITEMS} items; use a smaller m or resize")
        start = self.n()
        for step in range(1, 7):
            goal = start + (target - start) * step // 6
            if goal > self.n():
                self.bulk_insert(goal - self.n())
            self.measure(5_000)

    @action("resize", Arg("m", "int", lo=64, hi=65536), Arg("k", "int", lo=1, hi=16),
            help="Build a new filter with m bits and k hashes from the items in the store.")
    def do_resize(self, m: int, k: int) -> None:
        if self.filter.status != "up":
            raise SimError(f"the filter is {self.filter.status}: restart or resume it first")
        if self.store.status == "down":
            raise SimError("the store is down: a new filter is built by scanning it")
        self.m, self.k = m, k
        self.points, self.last_measure = [], None
        self.emit("resize", m=m, k=k)
        self.filter.rebuild()
