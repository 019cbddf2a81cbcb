"""Sidecar: a log shipper next to the application, sharing its volume.

The application answers requests and writes one log line per request.  The
lines must end up in a log store (the article's example: Elastic).  Where
the shipping code runs is the lab's `mode`:

  * sidecar:     the app appends each line to a file on a volume that it
                 shares with a second container on the same node, the
                 sidecar.  The sidecar tails the file: it reads lines from its
                 read offset, sends them in a BATCH to the store, and when the
                 store ACKs the batch it writes the new offset to the volume.
                 The app never waits for the shipper and never notices it
                 crash; lines wait on the volume until the shipper is back;
  * service:     the shipping code is a separate service on another host
                 (still called `sidecar` here, so the same commands work in
                 every mode).  The app sends every line over the network
                 and waits for the service's ACK before answering: each
                 request pays a network round trip, and a dead service costs
                 every request a timeout;
  * in-process:  the shipping code is a library inside the app's process:
                 the lines wait in the process's memory.  It is the fastest,
                 but a crash of the library is a crash of the app, and the
                 lines in memory die with it.

Exactly once, end to end: the shipper commits its offset only after the
store's ACK (so a crash or an outage makes it send a batch again: at least
once), and the store ignores a line id it already has (dedupe: so a batch
sent twice is stored once).  Committing the offset before the ACK is the
classic bug: a batch lost in an outage is never sent again.

The lab's `kind` puts two other helpers in the same three places:

  * proxy:  half of the app's requests need a downstream service (`backend`).
            The app makes that call through the proxy, which does the
            plumbing a service mesh does (Envoy in Istio: mTLS, retries,
            timeouts).  Here it gives each try TRY_TIMEOUT ms and retries once
            on an error or a timeout, so a call always ends within its budget.
            As a sidecar the proxy listens on localhost: when it has crashed,
            the node's OS refuses the connection at once, so the app's
            outbound calls fail fast while requests that need no call are
            served as usual.  As a remote service a dead proxy host refuses
            nothing: the app waits for its own, longer, timeout.  In-process,
            a crash of the proxy library is a crash of the app.
  * cache:  every request reads a key from a slow backend.  The cache keeps
            each answer for `ttl` ms in its memory and serves it from there
            (a hit) until it expires (then a miss goes to the backend).  A
            crashed cache sidecar loses its memory; while it is down the app
            falls back to calling the backend directly (slower, but the
            answers stay right), and a restarted cache starts cold.
            `serve_stale` is the tempting shortcut: when the backend does not
            answer, serve the expired entry anyway (older than the TTL).
"""

from __future__ import annotations

from .kernel import Arg, Lab, Link, Message, Network, Node, Param, SimError, action, fmt_ms

WORK_MS = (8.0, 16.0)  # the app's real work per request
FILE_WRITE_MS = 0.5  # appending a line to a file on the local volume
MEMORY_WRITE_MS = 0.05  # appending a line to an in-memory buffer
LOG_TIMEOUT = 150  # service mode: how long the app waits for the log service's ACK
CLIENT_TIMEOUT = 1000  # how long the client waits for the app
SHIP_EVERY = 200  # ms between the shipper's looks at its source
BATCH = 6  # lines per batch at most
ACK_TIMEOUT = 400  # ms the shipper waits for the store's ACK
RETRY_AFTER = 600  # ms before the shipper tries again after a failed batch
LOST_AFTER = 1500  # ms after a commit before an unstored line counts as lost

# proxy and cache kinds
NEEDS_CALL = 0.5  # proxy: share of requests that need the downstream service
PROXY_WORK_MS = 0.3  # proxy: its own work per call (TLS, headers): the same code in every mode
TRY_TIMEOUT = 100  # proxy: how long one try may take before the proxy gives up on it
CALL_BUDGET = 250  # proxy: two tries and the hops: no call should wait longer than this
APP_CALL_TIMEOUT = 600  # the app's own (generic) timeout for a call to the helper
DOWNSTREAM_MS = (5.0, 15.0)  # proxy: the downstream service's work per call
BACKEND_MS = (40.0, 80.0)  # cache: the slow backend's work per read
FETCH_TIMEOUT = 300  # cache: how long the cache waits for the backend
KEYS = 10  # cache: keys the app reads (low keys are read more often)
UPDATE_EVERY = 1000  # cache: the backend changes one key's value this often


class LocalNetwork(Network):
    """Containers on one node talk over localhost: well under a millisecond.
    (The kernel's network has one latency range for every link.)"""

    def local(self, src: str, dst: str) -> bool:
        return {src, dst} == {"app", "sidecar"} and self.lab.mode != "service"

    def send(self, src: str, dst: str, type: str, body: dict | None = None) -> None:
        if not self.local(src, dst):
            return super().send(src, dst, type, body)
        # The kernel's fast path draws the LAN latency; localhost goes the long way round.
        self.next_id += 1
        self.sent += 1
        self._send_with_faults(Message(self.next_id, src, dst, type, dict(body) if body else {}, self.lab.sim.now))

    def transit_time(self, src: str, dst: str) -> float:
        if self.local(src, dst):
            # in-process: a function call; sidecar: a hop over the node's loopback interface
            base = 0.02 if self.lab.mode == "in-process" else 0.1 + 0.2 * self.lab.sim.rng.random()
            link = self.links.get((src, dst))
            return round(base + (link.delay if link else 0.0), 3)
        return super().transit_time(src, dst)


