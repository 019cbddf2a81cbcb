"""kind=log-shipper: the app writes one log line per request; the helper ships the
lines to a log store (the article's example: Elastic).

Where the lines wait depends on the mode:

  * sidecar:     the app appends each line to a file on a volume that it
                 shares with the sidecar, a second container on the same node.
                 The sidecar tails the file: it reads lines from its read
                 offset, sends them in a BATCH to the store, and when the
                 store ACKs the batch it writes the new offset to the volume.
                 The app never waits for the shipper and never notices it
                 crash; lines wait on the volume until the shipper is back;
  * service:     the app sends every line (LOG) to a log service on another
                 host and waits for its LOGGED before answering: each request
                 pays a network round trip, and a dead service costs every
                 request a timeout.  The service keeps the lines on its disk;
  * in-process:  a logging library inside the app's process: the lines wait in
                 the process's memory, and die with it.

Exactly once, end to end: the shipper commits its offset only after the store's
ACK (so a crash or an outage makes it send a batch again: at least once), and
the store ignores a line id it already has (dedupe: so a batch sent twice is
stored once).  Committing the offset before the ACK is the classic bug: a
batch lost in an outage is never sent again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..kernel import Node, fmt_ms, on
from .shared import ROLE, WORK_MS, SidecarLab, work_time

FILE_WRITE_MS = 0.5  # appending a line to a file on the local volume
MEMORY_WRITE_MS = 0.05  # appending a line to an in-memory buffer
LOG_TIMEOUT = 150  # service mode: how long the app waits for the log service's LOGGED
RESEND_EVERY = 500  # service mode: the app sends again the lines the log service has not confirmed
SHIP_EVERY = 200  # ms between the shipper's looks at its source
BATCH = 6  # lines per batch at most
ACK_TIMEOUT = 400  # ms the shipper waits for the store's ACK
RETRY_AFTER = 600  # ms before the shipper tries again after a failed batch
LOST_AFTER = 1500  # ms after a commit before an unstored line counts as lost


@dataclass
class LogFile:
    """The lines in the order written, and the shipper's committed read offset."""

    lines: list[str] = field(default_factory=list)
    offset: int = 0

    @property
    def backlog(self) -> int:
        return len(self.lines) - self.offset


@dataclass
class Batch:
    batch: int
    start: int  # the lines [start, end) of the log
    end: int


class App(Node):
    """The business logic: one log line per request, wherever the mode says."""

    def boot(self) -> None:
        self.role = "app"
        self.unacked: dict[str, float] = {}  # service mode: lines the log service has not confirmed
        self.waiting: dict[str, tuple[int, str]] = {}  # service mode: line -> the request waiting for it
        if self.lab.mode == "service":
            self.after(RESEND_EVERY, self.resend, key="resend")

    @on("REQ")
    def requested(self, msg) -> None:
        rid = msg.body["rid"]
        self.after(work_time(self, WORK_MS), self.write_line, rid, msg.src, key=("work", rid))

    def write_line(self, rid: int, to: str) -> None:
        line = f"L{rid}"
        self.lab.written(line)
        if self.lab.mode == "sidecar":  # append to the file on the shared volume
            self.lab.volume.lines.append(line)
            self.after(FILE_WRITE_MS, self.answer, to, rid, key=("answer", rid))
        elif self.lab.mode == "in-process":  # hand it to the logging library, in memory
            self.lab.memory.lines.append(line)
            self.after(MEMORY_WRITE_MS, self.answer, to, rid, key=("answer", rid))
        else:  # send it to the remote log service and wait for its LOGGED
            self.unacked[line] = self.now
            self.waiting[line] = (rid, to)
            self.send("sidecar", "LOG", line=line)
            self.after(LOG_TIMEOUT, self.log_wait_over, line, key=("log-wait", line))

    def answer(self, to: str, rid: int) -> None:
        self.send(to, "RESP", rid=rid)

    @on("LOGGED")
    def logged(self, msg) -> None:
        line = msg.body["line"]
        self.unacked.pop(line, None)
        if line in self.waiting:
            rid, to = self.waiting.pop(line)
            self.cancel(("log-wait", line))
            self.answer(to, rid)

    def log_wait_over(self, line: str) -> None:
        """Service mode: the log service did not confirm in time; answer anyway."""
        if line in self.waiting:
            rid, to = self.waiting.pop(line)
            self.lab.count("log_waits_timed_out")
            self.answer(to, rid)

    def resend(self) -> None:
        for line in list(self.unacked)[:BATCH]:
            self.send("sidecar", "LOG", line=line)
        self.after(RESEND_EVERY, self.resend, key="resend")

    def view(self) -> dict:
        if self.lab.mode == "service" and self.status != "down":
            return {"label": f"{len(self.unacked)} lines unconfirmed" if self.unacked else "app"}
        return {"label": "app"}


