"""kind=log-shipper: the app writes one log line per request; the helper ships the
lines to a log store (the article's example: Elastic).  Where the lines wait:

  * sidecar:     in a file on the volume the app shares with the sidecar,
                 which tails it: it sends the lines from its read offset in a
                 BATCH to the store and, on the store's ACK, writes the new
                 offset to the volume.  The app never waits for the shipper
                 nor notices it crash: lines wait on the volume until it is back;
  * service:     on the disk of a log service on another host: the app sends
                 each line (LOG) and waits for its LOGGED, so every request
                 pays a network round trip, and a timeout while it is dead;
  * in-process:  in the memory of the app's process, where a logging library
                 ships them: they die with the process.

Exactly once, end to end: the shipper commits its offset only after the store's
ACK (so a crash or an outage makes it send a batch again: at least once), and
the store ignores a line id it already has (dedupe: so a batch sent twice is
stored once).  Committing the offset before the ACK is the classic bug: a
batch lost in an outage is never sent again.
"""

from dataclasses import dataclass, field
from functools import partial

from ..kernel import Node, fmt_ms, observe, on
from .shared import ROLE, WORK_MS, SidecarLab

WRITE_MS = {"sidecar": 0.5, "in-process": 0.05}  # appending a line to the file on the volume, or to memory
LOG_TIMEOUT = 150  # service mode: how long the app waits for the log service's LOGGED
RESEND_EVERY = 500  # service mode: the app sends again the lines the log service has not confirmed
SHIP_EVERY = 200  # ms between the shipper's looks at its source
BATCH = 6  # lines per batch at most
ACK_TIMEOUT = 400  # ms the shipper waits for the store's ACK
RETRY_AFTER = 600  # ms before the shipper tries again after a failed batch
LOST_AFTER = 1500  # ms after a commit before an unstored line counts as lost
WHERE = {"sidecar": "shared volume", "service": "log service's disk", "in-process": "app memory"}


@dataclass
class LogFile:
    """The lines in the order written, and the shipper's committed read offset."""

    lines: list[str] = field(default_factory=list)
    offset: int = 0

    @property
    def backlog(self) -> int:
        return len(self.lines) - self.offset


class App(Node):
    """The business logic: one log line per request, wherever the mode says."""

    def boot(self) -> None:
        self.role = "app"
        self.unconfirmed: dict[str, tuple[str, int]] = {}  # service mode: line -> the request that wrote it
        if self.lab.mode == "service":
            self.every(RESEND_EVERY, self.resend, key="resend")

    @on("REQ")
    def requested(self, msg) -> None:
        rid = msg.body["rid"]
        self.after(self.rng.uniform(*WORK_MS), self.write_line, rid, msg.src, key=("work", rid))

    def write_line(self, rid: int, to: str) -> None:
        line = f"L{rid}"
        self.lab.count("lines")
        if self.lab.mode == "service":  # send it to the log service and wait for its LOGGED
            self.unconfirmed[line] = (to, rid)
            self.request("sidecar", "LOG", awaiting=("log-wait", line), timeout=LOG_TIMEOUT,
                         on_timeout=partial(self.log_wait_over, line), line=line)
        else:  # append it to the file on the shared volume, or hand it to the logging library in memory
            self.lab.log_file.lines.append(line)
            self.after(WRITE_MS[self.lab.mode], self.answer, to, rid, key=("answer", rid))

    def answer(self, to: str, rid: int) -> None:
        self.send(to, "RESP", rid=rid)

    @on("LOGGED")
    def logged(self, msg) -> None:
        request = self.unconfirmed.pop(msg.body["line"], None)
        if self.answered(("log-wait", msg.body["line"])):
            self.answer(*request)

    def log_wait_over(self, line: str) -> None:
        """Service mode: the log service did not confirm in time; answer anyway."""
        self.lab.count("log_waits_timed_out")
        self.answer(*self.unconfirmed[line])

    def resend(self) -> None:
        for line in list(self.unconfirmed)[:BATCH]:
            self.send("sidecar", "LOG", line=line)

    def view(self) -> dict:
        waiting = len(self.unconfirmed) if self.status != "down" else 0  # (service mode)
        return {"label": f"{waiting} lines unconfirmed" if waiting else "app"}