class Client(Node):
    def boot(self) -> None:
        self.role = "client"
        self.pending: dict[int, float] = {}
        self.schedule()

    def schedule(self) -> None:
        if self.lab.rate > 0:
            self.set_timer("next", (1000 / self.lab.rate) * (0.5 + self.lab.sim.rng.random()))
        else:
            self.cancel_timer("next")

    def on_timer(self, name: str, data: dict) -> None:
        if name == "next":
            self.schedule()
            self.lab.rid += 1
            rid = self.lab.rid
            self.pending[rid] = self.now
            self.lab.count("requests")
            self.send("app", "REQ", rid=rid)
            self.set_timer(f"timeout:{rid}", CLIENT_TIMEOUT, rid=rid)
        elif name.startswith("timeout:"):
            sent = self.pending.pop(data["rid"], None)
            if sent is not None:
                self.lab.answered(data["rid"], None, "the app did not answer", sent=sent)

    def on_message(self, msg) -> None:
        if msg.type == "RESP":
            sent = self.pending.pop(msg.body["rid"], None)
            if sent is not None:
                self.cancel_timer(f"timeout:{msg.body['rid']}")
                self.lab.answered(msg.body["rid"], self.now - sent, msg.body.get("why", ""),
                                  ok=msg.body.get("ok", True))


class App(Node):
    """The business logic.  Writes one log line per request, wherever the mode says."""

    def boot(self) -> None:
        self.role = "app"
        self.unacked: dict[str, float] = {}  # service mode: lines the log service has not confirmed
        self.waiting: dict[str, dict] = {}  # service mode: requests waiting for their line's ACK
        if self.lab.mode == "service":
            self.set_timer("resend", 500)

    def on_message(self, msg) -> None:
        if msg.type == "REQ":
            lo, hi = WORK_MS
            self.set_timer(f"work:{msg.body['rid']}", lo + (hi - lo) * self.lab.sim.rng.random(),
                           rid=msg.body["rid"], to=msg.src)
        elif msg.type == "LOGGED":  # service mode: the log service has the line
            line = msg.body["line"]
            self.unacked.pop(line, None)
            req = self.waiting.pop(line, None)
            if req:
                self.cancel_timer(f"log-wait:{line}")
                self.send(req["to"], "RESP", rid=req["rid"])

    def on_timer(self, name: str, data: dict) -> None:
        if name.startswith("work:"):
            self.log_line(data["rid"], data["to"])
        elif name.startswith("answer:"):
            self.send(data["to"], "RESP", rid=data["rid"])
        elif name.startswith("log-wait:"):  # service mode: give up waiting, answer anyway
            req = self.waiting.pop(data["line"], None)
            if req:
                self.lab.count("log_waits_timed_out")
                self.send(req["to"], "RESP", rid=req["rid"])
        elif name == "resend":  # service mode: lines the log service never confirmed
            for line in list(self.unacked)[:BATCH]:
                self.send("sidecar", "LOG", line=line)
            self.set_timer("resend", 500)

    def log_line(self, rid: int, to: str) -> None:
        line = f"L{rid}"
        self.lab.written(line)
        mode = self.lab.mode
        if mode == "sidecar":  # append to the file on the shared volume
            self.lab.volume["lines"].append(line)
            self.set_timer(f"answer:{rid}", FILE_WRITE_MS, rid=rid, to=to)
        elif mode == "in-process":  # hand it to the logging library, in memory
            self.lab.memory["lines"].append(line)
            self.set_timer(f"answer:{rid}", MEMORY_WRITE_MS, rid=rid, to=to)
        else:  # send it to the remote log service and wait for its ACK
            self.unacked[line] = self.now
            self.waiting[line] = {"rid": rid, "to": to}
            self.send("sidecar", "LOG", line=line)
            self.set_timer(f"log-wait:{line}", LOG_TIMEOUT, line=line)

    def view(self) -> dict:
        if self.lab.mode == "service" and self.status != "down":
            return {"label": f"{len(self.unacked)} lines unconfirmed" if self.unacked else "app"}
        return {"label": "app"}


class Shipper(Node):
    """The shipping code: reads lines from its source, sends batches to the store,
    and moves its read offset.  Its source depends on the mode (see `source`)."""

    def boot(self) -> None:
        self.role = {"sidecar": "sidecar", "service": "remote-service", "in-process": "in-process"}[self.lab.mode]
        self.in_flight: dict | None = None
        self.batch_no = 0
        if self.lab.mode == "service":
            self.disk.setdefault("lines", [])
            self.disk.setdefault("offset", 0)
        self.set_timer("ship", SHIP_EVERY)

    def source(self) -> dict:
        """Where the lines and the offset live: the shared volume (sidecar), the
        service's own disk (service), or the app's memory (in-process)."""
        mode = self.lab.mode
        return self.lab.volume if mode == "sidecar" else self.disk if mode == "service" else self.lab.memory

    def on_message(self, msg) -> None:
        if msg.type == "LOG":  # service mode: a line from the app
            line = msg.body["line"]
            if line not in self.disk["lines"]:
                self.disk["lines"].append(line)
            self.send(msg.src, "LOGGED", line=line)
        elif msg.type == "ACK" and self.in_flight and msg.body["batch"] == self.in_flight["batch"]:
            self.cancel_timer("ack-timeout")
            if self.lab.params["commit"] == "after-ack":
                self.commit(self.in_flight["end"])
            self.in_flight = None
            self.set_timer("ship", 0)

    def on_timer(self, name: str, data: dict) -> None:
        if name == "ship":
            self.ship()
        elif name == "ack-timeout" and self.in_flight:
            self.lab.emit("ship-failed", node=self.id, batch=self.in_flight["batch"],
                          lines=self.in_flight["end"] - self.in_flight["start"])
            self.in_flight = None
            self.set_timer("ship", RETRY_AFTER)

    def ship(self) -> None:
        src = self.source()
        start = src["offset"]
        if self.in_flight or start >= len(src["lines"]):
            self.set_timer("ship", SHIP_EVERY)
            return
        end = min(len(src["lines"]), start + BATCH)
        self.batch_no += 1
        self.in_flight = {"batch": self.batch_no, "start": start, "end": end}
        if self.lab.params["commit"] == "before-ack":
            self.commit(end)  # the bug: the offset moves before the store has the lines
        self.send("store", "BATCH", batch=self.batch_no, lines=list(src["lines"][start:end]), first=start,
                  count=end - start)
        self.set_timer("ack-timeout", ACK_TIMEOUT)

    def commit(self, end: int) -> None:
        src = self.source()
        if end > src["offset"]:
            for line in src["lines"][src["offset"]:end]:
                self.lab.committed_at[line] = self.now
            src["offset"] = end
            self.lab.emit("commit", node=self.id, offset=end)

    def view(self) -> dict:
        if self.status == "down":
            return {"label": "down"}
        src = self.source()
        return {"offset": src["offset"], "label": f"offset {src['offset']} · backlog {len(src['lines']) - src['offset']}"}


