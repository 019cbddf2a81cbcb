"""kind=cache: every request reads a key from a slow backend.  The cache keeps
each answer for `ttl` ms in its memory and serves it from there (a hit) until it
expires (then a miss goes to the backend).

A crashed cache sidecar loses its memory; while it is down the app falls back
to calling the backend directly (slower, but the answers stay right), and a
restarted cache starts cold.  `serve_stale` is the tempting shortcut: when the
backend does not answer, serve the expired entry anyway (older than the TTL).
"""

from dataclasses import dataclass
from functools import partial

from ..kernel import Node, fmt_ms, observe, on
from .shared import ROLE, Backend, Call, CallingApp, CallsLab, mean

FETCH_TIMEOUT = 300  # how long the cache (or the app, going direct) waits for the backend
KEYS = 10  # keys the app reads (low keys are read more often)
UPDATE_EVERY = 1000  # the backend changes one key's value this often


class CachedApp(CallingApp):
    def work(self, rid: int, to: str) -> None:
        self.call(rid, to, f"k{int(KEYS * self.rng.random() ** 2)}")  # every request reads a key

    def without_helper(self, cid: int, why: str) -> None:
        """Our choice: go to the backend directly, slower but right."""
        call = self.calls[cid]
        self.lab.count("fallback")
        call.fallback = why
        self.send("backend", "FETCH", cid=cid, key=call.key)
        self.after(FETCH_TIMEOUT, self.finish, cid, False, "the backend did not answer", "direct", key=("call", cid))

    @on("RESULT")
    def result(self, msg) -> None:  # the backend's answer to a direct call
        self.finish(msg.body["cid"], msg.body["ok"], "backend error", via="direct")


@dataclass
class Entry:
    v: int  # the value's version
    at: float  # when it was fetched


class Cache(Node):
    """Answers from memory while an entry is younger than the TTL, else asks the backend."""

    def boot(self) -> None:
        self.role = ROLE[self.lab.mode]
        self.entries: dict[str, Entry] = {}  # memory only: a crash loses it
        self.fetching: dict[int, Call] = {}

    @on("CALL")
    def read(self, msg) -> None:
        cid, key = msg.body["cid"], msg.body["key"]
        entry = self.entries.get(key)
        if entry and self.now - entry.at <= self.lab.params["ttl"]:
            self.serve(cid, msg.src, key, entry, hit=True)
            return
        self.fetching[cid] = Call(msg.src, self.now, key)
        why = f"the backend did not answer within {FETCH_TIMEOUT} ms"
        self.request("backend", "FETCH", awaiting=("fetch", cid), timeout=FETCH_TIMEOUT,
                     on_timeout=partial(self.backend_failed, cid, why), cid=cid, key=key)

    @on("RESULT")
    def fetched(self, msg) -> None:
        cid = msg.body["cid"]
        if not self.answered(("fetch", cid)):
            return  # given up on
        if not msg.body["ok"]:
            self.backend_failed(cid, "the backend answered with an error")
            return
        read = self.fetching.pop(cid)
        self.entries[read.key] = entry = Entry(msg.body["v"], self.now)
        self.serve(cid, read.to, read.key, entry, hit=False, upstream=self.now - read.start)

    def backend_failed(self, cid: int, why: str) -> None:
        read = self.fetching.pop(cid)
        entry = self.entries.get(read.key)
        if entry and self.lab.params["serve_stale"]:  # the shortcut: an expired answer beats none
            self.serve(cid, read.to, read.key, entry, hit=True, stale=True)
        else:
            self.send(read.to, "REPLY", cid=cid, ok=False, why=why)

    def serve(self, cid: int, to: str, key: str, entry: Entry, hit: bool, stale: bool = False,
              upstream: float | None = None) -> None:
        self.lab.witness("served", key=key, entry=entry, hit=hit, stale=stale)
        self.send(to, "REPLY", cid=cid, ok=True, hit=hit, v=entry.v,
                  **({"upstream": round(upstream, 3)} if upstream is not None else {}))

    def view(self) -> dict:
        return {"label": "down · cache lost" if self.status == "down" else f"{len(self.entries)} entries"}


class SlowBackend(Backend):
    """The slow backend whose values change now and then."""

    WORK_MS = (40.0, 80.0)  # its work per read
    LABEL = "slow backend"

    def boot(self) -> None:
        super().boot()
        self.disk.setdefault("versions", {f"k{i}": 1 for i in range(KEYS)})
        self.every(UPDATE_EVERY, self.update, key="update")

    def update(self) -> None:
        """Someone changed a value at the source."""
        key = f"k{int(KEYS * self.rng.random())}"
        self.disk["versions"][key] += 1
        self.lab.emit("update", node=self.id, key=key, v=self.disk["versions"][key])

    def answer(self, to: str, body: dict) -> None:
        super().answer(to, {**body, "v": self.disk["versions"][body["key"]]})


class CacheLab(CallsLab):
    NODES = (CachedApp, Cache, SlowBackend)

    def setup(self) -> None:
        super().setup()
        self.add_check("cache-consistent", "A cached answer is never older than the TTL.")

    @observe("served")
    def served(self, fact: dict) -> None:
        key, entry, ttl = fact["key"], fact["entry"], self.params["ttl"]
        self.count("hits" if fact["hit"] else "misses")
        if entry.v < self.nodes["backend"].disk["versions"][key]:
            self.count("outdated")  # the backend has a newer value: allowed while younger than the TTL
        if fact["stale"]:
            self.count("stale_served")
        age = self.now - entry.at
        if age > ttl:
            self.fail("cache-consistent", f"{key} was served {fmt_ms(age)} after it was fetched, past the TTL of "
                                          f"{fmt_ms(ttl)} (serve_stale while the backend failed)")

    def audit(self) -> None:
        super().audit()
        self.note("cache-consistent", f"{self.metrics['hits']} hits, none older than {fmt_ms(self.params['ttl'])}")

    def view(self) -> dict:
        m, ttl = self.metrics, self.params["ttl"]
        cache, versions = self.nodes["sidecar"], self.nodes["backend"].disk["versions"]
        entries = [] if cache.status == "down" else [
            {"key": k, "v": e.v, "age": round(self.now - e.at), "current": e.v == versions[k],
             "fresh": self.now - e.at <= ttl, "bar": round(100 * min(1.0, (self.now - e.at) / max(ttl, 1)))}
            for k, e in sorted(cache.entries.items(), key=lambda kv: int(kv[0][1:]))]
        looked = m["hits"] + m["misses"]
        return {**super().view(),
                "cache": {"ttl": ttl, "serve_stale": self.params["serve_stale"], "entries": entries,
                          "size": len(entries), "hits": m["hits"], "misses": m["misses"],
                          "hit_rate": round(100 * m["hits"] / looked) if looked else 0,
                          "fallback": m["fallback"], "stale_served": m["stale_served"], "outdated": m["outdated"],
                          "hit_ms": mean([c["ms"] for c in self.recent_calls if c["hit"]]),
                          "miss_ms": mean([c["ms"] for c in self.recent_calls if c["hit"] is False])}}