class Shipper(Node):
    """The shipping code: reads lines from the log from its offset, sends them in
    batches to the store, and moves the offset (after the ACK, or, the bug, before)."""

    def boot(self) -> None:
        self.role = ROLE[self.lab.mode]
        self.in_flight: Batch | None = None
        self.batch_no = 0
        if self.lab.mode == "service":
            self.disk.setdefault("log", LogFile())  # the log service keeps the lines on its disk
        self.after(SHIP_EVERY, self.ship, key="ship")

    @on("LOG")
    def log_line(self, msg) -> None:
        """Service mode: a line from the app."""
        line = msg.body["line"]
        if line not in self.disk["log"].lines:
            self.disk["log"].lines.append(line)
        self.send(msg.src, "LOGGED", line=line)

    def ship(self) -> None:
        log = self.lab.source
        start = log.offset
        if self.in_flight or start >= len(log.lines):
            self.after(SHIP_EVERY, self.ship, key="ship")
            return
        end = min(len(log.lines), start + BATCH)
        self.batch_no += 1
        self.in_flight = Batch(self.batch_no, start, end)
        if self.lab.params["commit"] == "before-ack":
            self.commit(end)  # the bug: the offset moves before the store has the lines
        self.request("store", "BATCH", awaiting="ack", timeout=ACK_TIMEOUT, on_timeout=self.batch_failed,
                     batch=self.batch_no, lines=list(log.lines[start:end]), first=start, count=end - start)

    @on("ACK")
    def acked(self, msg) -> None:
        if self.in_flight and msg.body["batch"] == self.in_flight.batch:
            self.answered("ack")
            if self.lab.params["commit"] == "after-ack":
                self.commit(self.in_flight.end)
            self.in_flight = None
            self.after(0, self.ship, key="ship")

    def batch_failed(self) -> None:
        batch = self.in_flight
        self.lab.emit("ship-failed", node=self.id, batch=batch.batch, lines=batch.end - batch.start)
        self.in_flight = None
        self.after(RETRY_AFTER, self.ship, key="ship")

    def commit(self, end: int) -> None:
        log = self.lab.source
        if end > log.offset:
            self.lab.committed(log.lines[log.offset:end])
            log.offset = end
            self.lab.emit("commit", node=self.id, offset=end)

    def view(self) -> dict:
        if self.status == "down":
            return {"label": "down"}
        log = self.lab.source
        return {"offset": log.offset, "label": f"offset {log.offset} · backlog {log.backlog}"}


class Store(Node):
    """The log store (think Elastic).  Its documents live on its disk."""

    def boot(self) -> None:
        self.role = "store"
        self.disk.setdefault("docs", {})  # line id -> how many copies are stored

    @on("BATCH")
    def batch(self, msg) -> None:
        docs = self.disk["docs"]
        for line in msg.body["lines"]:
            if line in docs and self.lab.params["dedupe"]:
                continue  # seen before: a retried batch, stored once
            docs[line] = docs.get(line, 0) + 1
            self.lab.stored(line, docs[line])
        self.send(msg.src, "ACK", batch=msg.body["batch"])

    def view(self) -> dict:
        return {"label": f"{len(self.disk['docs'])} lines stored"}


WHERE = {"sidecar": "shared volume", "service": "log service's disk", "in-process": "app memory"}