class Store(Node):
    """The log store (think Elastic).  Its documents live on its disk."""

    def boot(self) -> None:
        self.role = "store"
        self.disk.setdefault("docs", {})  # line id -> how many copies are stored

    def on_message(self, msg) -> None:
        if msg.type == "BATCH":
            docs = self.disk["docs"]
            for line in msg.body["lines"]:
                if line in docs and self.lab.params["dedupe"]:
                    continue  # seen before: a retried batch, stored once
                docs[line] = docs.get(line, 0) + 1
                self.lab.stored(line, docs[line])
            self.send(msg.src, "ACK", batch=msg.body["batch"])

    def view(self) -> dict:
        return {"label": f"{len(self.disk['docs'])} lines stored"}


# -- proxy and cache kinds ---------------------------------------------------------------


class CallingApp(Node):
    """The app for the proxy and cache kinds: its requests call out through the helper.

    proxy: half of the requests need the downstream service; cache: every request
    reads a key.  The app always has its own timeout for the helper."""

    def boot(self) -> None:
        self.role = "app"
        self.calls: dict[int, dict] = {}  # call id (= request id) -> who waits for it, since when

    def on_message(self, msg) -> None:
        if msg.type == "REQ":
            lo, hi = WORK_MS
            self.set_timer(f"work:{msg.body['rid']}", lo + (hi - lo) * self.lab.sim.rng.random(),
                           rid=msg.body["rid"], to=msg.src)
        elif msg.type == "REPLY":  # the helper's answer
            self.finish(msg.body["cid"], msg.body["ok"], msg.body.get("why", ""), via="helper",
                        upstream=msg.body.get("upstream"), hit=msg.body.get("hit"))
        elif msg.type == "RESULT":  # cache kind: the backend's answer to a direct call (fallback)
            self.finish(msg.body["cid"], msg.body["ok"], "backend error", via="direct")

    def on_timer(self, name: str, data: dict) -> None:
        if name.startswith("work:"):
            rid, to = data["rid"], data["to"]
            if self.lab.kind == "proxy" and self.lab.sim.rng.random() >= NEEDS_CALL:
                self.send(to, "RESP", rid=rid, ok=True)  # no downstream call needed: answered at once
                return
            key = f"k{int(KEYS * self.lab.sim.rng.random() ** 2)}" if self.lab.kind == "cache" else None
            self.call(rid, to, key)
        elif name.startswith("refused:"):  # the OS said nobody listens on the helper's port
            self.helper_unreachable(data["cid"], data.get("why", "connection refused: the sidecar is down"))
        elif name.startswith("call-timeout:"):
            self.helper_unreachable(data["cid"], f"no answer from the {self.lab.sidecar_word} within "
                                                 f"{APP_CALL_TIMEOUT} ms")
        elif name.startswith("direct-timeout:"):
            self.finish(data["cid"], False, "the backend did not answer", via="direct")

    def call(self, rid: int, to: str, key: str | None) -> None:
        self.calls[rid] = {"to": to, "start": self.now, "key": key}
        if self.lab.localhost_refuses():
            # Same node: connecting to a port nobody listens on is refused by the OS at once.
            self.set_timer(f"refused:{rid}", 0.2, cid=rid)
            return
        self.send("sidecar", "CALL", cid=rid, key=key)
        self.set_timer(f"call-timeout:{rid}", APP_CALL_TIMEOUT, cid=rid)

    def helper_died(self) -> None:
        """Sidecar mode: the helper's process died, so the OS resets its open connections at once."""
        for cid, call in self.calls.items():
            if not call.get("direct"):
                self.cancel_timer(f"call-timeout:{cid}")
                self.set_timer(f"refused:{cid}", 0.2, cid=cid, why="connection reset: the sidecar died")

    def helper_unreachable(self, cid: int, why: str) -> None:
        call = self.calls.get(cid)
        if call is None or call.get("direct"):
            return
        if self.lab.kind == "cache":  # our choice: go to the backend directly, slower but right
            self.lab.count("fallback")
            call["fallback"], call["direct"] = why, True
            self.send("backend", "FETCH", cid=cid, key=call["key"])
            self.set_timer(f"direct-timeout:{cid}", FETCH_TIMEOUT, cid=cid)
        else:  # proxy: the call fails; the app answers its client with an error
            self.finish(cid, False, why, via="timeout" if why.startswith("no answer") else "refused")

    def finish(self, cid: int, ok: bool, why: str, via: str, upstream: float | None = None,
               hit: bool | None = None) -> None:
        call = self.calls.pop(cid, None)
        if call is None:
            return  # already given up on
        self.cancel_timer(f"call-timeout:{cid}")
        self.cancel_timer(f"direct-timeout:{cid}")
        ms = self.now - call["start"]
        self.lab.call_done(cid, ok, ms, via, upstream, hit, why if not ok else call.get("fallback", ""))
        self.send(call["to"], "RESP", rid=cid, ok=ok, **({} if ok else {"why": why}))

    def view(self) -> dict:
        return {"label": f"{len(self.calls)} calls open" if self.calls else "app"}


