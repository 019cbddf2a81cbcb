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
"""

from __future__ import annotations

from .kernel import Arg, Lab, Network, Node, Param, SimError, action, fmt_ms

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


class LocalNetwork(Network):
    """Containers on one node talk over localhost: well under a millisecond.
    (The kernel's network has one latency range for every link.)"""

    def transit_time(self, src: str, dst: str) -> float:
        if {src, dst} == {"app", "sidecar"} and self.lab.mode != "service":
            base = 0.1 + 0.2 * self.lab.sim.rng.random()
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
        elif name.startswith("timeout:") and self.pending.pop(data["rid"], None) is not None:
            self.lab.answered(data["rid"], None, "the app did not answer")

    def on_message(self, msg) -> None:
        if msg.type == "RESP":
            sent = self.pending.pop(msg.body["rid"], None)
            if sent is not None:
                self.cancel_timer(f"timeout:{msg.body['rid']}")
                self.lab.answered(msg.body["rid"], self.now - sent, "")


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


class Sidecar(Lab):
    slug = "sidecar"
    title = "Sidecar"
    PARAMS = (
        Param("mode", "sidecar", "Where the log-shipping code runs.", choices=("sidecar", "service", "in-process")),
        Param("commit", "after-ack", "When the shipper moves its read offset: after the store's ACK, or (the bug) "
                                     "before sending.", choices=("after-ack", "before-ack")),
        Param("dedupe", True, "The store ignores a line id it already has."),
        Param("rate", 8, "Requests per second to the app (one log line each).", lo=0, hi=20),
    )
    FAULTS = ("crash", "restart", "pause", "resume", "slow", "delay", "loss", "partition", "cut", "heal",
              "drop-next", "duplicate-next")
    UNFAULTABLE = ("client",)

    def setup(self) -> None:
        self.mode = self.params["mode"]
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
        self.metrics.update({"requests": 0, "ok": 0, "failed": 0, "failed_while_sidecar_down": 0,
                             "lines": 0, "stored": 0, "duplicates": 0, "lost": 0, "log_waits_timed_out": 0})
        self.add_node(App(self, "app"))
        self.add_node(Shipper(self, "sidecar"))
        self.add_node(Store(self, "store"))
        self.add_node(Client(self, "client"))
        self.add_check("app-survives", "A crash of the sidecar does not stop the app: requests keep being served.")
        self.add_check("exactly-once", "Every log line reaches the store exactly once, outages and crashes "
                                       "included (offset committed after the ACK, store dedupes by line id).")
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

    def answered(self, rid: int, ms: float | None, why: str) -> None:
        sidecar_down = self.sidecar_down_since is not None  # the sidecar was crashed, not the app
        if ms is None:
            self.count("failed")
            self.emit("error", rid=rid, why=why)
            if sidecar_down:
                self.count("failed_while_sidecar_down")
                if self.nodes["app"].status == "down" and self.mode == "in-process":
                    self.fail("app-survives", f"request {rid} failed: the logging code crashed inside the app's "
                                              "process and took the app down with it")
                else:
                    self.fail("app-survives", f"request {rid} failed while the sidecar was down")
        else:
            self.count("ok")
            self.latencies.append(round(ms, 2))
            del self.latencies[:-200]

    def audit(self) -> None:
        self.sim.after(500, self.audit)
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
        if self.sidecar_down_since is not None and self.checks["app-survives"].ok and self.nodes["app"].up:
            self.checks["app-survives"].detail = (
                f"sidecar down for {fmt_ms(self.now - self.sidecar_down_since)}; the app still serves")

    def latency_summary(self) -> dict:
        xs = sorted(self.latencies[-100:])
        if not xs:
            return {"mean": None, "p95": None, "n": 0}
        return {"mean": round(sum(xs) / len(xs), 1), "p95": round(xs[min(len(xs) - 1, int(0.95 * len(xs)))], 1),
                "n": len(xs)}

    # -- faults: in-process, the library and the app are one process ---------------------
    def after_fault(self, fault: str, node_id: str | None) -> None:
        if node_id not in ("app", "sidecar"):
            return
        if fault == "crash":
            if node_id == "sidecar":
                self.sidecar_down_since = self.now
            if self.mode == "in-process":
                other = self.nodes["sidecar" if node_id == "app" else "app"]
                if other.status != "down":
                    other.crash()
                    self.emit("crash", node=other.id, why="same process")
                    if other.id == "app":
                        self.fail("app-survives", "the logging code crashed inside the app's process and took "
                                                  "the app down with it")
                self.lose_memory()
            elif self.mode == "service" and node_id == "app":
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
            help="Take the log store down for this long (it keeps what it stored on disk).")
    def do_outage(self, ms: float) -> None:
        store = self.nodes["store"]
        if store.status == "down":
            raise SimError("the store is already down")
        store.crash()
        self.emit("outage", node="store", ms=ms)
        self.outages.append({"start": round(self.now, 3), "end": round(self.now + ms, 3)})
        del self.outages[:-5]
        self.sim.after(ms, self.end_outage)

    def end_outage(self) -> None:
        store = self.nodes["store"]
        if store.status == "down":
            store.restart()
            self.emit("restart", node="store", why="outage over")

    @action("traffic", Arg("rate", "int", lo=0, hi=20), group="request",
            help="Requests per second to the app (0 stops).")
    def do_traffic(self, rate: int) -> None:
        self.rate = rate
        self.emit("traffic", rate=rate)
        self.nodes["client"].schedule()

    # -- the snapshot -----------------------------------------------------------------
    def view(self) -> dict:
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
        }