class Shipper(Node):
    """The shipping code: reads lines from the log from its offset, sends them in
    batches to the store, and moves the offset (after the ACK, or, the bug, before)."""

    def boot(self) -> None:
        self.role = ROLE[self.lab.mode]
        self.batch_no = 0
        self.in_flight: range | None = None  # the positions in the log of batch `batch_no`, until its ACK
        if self.lab.mode == "service":
            self.disk.setdefault("log", LogFile())  # the log service keeps the lines on its disk
        self.after(SHIP_EVERY, self.ship, key="ship")

    @on("LOG")
    def log_line(self, msg) -> None:  # service mode: a line from the app
        line = msg.body["line"]
        if line not in self.disk["log"].lines:
            self.disk["log"].lines.append(line)
        self.send(msg.src, "LOGGED", line=line)

    def ship(self) -> None:
        log = self.lab.log_file
        start, end = log.offset, min(len(log.lines), log.offset + BATCH)
        if start == end:
            self.after(SHIP_EVERY, self.ship, key="ship")
            return
        self.batch_no += 1
        self.in_flight = range(start, end)
        if self.lab.params["commit"] == "before-ack":
            self.commit(end)  # the bug: the offset moves before the store has the lines
        self.request("store", "BATCH", batch=self.batch_no, lines=log.lines[start:end], first=start, count=end - start,
                     awaiting=("ack", self.batch_no), timeout=ACK_TIMEOUT, on_timeout=self.batch_failed)

    @on("ACK")
    def acked(self, msg) -> None:
        if not self.answered(("ack", msg.body["batch"])):
            return  # a late or duplicate ACK
        if self.lab.params["commit"] == "after-ack":
            self.commit(self.in_flight.stop)
        self.in_flight = None
        self.after(0, self.ship, key="ship")

    def batch_failed(self) -> None:
        self.lab.emit("ship-failed", node=self.id, batch=self.batch_no, lines=len(self.in_flight))
        self.in_flight = None
        self.after(RETRY_AFTER, self.ship, key="ship")

    def commit(self, end: int) -> None:
        self.lab.emit("commit", node=self.id, offset=end)  # (the lab notes the lines the offset passes)
        self.lab.log_file.offset = end

    def view(self) -> dict:
        log = self.lab.log_file
        return {"label": "down" if self.status == "down" else f"offset {log.offset} · backlog {log.backlog}"}


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
            self.lab.witness("stored", line=line, copies=docs[line])
        self.send(msg.src, "ACK", batch=msg.body["batch"])

    def view(self) -> dict:
        return {"label": f"{len(self.disk['docs'])} lines stored"}


class LogShipper(SidecarLab):
    NODES = (App, Shipper, Store)
    FAR_END = "store"

    def setup(self) -> None:
        self.committed_at: dict[str, float] = {}  # line -> when the offset moved past it
        super().setup()
        # Where the lines wait for the shipper: the file on the shared volume (it survives crashes), the log
        # service's disk, or the memory of the app's process.
        self.log_file = self.nodes["sidecar"].disk["log"] if self.mode == "service" else LogFile()

    # -- exactly once: every line written is stored, once --------------------------------
    @observe("commit")
    def committed(self, event: dict) -> None:
        log = self.log_file  # (its offset has not moved yet)
        self.committed_at.update(dict.fromkeys(log.lines[log.offset:event["offset"]], self.now))

    @observe("stored")
    def stored(self, fact: dict) -> None:
        self.count("stored")
        if fact["copies"] > 1:
            self.count("duplicates")
            self.fail("exactly-once", f"{fact['line']} is stored {fact['copies']} times: a batch was sent again "
                                      "and the store did not dedupe it")

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
        backlog = self.log_file.backlog if self.nodes["sidecar"].status != "down" else None
        self.note("exactly-once", f"{len(docs)} of {self.metrics['lines']} lines stored, no duplicates"
                  + (f", {backlog} waiting" if backlog else ""))

    def process_died(self, node_id: str) -> None:
        docs = self.nodes["store"].disk["docs"]
        if self.mode == "in-process":  # the lines in the process's memory that were not shipped are gone
            memory, self.log_file = self.log_file, LogFile()
            self.lose([line for line in memory.lines[memory.offset:] if line not in docs],
                      "the app's process died with {n} unshipped log lines in memory ({first}...): "
                      "they never reach the store")
        elif self.mode == "service" and node_id == "app":  # what the service never confirmed was only in memory
            self.lose([line for line in self.nodes["app"].unconfirmed if line not in self.log_file.lines],
                      "the app died with {n} log lines the log service had not confirmed ({first}...): they are lost")

    def lose(self, gone: list[str], why: str) -> None:
        if gone:
            self.count("lost", len(gone))
            self.fail("exactly-once", why.format(n=len(gone), first=gone[0]))

    def view(self) -> dict:
        log, docs, shipper = self.log_file, self.nodes["store"].disk["docs"], self.nodes["sidecar"]
        first = max(0, len(log.lines) - 16)
        lines = [{"id": line, "pos": pos, "shipped": pos < log.offset, "stored": docs.get(line, 0)}
                 for pos, line in enumerate(log.lines[first:], first)]
        batch = shipper.in_flight if shipper.status != "down" else None
        in_flight = {"batch": shipper.batch_no, "start": batch.start, "end": batch.stop} if batch else None
        return {**super().view(),
                "log": {"where": WHERE[self.mode], "mode": self.mode, "commit": self.params["commit"],
                        "dedupe": self.params["dedupe"], "lines": lines, "total": len(log.lines),
                        "offset": log.offset, "backlog": log.backlog, "stored": len(docs), "in_flight": in_flight,
                        "written": self.metrics["lines"], "duplicates": sum(1 for c in docs.values() if c > 1)}}