class Proxy(Node):
    """The proxy: forwards each call to the downstream service, one retry, a timeout per try."""

    def boot(self) -> None:
        self.role = {"sidecar": "sidecar", "service": "remote-service", "in-process": "in-process"}[self.lab.mode]
        self.calls: dict[int, dict] = {}

    def on_message(self, msg) -> None:
        if msg.type == "CALL":
            self.set_timer(f"work:{msg.body['cid']}", PROXY_WORK_MS, cid=msg.body["cid"], to=msg.src)
        elif msg.type == "RESULT":
            call = self.calls.get(msg.body["cid"])
            if call is None or msg.body["attempt"] != call["attempt"]:
                return  # the answer to a try we already gave up on
            self.cancel_timer(f"try:{msg.body['cid']}")
            if msg.body["ok"]:
                self.reply(msg.body["cid"], True, "")
            else:
                self.try_again(msg.body["cid"], "the downstream service answered with an error")

    def on_timer(self, name: str, data: dict) -> None:
        if name.startswith("work:"):
            self.calls[data["cid"]] = {"to": data["to"], "attempt": 0, "start": self.now}
            self.forward(data["cid"])
        elif name.startswith("try:"):
            call = self.calls.get(data["cid"])
            if call is None or call["attempt"] != data["attempt"]:
                return  # a timer of a try that already ended (it fired while we were paused)
            self.try_again(data["cid"], f"no answer from downstream within {TRY_TIMEOUT} ms")

    def forward(self, cid: int) -> None:
        call = self.calls[cid]
        call["attempt"] += 1
        self.send("backend", "FETCH", cid=cid, attempt=call["attempt"])
        self.set_timer(f"try:{cid}", TRY_TIMEOUT, cid=cid, attempt=call["attempt"])

    def try_again(self, cid: int, why: str) -> None:
        call = self.calls.get(cid)
        if call is None:
            return  # already answered
        if call["attempt"] < 2:
            self.lab.count("retries")
            self.lab.emit("retry", node=self.id, cid=cid, why=why)
            self.forward(cid)
        else:
            self.reply(cid, False, why)

    def reply(self, cid: int, ok: bool, why: str) -> None:
        call = self.calls.pop(cid)
        self.send(call["to"], "REPLY", cid=cid, ok=ok, why=why, upstream=round(self.now - call["start"], 3))

    def view(self) -> dict:
        return {"label": "down" if self.status == "down" else f"{len(self.calls)} calls in flight"}


class Cache(Node):
    """The cache: answers from memory while an entry is younger than the TTL, else asks the backend."""

    def boot(self) -> None:
        self.role = {"sidecar": "sidecar", "service": "remote-service", "in-process": "in-process"}[self.lab.mode]
        self.entries: dict[str, dict] = {}  # key -> {"v": version, "at": when fetched}; memory only
        self.fetching: dict[int, dict] = {}

    def on_message(self, msg) -> None:
        if msg.type == "CALL":
            cid, key = msg.body["cid"], msg.body["key"]
            entry = self.entries.get(key)
            if entry and self.now - entry["at"] <= self.lab.params["ttl"]:
                self.serve(cid, msg.src, key, entry, hit=True)
                return
            self.fetching[cid] = {"to": msg.src, "key": key, "start": self.now}
            self.send("backend", "FETCH", cid=cid, key=key)
            self.set_timer(f"fetch-timeout:{cid}", FETCH_TIMEOUT, cid=cid)
        elif msg.type == "RESULT":
            req = self.fetching.pop(msg.body["cid"], None)
            if req is None:
                return
            self.cancel_timer(f"fetch-timeout:{msg.body['cid']}")
            if not msg.body["ok"]:
                self.backend_failed(msg.body["cid"], req, "the backend answered with an error")
                return
            self.entries[req["key"]] = entry = {"v": msg.body["v"], "at": self.now}
            self.serve(msg.body["cid"], req["to"], req["key"], entry, hit=False, upstream=self.now - req["start"])

    def on_timer(self, name: str, data: dict) -> None:
        if name.startswith("fetch-timeout:"):
            req = self.fetching.pop(data["cid"], None)
            if req:
                self.backend_failed(data["cid"], req, f"the backend did not answer within {FETCH_TIMEOUT} ms")

    def backend_failed(self, cid: int, req: dict, why: str) -> None:
        entry = self.entries.get(req["key"])
        if entry and self.lab.params["serve_stale"]:  # the shortcut: an expired answer beats none
            self.serve(cid, req["to"], req["key"], entry, hit=True, stale=True)
        else:
            self.send(req["to"], "REPLY", cid=cid, ok=False, why=why)

    def serve(self, cid: int, to: str, key: str, entry: dict, hit: bool, stale: bool = False,
              upstream: float | None = None) -> None:
        self.lab.cache_served(key, entry, hit, stale)
        self.send(to, "REPLY", cid=cid, ok=True, hit=hit, v=entry["v"],
                  **({"upstream": round(upstream, 3)} if upstream is not None else {}))

    def view(self) -> dict:
        return {"label": "down · cache lost" if self.status == "down" else f"{len(self.entries)} entries"}