class LogShipper(SidecarLab):
    NODES = (App, Shipper, Store)
    FAR_END = "store"

    def setup(self) -> None:
        self.volume = LogFile()  # the node's shared volume: survives container crashes
        self.memory = LogFile()  # in-process mode: the app process's memory
        self.all_lines: list[str] = []
        self.committed_at: dict[str, float] = {}  # line -> when the offset moved past it
        super().setup()

    @property
    def source(self) -> LogFile:
        """Where the lines wait for the shipper: the shared volume, the log service's disk, or the app's memory."""
        if self.mode == "sidecar":
            return self.volume
        return self.nodes["sidecar"].disk["log"] if self.mode == "service" else self.memory

    # -- exactly once: every line written is stored, once --------------------------------
    def written(self, line: str) -> None:
        self.all_lines.append(line)
        self.count("lines")

    def committed(self, lines: list[str]) -> None:
        for line in lines:
            self.committed_at[line] = self.now

    def stored(self, line: str, copies: int) -> None:
        self.count("stored")
        if copies > 1:
            self.count("duplicates")
            self.fail("exactly-once", f"{line} is stored {copies} times: a batch was sent again and the store "
                                      "did not dedupe it")

    def audit(self) -> None:
        super().audit()
        docs = self.nodes["store"].disk["docs"]
        for line, t in list(self.committed_at.items()):
            if line in docs:
                del self.committed_at[line]
            elif self.now - t > LOST_AFTER:
                del self.committed_at[line]
                self.count("lost")
                self.fail("exactly-once", f"{line} is lost: the offset moved past it at {fmt_ms(t)} but the store "
                                          "never got it")
        backlog = self.source.backlog if self.nodes["sidecar"].status != "down" else None
        self.note("exactly-once", f"{len(docs)} of {len(self.all_lines)} lines stored, no duplicates"
                  + (f", {backlog} waiting" if backlog else ""))

    def process_died(self, node_id: str) -> None:
        if self.mode == "in-process":
            self.lose_memory()
        elif self.mode == "service" and node_id == "app":
            self.lose_app_buffer()

    def lose_memory(self) -> None:
        """The process died: the lines in its memory that were not shipped are gone."""
        docs = self.nodes["store"].disk["docs"]
        gone = [line for line in self.memory.lines[self.memory.offset:] if line not in docs]
        self.memory = LogFile()
        if gone:
            self.count("lost", len(gone))
            self.fail("exactly-once", f"the app's process died with {len(gone)} unshipped log lines in memory "
                                      f"({gone[0]}...): they never reach the store")

    def lose_app_buffer(self) -> None:
        """Service mode: lines the log service never confirmed were only in the app's memory."""
        app, service = self.nodes["app"], self.nodes["sidecar"]
        gone = [line for line in app.unacked if line not in service.disk["log"].lines]
        app.unacked, app.waiting = {}, {}
        if gone:
            self.count("lost", len(gone))
            self.fail("exactly-once", f"the app died with {len(gone)} log lines the log service had not "
                                      f"confirmed ({gone[0]}...): they are lost")

    def view(self) -> dict:
        log, docs = self.source, self.nodes["store"].disk["docs"]
        shipper = self.nodes["sidecar"]
        tail = log.lines[-16:]
        first = len(log.lines) - len(tail)
        lines = [{"id": line, "pos": first + i, "shipped": first + i < log.offset, "stored": docs.get(line, 0)}
                 for i, line in enumerate(tail)]
        in_flight = shipper.in_flight if shipper.status != "down" else None
        return {**super().view(),
                "log": {"where": WHERE[self.mode], "mode": self.mode, "commit": self.params["commit"],
                        "dedupe": self.params["dedupe"], "lines": lines, "total": len(log.lines),
                        "offset": log.offset, "backlog": log.backlog,
                        "in_flight": vars(in_flight).copy() if in_flight else None,
                        "stored": len(docs), "written": len(self.all_lines),
                        "duplicates": sum(1 for c in docs.values() if c > 1)}}