class Backend(Node):
    """proxy: the downstream service; cache: the slow backend whose values change now and then."""

    def boot(self) -> None:
        self.role = "backend"
        self.disk.setdefault("versions", {f"k{i}": 1 for i in range(KEYS)})
        if self.lab.kind == "cache":
            self.set_timer("update", UPDATE_EVERY)

    def on_message(self, msg) -> None:
        if msg.type == "FETCH":
            lo, hi = DOWNSTREAM_MS if self.lab.kind == "proxy" else BACKEND_MS
            self.set_timer(f"work:{msg.src}:{msg.body['cid']}:{msg.body.get('attempt', 1)}",
                           lo + (hi - lo) * self.lab.sim.rng.random(), to=msg.src, **msg.body)

    def on_timer(self, name: str, data: dict) -> None:
        if name == "update":  # someone changed a value at the source
            key = f"k{int(KEYS * self.lab.sim.rng.random())}"
            self.disk["versions"][key] += 1
            self.lab.emit("update", node=self.id, key=key, v=self.disk["versions"][key])
            self.set_timer("update", UPDATE_EVERY)
        elif name.startswith("work:"):
            to = data.pop("to")
            ok = self.lab.sim.rng.random() * 100 >= self.lab.flaky
            key = data.get("key")
            self.send(to, "RESULT", ok=ok, **data, **({"v": self.disk["versions"][key]} if key else {}))

    def view(self) -> dict:
        return {"label": "downstream service" if self.lab.kind == "proxy" else "slow backend"}


class Sidecar(Lab):
    slug = "sidecar"
    title = "Sidecar"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    INVARIANTS = {"app-survives": ("sidecar",), "exactly-once": ("sidecar+log-shipper+after-ack+dedupe=on",)}
    PARAMS = (
        Param("mode", "sidecar", "Where the helper's code runs.", choices=("sidecar", "service", "in-process")),
        Param("kind", "log-shipper", "What the helper does: ships log lines, proxies outbound calls, or caches "
                                     "a slow backend.", choices=("log-shipper", "proxy", "cache")),
        Param("commit", "after-ack", "When the shipper moves its read offset: after the store's ACK, or (the bug) "
                                     "before sending.", choices=("after-ack", "before-ack")),
        Param("dedupe", True, "The store ignores a line id it already has."),
        Param("rate", 8, "Requests per second to the app (log shipper: one log line each).", lo=0, hi=20),
        Param("ttl", 3000, "cache: how long (ms) an answer may be served from the cache.", lo=0, hi=60_000),
        Param("serve_stale", False, "cache: when the backend fails, serve the expired entry anyway."),
    )
    FAULTS = ("crash", "restart", "pause", "resume", "slow", "delay", "loss", "partition", "cut", "heal",
              "drop-next", "duplicate-next")
    UNFAULTABLE = ("client",)

    def setup(self) -> None:
        self.mode = self.params["mode"]
        self.kind = self.params["kind"]
        self.rate = self.params["rate"]
        self.net = LocalNetwork(self, self.LATENCY)
        self.rid = 0
        self.volume = {"lines": [], "offset": 0}  # the node's shared volume: survives container crashes
        self.memory = {"lines": [], "offset": 0}  # in-process mode: the app process's memory
        self.all_lines: list[str] = []
        self.committed_at: dict[str, float] = {}
        self.store_count: dict[str, int] = {}
        self.latencies: list[float] = []
        self.outages: list[dict] = []
        self.sidecar_down_since: float | None = None
        self.app_disturbed_at = -1.0  # the last fault on the app or the network (see app_path_disturbed)
        self.flaky = 0  # percent of the backend's answers that are errors
        self.recent_calls: list[dict] = []  # proxy and cache: the last calls, for the panel
        self.call_ms: list[float] = []
        self.added_ms: list[float] = []  # proxy: what the proxy's hops and work add to each call
        self.longest_down = 0.0  # proxy: the longest call while the proxy was down
        self.metrics.update({"requests": 0, "ok": 0, "failed": 0, "failed_while_sidecar_down": 0,
                             "lines": 0, "stored": 0, "duplicates": 0, "lost": 0, "log_waits_timed_out": 0})
        if self.kind == "log-shipper":
            self.add_node(App(self, "app"))
            self.add_node(Shipper(self, "sidecar"))
            self.add_node(Store(self, "store"))
        else:
            self.metrics.update({"calls": 0, "calls_ok": 0, "calls_failed": 0, "retries": 0, "refused": 0,
                                 "fallback": 0, "hits": 0, "misses": 0, "stale_served": 0, "outdated": 0})
            self.add_node(CallingApp(self, "app"))
            self.add_node((Proxy if self.kind == "proxy" else Cache)(self, "sidecar"))
            self.add_node(Backend(self, "backend"))
        self.add_node(Client(self, "client"))
        self.add_check("app-survives", "A crash of the sidecar does not stop the app: requests keep being served.")
        self.add_check("exactly-once", "Every log line reaches the store exactly once, outages and crashes "
                                       "included (offset committed after the ACK, store dedupes by line id).")
        if self.kind != "log-shipper":
            self.holds("exactly-once", "applies to the log shipper (kind=log-shipper); no log lines here")
        if self.kind == "proxy":
            self.add_check("calls-fail-fast", f"Every outbound call ends, answered or failed, within the proxy's "
                                              f"budget of {CALL_BUDGET} ms, also while the proxy is down. (A paused proxy, or a "
                                              f"fault on the app-proxy hop, leaves only the app's own "
                                              f"{APP_CALL_TIMEOUT} ms timeout.)")
        if self.kind == "cache":
            self.add_check("cache-consistent", "A cached answer is never older than the TTL.")
        self.sim.after(500, self.audit)

    # -- measurements --------------------------------------------------------------
    def written(self, line: str) -> None:
        self.all_lines.append(line)
        self.count("lines")

    def stored(self, line: str, copies: int) -> None:
        self.count("stored")
        if copies > 1:
            self.count("duplicates")
            self.fail("exactly-once", f"{line} is stored {copies} times: a batch was sent again and the store "
                                      "did not dedupe it")

    @property
    def sidecar_word(self) -> str:
        return {"sidecar": "sidecar", "service": "remote service", "in-process": "library"}[self.mode]

    def localhost_refuses(self) -> bool:
        """Sidecar mode: the helper's port is on this node, so when nothing listens
        there the OS refuses the connection at once (a paused helper still accepts)."""
        return self.mode == "sidecar" and self.nodes["sidecar"].status == "down"

    def call_done(self, cid: int, ok: bool, ms: float, via: str, upstream: float | None, hit: bool | None,
                  why: str) -> None:
        """proxy and cache: the app's call through its helper has ended."""
        self.count("calls")
        self.count("calls_ok" if ok else "calls_failed")
        if via == "refused":
            self.count("refused")
        self.call_ms.append(round(ms, 2))
        del self.call_ms[:-100]
        added = round(ms - upstream, 3) if upstream is not None else None
        if added is not None and self.kind == "proxy":
            self.added_ms.append(added)
            del self.added_ms[:-100]
        self.recent_calls.append({"id": cid, "ok": ok, "ms": round(ms, 1), "added": added, "via": via,
                                  "hit": hit, "why": why})
        del self.recent_calls[:-8]
        self.emit("call", cid=cid, ok=ok, ms=round(ms, 3), via=via, **({"hit": hit} if hit is not None else {}),
                  **({"why": why} if why else {}))
        if self.kind != "proxy":
            return
        if self.sidecar_down_since is not None:
            self.longest_down = max(self.longest_down, ms)
        if ms > CALL_BUDGET:
            self.fail("calls-fail-fast", f"call {cid} waited {fmt_ms(ms)} ({why or 'answered late'}): over the "
                                         f"{CALL_BUDGET} ms budget")

    def cache_served(self, key: str, entry: dict, hit: bool, stale: bool) -> None:
        """cache: the cache answers `key` from `entry` (fetched at entry["at"])."""
        self.count("hits" if hit else "misses")
        age = self.now - entry["at"]
        if entry["v"] < self.nodes["backend"].disk["versions"][key]:
            self.count("outdated")  # the backend has a newer value: allowed while younger than the TTL
        if stale:
            self.count("stale_served")
        if age > self.params["ttl"]:
            self.fail("cache-consistent", f"{key} was served {fmt_ms(age)} after it was fetched, past the TTL of "
                                          f"{fmt_ms(self.params['ttl'])} (serve_stale while the backend failed)")

    def answered(self, rid: int, ms: float | None, why: str, ok: bool = True, sent: float = 0.0) -> None:
        sidecar_down = self.sidecar_down_since is not None  # the sidecar was crashed, not the app
        if ms is None:
            self.count("failed")
            self.emit("error", rid=rid, why=why)
            if sidecar_down:
                self.count("failed_while_sidecar_down")
                if self.nodes["app"].status == "down" and self.mode == "in-process":
                    self.fail("app-survives", f"request {rid} failed: the {self.kind} code crashed inside the "
                                              "app's process and took the app down with it")
                elif self.app_path_disturbed(sent):
                    pass  # the app itself, or the network to it, was faulted: not the sidecar's doing
                else:
                    self.fail("app-survives", f"request {rid} failed while the sidecar was down")
        else:
            self.count("ok" if ok else "errors")  # an error answer is still an answer: the app is up
            self.latencies.append(round(ms, 2))
            del self.latencies[:-200]

    def app_path_disturbed(self, since: float) -> bool:
        """Was the app, or the network between it and the client, faulted by the
        learner while this request was open (or is it still slowed, with a backlog)?  Then its
        failure is not the sidecar's."""
        app = self.nodes["app"]
        if self.app_disturbed_at >= since or app.status != "up" or app.slow_ms:
            return True
        net = self.net
        return any(not net.reachable(a, b) or not net.links.get((a, b), Link()).clean()
                   for a, b in (("client", "app"), ("app", "client")))

    def emit(self, kind: str, **fields) -> dict:
        if kind == "drop" and {fields.get("src"), fields.get("dst")} == {"client", "app"}:
            self.app_disturbed_at = self.now  # the network lost a request or an answer
        return super().emit(kind, **fields)

    def do_delay(self, src: str, dst: str, ms: float) -> None:
        super().do_delay(src, dst, ms)
        if {src, dst} == {"client", "app"}:
            self.app_disturbed_at = self.now

    def audit(self) -> None:
        self.sim.after(500, self.audit)
        if self.sidecar_down_since is not None and self.checks["app-survives"].ok and self.nodes["app"].up:
            self.checks["app-survives"].detail = (
                f"sidecar down for {fmt_ms(self.now - self.sidecar_down_since)}; the app still serves")
        if self.kind == "proxy" and self.checks["calls-fail-fast"].ok and self.call_ms:
            self.checks["calls-fail-fast"].detail = (
                f"longest of the last {len(self.call_ms)} calls: {fmt_ms(max(self.call_ms))}"
                + (f"; {self.metrics['refused']} refused at once while the proxy was down"
                   if self.metrics["refused"] else ""))
        if self.kind == "cache" and self.checks["cache-consistent"].ok:
            self.checks["cache-consistent"].detail = (
                f"{self.metrics['hits']} hits, none older than {fmt_ms(self.params['ttl'])}")
        if self.kind != "log-shipper":
            return
        docs = self.nodes["store"].disk["docs"]
        for line, t in list(self.committed_at.items()):
            if line in docs:
                del self.committed_at[line]
            elif self.now - t > LOST_AFTER:
                del self.committed_at[line]
                self.count("lost")
                self.fail("exactly-once", f"{line} is lost: the offset moved past it at {fmt_ms(t)} but the store "
                                          "never got it")
        if self.checks["exactly-once"].ok:
            src = self.nodes["sidecar"].source() if self.nodes["sidecar"].status != "down" else None
            backlog = len(src["lines"]) - src["offset"] if src else None
            self.checks["exactly-once"].detail = (
                f"{len(docs)} of {len(self.all_lines)} lines stored, no duplicates"
                + (f", {backlog} waiting" if backlog else ""))

    def latency_summary(self) -> dict:
        xs = sorted(self.latencies[-100:])
        if not xs:
            return {"mean": None, "p95": None, "n": 0}
        return {"mean": round(sum(xs) / len(xs), 1), "p95": round(xs[min(len(xs) - 1, int(0.95 * len(xs)))], 1),
                "n": len(xs)}

    # -- faults: in-process, the library and the app are one process ---------------------
    def after_fault(self, fault: str, node_id: str | None) -> None:
        if node_id in ("app", "client") or node_id is None:
            self.app_disturbed_at = self.now  # crash, pause, slow of the app; partitions and cuts
        if node_id not in ("app", "sidecar"):
            return
        if fault == "crash":
            if node_id == "sidecar":
                self.sidecar_down_since = self.now
                if self.mode == "sidecar" and self.kind != "log-shipper":
                    self.nodes["app"].helper_died()
            if self.mode == "in-process":
                other = self.nodes["sidecar" if node_id == "app" else "app"]
                if other.status != "down":
                    other.crash()
                    self.emit("crash", node=other.id, why="same process")
                    if other.id == "app":
                        self.fail("app-survives", f"the {self.kind} code crashed inside the app's process and "
                                                  "took the app down with it")
                if self.kind == "log-shipper":
                    self.lose_memory()
            elif self.mode == "service" and node_id == "app" and self.kind == "log-shipper":
                self.lose_app_buffer()
        elif fault == "restart":
            if node_id == "sidecar" or self.mode == "in-process":
                self.sidecar_down_since = None
            if self.mode == "in-process":
                other = self.nodes["sidecar" if node_id == "app" else "app"]
                if other.status == "down":
                    other.restart()
                    self.emit("restart", node=other.id, why="same process")

    def lose_memory(self) -> None:
        """The process died: the lines in its memory that were not shipped are gone."""
        mem = self.memory
        gone = [line for line in mem["lines"][mem["offset"]:] if line not in self.nodes["store"].disk["docs"]]
        self.memory = {"lines": [], "offset": 0}
        if gone:
            self.count("lost", len(gone))
            self.fail("exactly-once", f"the app's process died with {len(gone)} unshipped log lines in memory "
                                      f"({gone[0]}...): they never reach the store")

    def lose_app_buffer(self) -> None:
        """Service mode: lines the log service never confirmed were only in the app's memory."""
        app, service = self.nodes["app"], self.nodes["sidecar"]
        gone = [line for line in app.unacked if line not in service.disk.get("lines", [])]
        app.unacked, app.waiting = {}, {}
        if gone:
            self.count("lost", len(gone))
            self.fail("exactly-once", f"the app died with {len(gone)} log lines the log service had not "
                                      f"confirmed ({gone[0]}...): they are lost")

    # -- lab actions -----------------------------------------------------------------
    @action("outage", Arg("ms", "ms", lo=100, hi=30_000),
            help="Take the log store (log shipper) or the backend (proxy, cache) down for this long.")
    def do_outage(self, ms: float) -> None:
        store = self.nodes[self.far_end]
        if store.status == "down":
            raise SimError(f"the {self.far_end} is already down")
        store.crash()
        self.emit("outage", node=store.id, ms=ms)
        self.outages.append({"start": round(self.now, 3), "end": round(self.now + ms, 3)})
        del self.outages[:-5]
        self.sim.after(ms, self.end_outage)

    def end_outage(self) -> None:
        store = self.nodes[self.far_end]
        if store.status == "down":
            store.restart()
            self.emit("restart", node=store.id, why="outage over")

    @property
    def far_end(self) -> str:
        return "store" if self.kind == "log-shipper" else "backend"

    @action("flaky", Arg("percent", "percent"),
            help="proxy, cache: this share of the backend's answers are errors (the proxy retries them).")
    def do_flaky(self, percent: int) -> None:
        if self.kind == "log-shipper":
            raise SimError("the log shipper has no backend; flaky works with kind=proxy or kind=cache")
        self.flaky = percent
        self.emit("flaky", node="backend", percent=percent)

    @action("traffic", Arg("rate", "int", lo=0, hi=20), group="request",
            help="Requests per second to the app (0 stops).")
    def do_traffic(self, rate: int) -> None:
        self.rate = rate
        self.emit("traffic", rate=rate)
        self.nodes["client"].schedule()

    # -- the snapshot -----------------------------------------------------------------
    def view(self) -> dict:
        if self.kind != "log-shipper":
            return self.calls_view()
        sidecar = self.nodes["sidecar"]
        if self.mode == "sidecar":
            layout = {"client": [8, 50], "app": [38, 40], "sidecar": [60, 40], "store": [90, 50]}
        elif self.mode == "service":
            layout = {"client": [8, 50], "app": [40, 40], "sidecar": [62, 78], "store": [90, 50]}
        else:
            layout = {"client": [8, 50], "app": [42, 40], "sidecar": [54, 58], "store": [90, 50]}
        edges = [["client", "app"], ["app", "sidecar"], ["sidecar", "store"]]
        if self.mode == "sidecar":
            src, where = self.volume, "shared volume"
        elif self.mode == "service":
            src, where = sidecar.disk, "log service's disk"
        else:
            src, where = self.memory, "app memory"
        docs = self.nodes["store"].disk["docs"]
        tail = src["lines"][-16:]
        first = len(src["lines"]) - len(tail)
        lines = [{"id": line, "pos": first + i, "shipped": first + i < src["offset"], "stored": docs.get(line, 0)}
                 for i, line in enumerate(tail)]
        return {
            "layout": layout, "edges": edges,
            "log": {"where": where, "mode": self.mode, "commit": self.params["commit"],
                    "dedupe": self.params["dedupe"], "lines": lines, "total": len(src["lines"]),
                    "offset": src["offset"], "backlog": len(src["lines"]) - src["offset"],
                    "in_flight": dict(sidecar.in_flight) if sidecar.status != "down" and sidecar.in_flight else None,
                    "stored": len(docs), "written": len(self.all_lines),
                    "bar": round(300 * len(docs) / max(1, len(self.all_lines))),
                    "duplicates": sum(1 for c in docs.values() if c > 1)},
            "latency": self.latency_summary(),
            "recent_latency": self.latencies[-30:],
            "outages": list(self.outages),
            "kind": self.kind,
        }

    def calls_view(self) -> dict:
        """proxy and cache: the calls through the helper."""
        if self.mode == "sidecar":
            layout = {"client": [8, 50], "app": [38, 40], "sidecar": [60, 40], "backend": [90, 50]}
        elif self.mode == "service":
            layout = {"client": [8, 50], "app": [40, 40], "sidecar": [62, 78], "backend": [90, 50]}
        else:
            layout = {"client": [8, 50], "app": [42, 40], "sidecar": [54, 58], "backend": [90, 50]}
        edges = [["client", "app"], ["app", "sidecar"], ["sidecar", "backend"]]
        m = self.metrics
        side = self.nodes["sidecar"]
        calls = {"mode": self.mode, "word": self.sidecar_word, "sidecar": side.status,
                 "recent": list(reversed(self.recent_calls)), "spark": self.call_ms[-30:],
                 "n": m["calls"], "ok": m["calls_ok"], "failed": m["calls_failed"], "flaky": self.flaky,
                 "mean": round(sum(self.call_ms) / len(self.call_ms), 1) if self.call_ms else None,
                 "max": round(max(self.call_ms), 1) if self.call_ms else None}
        out = {"layout": layout, "edges": edges, "kind": self.kind, "latency": self.latency_summary(),
               "recent_latency": self.latencies[-30:], "outages": list(self.outages), "calls": calls}
        if self.kind == "proxy":
            added = self.added_ms
            out["proxy"] = {"budget": CALL_BUDGET, "try_timeout": TRY_TIMEOUT, "retries": m["retries"],
                            "refused": m["refused"], "longest_down": round(self.longest_down, 1),
                            "added": round(sum(added) / len(added), 2) if added else None}
        else:
            ttl = self.params["ttl"]
            versions = self.nodes["backend"].disk["versions"]
            entries = [] if side.status == "down" else [
                {"key": k, "v": e["v"], "age": round(self.now - e["at"]), "current": e["v"] == versions[k],
                 "fresh": self.now - e["at"] <= ttl, "bar": round(100 * min(1.0, (self.now - e["at"]) / max(ttl, 1)))}
                for k, e in sorted(side.entries.items(), key=lambda kv: int(kv[0][1:]))]
            hits = [c["ms"] for c in self.recent_calls if c["hit"]]
            misses = [c["ms"] for c in self.recent_calls if c["hit"] is False]
            looked = m["hits"] + m["misses"]
            out["cache"] = {"ttl": ttl, "serve_stale": self.params["serve_stale"], "entries": entries,
                            "size": len(entries), "hits": m["hits"], "misses": m["misses"],
                            "hit_rate": round(100 * m["hits"] / looked) if looked else 0,
                            "fallback": m["fallback"], "stale_served": m["stale_served"], "outdated": m["outdated"],
                            "hit_ms": round(sum(hits) / len(hits), 1) if hits else None,
                            "miss_ms": round(sum(misses) / len(misses), 1) if misses else None}
        return out
