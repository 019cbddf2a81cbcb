"""Write-ahead log: a key-value store that survives a power loss.

A client sends writes (SET key value, DEL key) to the store `db`, which keeps
its table in memory.  The rules:

  * every change gets the next sequence number (its LSN) and is appended to
    the log FIRST, then applied to the table ("write ahead");
  * each record carries a CRC (zlib.crc32 of its bytes), so a record corrupted
    on disk, or only half written when the power failed (a torn write), is
    recognised when it is read back;
  * an append lands in the operating system's buffer; only an fsync makes it
    durable.  The flush policy decides when to fsync and when to acknowledge
    (named as in Cassandra's commit log and PostgreSQL):
      - always: fsync, then acknowledge (writes that arrive during an fsync
        share the next one: group commit);
      - batch: acknowledge only after the fsync, but fsync only once N records
        or T ms have gathered (fewer fsyncs, slower acks);
      - periodic: acknowledge at once, fsync every N records or T ms, and hold
        new writes while N unflushed records wait: the bound on what a power
        loss can take (Cassandra's periodic mode; PostgreSQL with
        synchronous_commit=off);
      - never: acknowledge at once, never fsync (only a checkpoint persists
        anything: no bound at all on what a power loss takes);
  * the log is split into segments of bounded size, and every record has a
    position in it (like a byte offset).  A checkpoint writes the whole table
    to disk with the LSN it covers and the position it was taken at (the redo
    point); segments entirely before the redo point are deleted (the
    low-water mark);
  * recovery loads the checkpoint, then replays the log from the redo point,
    record by record: a record whose LSN is already covered is skipped (so a
    duplicate changes nothing), and the first record whose CRC does not match
    ends the log: it and everything after it are cut off (point-in-time
    recovery, as RocksDB calls it).

replay=naive switches these checks off (every record read is applied), to show
what the CRC and the LSNs protect against.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from functools import partial

from .kernel import Arg, Lab, Node, Param, SimError, action, observe, on

REPLAY_STEP = 60  # ms to read and apply one record during recovery (so it can be watched)
CLIENT_TIMEOUT = 1000  # ms before the client gives up on a write
SHOWN_SEGMENTS = 5  # segments drawn on the page (the newest ones)
KEYS = ("k1", "k2", "k3", "k4", "k5")

FLUSH_ALIASES = {"every-write": "always"}  # the name this lab used before (still accepted)
BATCHED = ("batch", "periodic")  # fsync when batch_size records wait, or batch_ms after the first


def crc_of(seq: int, payload: str) -> int:
    """The record's checksum covers its sequence number and its bytes."""
    return zlib.crc32(f"{seq}|{payload}".encode())


@dataclass
class Record:
    """One log record: its LSN, its bytes with their CRC, and where it sits in the log."""

    seq: int
    payload: str  # "SET key value" or "DEL key"
    crc: int
    damage: str | None = None  # "corrupted" or "torn" (what happened to it on disk)
    copy: bool = False  # a second copy of an earlier record (a retried append)
    segment: int = 0
    pos: int = 0  # its position in the log (like a byte offset)
    acked: bool = False  # the client was told this write is done

    def view(self, flushed: bool) -> dict:
        op, key, value = parse(self.payload)
        return {"seq": self.seq, "pos": self.pos, "op": op, "key": key, "value": value, "flushed": flushed,
                "damage": self.damage, "copy": self.copy, "crc": f"{self.crc:08x}",
                "crc_ok": crc_of(self.seq, self.payload) == self.crc}


@dataclass(frozen=True)
class Checkpoint:
    seq: int = 0  # the last LSN the table contains
    table: dict = field(default_factory=dict)
    redo: int = 0  # the log position it was taken at: replay starts there


@dataclass
class Recovery:
    """The replay in progress after a restart, as the page shows it."""

    total: int = 0
    done: int = 0
    applied: int = 0
    skipped: int = 0
    bad: int | None = None  # the LSN whose CRC failed: the log was cut there
    from_checkpoint: int = 0
    last: list[dict] = field(default_factory=list)  # the latest verdicts, newest first


def parse(payload: str) -> tuple[str, str, str]:
    """Read a record's bytes back as (op, key, value); garbage reads as garbage."""
    op, _, rest = payload.partition(" ")
    key, _, value = rest.partition(" ")
    return op, key, value


def apply(table: dict, op: str, key: str, value: str) -> None:
    """SET and DEL on the memory table."""
    if op == "SET" and key:
        table[key] = value
    elif op == "DEL":
        table.pop(key, None)


def first_difference(a: dict, b: dict) -> str | None:
    return next((k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)), None)


class Store(Node):
    """The key-value store with its write-ahead log."""

    def boot(self) -> None:
        self.table: dict[str, str] = {}
        self.buffer: list[Record] = []  # appended, not yet fsynced
        self.syncing: list[Record] = []  # being written by the fsync in progress
        self.waiting: list = []  # writes held back while the batch is full
        self.durable_acks: dict[int, tuple[str, int]] = {}  # always, batch: lsn -> (client, req), acked after the fsync
        self.applied_seq = 0  # the last LSN in the table (a write is logged and applied at once: the next follows it)
        self.since_checkpoint = 0
        self.recovery: Recovery | None = None
        if self.restarted:
            self.start_recovery()
        else:  # a fresh disk (what survives a power loss): segments (id -> fsynced records), checkpoint, log's end
            self.disk.update(segments={}, checkpoint=Checkpoint(), next_segment=1, next_pos=1)
            self.role = "serving"
            self.active_segment = self.new_segment()

    @property
    def unflushed(self) -> list[Record]:
        return self.syncing + self.buffer

    @property
    def on_disk(self) -> list[Record]:
        return [r for records in self.disk["segments"].values() for r in records]

    # -- the write path -----------------------------------------------------------
    @on("WRITE")
    def write_arrived(self, msg) -> None:
        if self.role == "recovering":
            self.send(msg.src, "REJECT", req=msg.body["req"], why="recovering")
        elif self.lab.flush == "periodic" and len(self.unflushed) >= self.lab.batch_size:
            self.waiting.append(msg)  # the batch is full: wait for the fsync
            self.lab.emit("hold", req=msg.body["req"], unflushed=len(self.unflushed))
        else:
            self.write(msg)

    def write(self, msg) -> None:
        op, key, value = msg.body["op"], msg.body["key"], msg.body.get("value", "")
        record = self.new_record(op, key, value)
        self.append(record)  # 1. log it
        apply(self.table, op, key, value)  # 2. then change memory
        self.applied_seq = record.seq
        self.lab.emit("append", lsn=record.seq, op=op, key=key, value=value, crc=record.crc, segment=record.segment)
        if self.lab.flush in ("always", "batch"):
            self.durable_acks[record.seq] = (msg.src, msg.body["req"])  # acknowledge once it is on disk
        else:
            self.acknowledge(record, msg.src, msg.body["req"])  # acknowledge now: it is only in memory
        self.fsync_soon()
        self.since_checkpoint += 1
        if 0 < self.lab.params["checkpoint_every"] <= self.since_checkpoint:
            self.checkpoint()

    def new_record(self, op: str, key: str, value: str) -> Record:
        """The change as bytes, under the next LSN, with their CRC."""
        seq, payload = self.applied_seq + 1, f"SET {key} {value}" if op == "SET" else f"DEL {key}"
        return Record(seq, payload, crc_of(seq, payload))

    def append(self, record: Record) -> None:
        """Add a record to the active segment (in the buffer until an fsync);
        a full segment is closed and the next one opened."""
        record.segment, record.pos = self.active_segment, self.disk["next_pos"]
        self.disk["next_pos"] += 1
        self.buffer.append(record)
        in_segment = self.disk["segments"][record.segment] + [r for r in self.unflushed if r.segment == record.segment]
        if len(in_segment) >= self.lab.params["segment_size"]:
            self.active_segment = self.new_segment()

    def acknowledge(self, record: Record, client: str, req: int) -> None:
        record.acked = True
        self.lab.witness("ack", lsn=record.seq)
        self.send(client, "ACK", req=req, lsn=record.seq)

    def fsync_soon(self, full_batch: bool = True) -> None:
        """The flush policy: always fsyncs now; batch and periodic fsync once
        batch_size records wait (`full_batch`), else batch_ms after the first."""
        flush = self.lab.flush
        if flush == "always" or (full_batch and flush in BATCHED and len(self.unflushed) >= self.lab.batch_size):
            self.flush()
        elif flush in BATCHED and not self.pending("batch"):
            self.after(self.lab.params["batch_ms"], self.flush, key="batch")

    def flush(self) -> None:
        """Start an fsync of everything buffered (one at a time: what arrives
        meanwhile shares the next one, a group commit)."""
        if self.syncing or not self.buffer:
            return
        self.cancel("batch")
        self.syncing, self.buffer = self.buffer, []
        self.lab.emit("fsync-start", lsns=[r.seq for r in self.syncing], ms=self.lab.fsync_ms)
        self.after(self.lab.fsync_ms, self.fsync_done, key="fsync")

    def fsync_done(self) -> None:
        done, self.syncing = self.syncing, []
        for record in done:  # now they are on disk
            self.disk["segments"][record.segment].append(record)
        self.lab.emit("fsync", lsns=[r.seq for r in done], ms=self.lab.fsync_ms)
        for record in done:
            if who := self.durable_acks.pop(record.seq, None):
                self.acknowledge(record, *who)
        if self.buffer:
            self.fsync_soon()
        while self.waiting and len(self.unflushed) < self.lab.batch_size:
            self.write(self.waiting.pop(0))

    # -- segments, checkpoints and the low-water mark --------------------------------
    def new_segment(self) -> int:
        seg_id = self.disk["next_segment"]
        self.disk["next_segment"] += 1
        self.disk["segments"][seg_id] = []
        self.lab.emit("segment", id=seg_id)
        return seg_id

    def checkpoint(self) -> None:
        """Write the whole table with the seq it covers and the log position it
        was taken at (the redo point); drop the segments before that point."""
        seq, redo = self.applied_seq, self.disk["next_pos"]
        self.disk["checkpoint"] = Checkpoint(seq, dict(self.table), redo)
        self.since_checkpoint = 0
        self.lab.emit("checkpoint", lsn=seq, keys=len(self.table))
        # The low-water mark: a segment whose records all lie before the redo point is no longer needed.
        segments = self.disk["segments"]
        for seg_id, records in list(segments.items()):
            pending = any(r.segment == seg_id for r in self.unflushed)
            if seg_id != self.active_segment and not pending and all(r.pos < redo for r in records):
                del segments[seg_id]
                self.lab.emit("segment-deleted", id=seg_id, records=len(records), low_water=seq)

    # -- power loss and recovery -------------------------------------------------------
    def crash(self) -> None:
        """The power goes off: whatever was not fsynced is gone, acknowledged or not."""
        redo = self.disk["checkpoint"].redo  # what lies before it is in the checkpoint
        acked_lost = [r.seq for r in self.unflushed if r.acked and not r.copy and r.pos >= redo]
        self.lab.emit("power-loss", unflushed=len(self.unflushed), acked_lost=acked_lost)
        super().crash()
        self.buffer, self.syncing, self.table, self.recovery = [], [], {}, None

    def start_recovery(self) -> None:
        """Load the checkpoint, then read the log from its redo point on (what
        lies before it is in the checkpoint, and is never read)."""
        self.role = "recovering"
        cp = self.disk["checkpoint"]
        self.table, self.applied_seq = dict(cp.table), cp.seq
        self.to_replay = [r for r in self.on_disk if r.pos >= cp.redo]
        self.recovery = Recovery(total=len(self.to_replay), from_checkpoint=cp.seq)
        self.lab.emit("recovery-start", checkpoint=cp.seq, redo=cp.redo, records=len(self.to_replay))
        self.after(REPLAY_STEP, self.replay_next, key="replay")

    def replay_next(self) -> None:
        rec = self.recovery
        if not self.to_replay:
            return self.finish_recovery()
        record = self.to_replay.pop(0)
        seq, payload = record.seq, record.payload
        checked = self.lab.params["replay"] == "checked"
        if checked and crc_of(seq, payload) != record.crc:
            verdict = "crc-failed"  # the end of the usable log
        elif checked and seq <= self.applied_seq:
            verdict = "skipped"  # already applied (in the checkpoint, or a duplicate)
        else:
            verdict = "applied"
        rec.done += 1
        rec.applied += verdict == "applied"
        rec.skipped += verdict == "skipped"
        rec.last = ([{"seq": seq, "verdict": verdict}] + rec.last)[:6]
        self.lab.emit("replay", lsn=seq, segment=record.segment, verdict=verdict, crc=record.crc,
                      computed=crc_of(seq, payload), payload=payload)
        self.lab.witness("replaying", record=record, verdict=verdict)
        if verdict == "applied":
            apply(self.table, *parse(payload))
            self.applied_seq = max(self.applied_seq, seq)
        elif verdict == "crc-failed":
            rec.bad = seq
            self.truncate(record)
            return self.finish_recovery()
        self.after(REPLAY_STEP, self.replay_next, key="replay")

    def truncate(self, bad: Record) -> None:
        """Cut the log at a bad record: it and everything after it are dropped."""
        segments, seg_id = self.disk["segments"], bad.segment
        index = next(i for i, r in enumerate(segments[seg_id]) if r is bad)
        records_before = len(self.on_disk)
        segments[seg_id] = segments[seg_id][:index]
        for later in [s for s in segments if s > seg_id]:
            del segments[later]
        self.lab.emit("truncate", segment=seg_id, at=index, records=records_before - len(self.on_disk))

    def finish_recovery(self) -> None:
        rec, segments = self.recovery, self.disk["segments"]
        self.applied_seq = max([self.applied_seq, *(r.seq for r in self.on_disk)])  # new LSNs follow the log's
        last = next(reversed(segments), None)
        full = last is None or len(segments[last]) >= self.lab.params["segment_size"]
        self.active_segment = self.new_segment() if full else last
        self.role = "serving"
        self.lab.emit("recovered", applied=rec.applied, skipped=rec.skipped, bad=rec.bad,
                      keys=len(self.table), next_lsn=self.applied_seq + 1)

    def view(self) -> dict:
        label = {"serving": f"LSN {self.applied_seq} · {len(self.table)} keys",
                 "recovering": f"replaying {self.recovery.done}/{self.recovery.total}" if self.recovery else ""}
        return {"label": label.get(self.role or "", "power off"), "unflushed": len(self.unflushed)}


class Client(Node):
    """Sends writes to the store and waits for the acknowledgement."""

    def boot(self) -> None:
        self.role = "client"
        self.next_req = 1
        self.counter = 0
        self.outstanding: dict[int, float] = {}  # req -> when it was sent
        self.latencies: list[float] = []  # of the writes acknowledged
        if self.lab.params["rate"]:
            self.after(1000 / self.lab.params["rate"], self.tick, key="tick")

    def tick(self) -> None:
        """The background workload: a write every 1/rate seconds."""
        self.send_write(*self.next_write())
        self.after(1000 / self.lab.params["rate"], self.tick, key="tick")

    def next_write(self) -> tuple[str, str, str]:
        """Mostly SETs of a few keys, some removals."""
        self.counter += 1
        key = self.rng.choice(KEYS)
        if self.rng.random() < 0.15:
            return "DEL", key, ""
        return "SET", key, f"v{self.counter}"

    def send_write(self, op: str, key: str, value: str = "") -> None:
        req = self.next_req
        self.next_req += 1
        self.outstanding[req] = self.now
        self.lab.count("writes")
        self.request("db", "WRITE", awaiting=("write", req), timeout=CLIENT_TIMEOUT,
                     on_timeout=partial(self.timed_out, req), req=req, op=op, key=key, value=value)

    def timed_out(self, req: int) -> None:
        del self.outstanding[req]
        self.lab.count("timeouts")
        self.lab.emit("timeout", req=req)

    @on("ACK")
    def acked(self, msg) -> None:
        if self.answered(("write", msg.body["req"])):  # not late, not a second copy
            self.lab.count("acks")
            self.latencies.append(self.now - self.outstanding.pop(msg.body["req"]))
            self.lab.metrics["ack_ms"] = round(sum(self.latencies) / len(self.latencies), 1)

    @on("REJECT")
    def rejected(self, msg) -> None:
        if self.answered(("write", msg.body["req"])):
            del self.outstanding[msg.body["req"]]
            self.lab.count("rejected")


class WriteAheadLog(Lab):
    slug = "write-ahead-log"
    title = "Write-ahead log"
    # Checks that hold under any fault with replay=checked (see Lab.INVARIANTS); no-acked-write-lost
    # demonstrates.  (loss-bounded too: never promises no bound, so it cannot break it either.)
    INVARIANTS = dict.fromkeys(("loss-bounded", "recovery-exact", "bad-record-rejected", "replay-idempotent"),
                               ("checked",))
    PARAMS = (
        Param("flush", "always", "When the log is fsynced, and so when a write is acknowledged: always (fsync, "
                                 "then ack), batch (gather N records or T ms, fsync, then ack), periodic (ack at "
                                 "once, fsync every N records or T ms), never (ack at once, never fsync).",
              choices=("always", "batch", "periodic", "never")),
        Param("batch_size", 5, "batch and periodic: fsync once this many records wait (periodic never lets more "
                               "wait).", lo=1, hi=50),
        Param("batch_ms", 200, "batch and periodic: fsync at the latest this long after the first waiting record.",
              lo=10, hi=5000),
        Param("fsync_ms", 10, "How long one fsync takes (its cost).", lo=1, hi=200),
        Param("segment_size", 6, "Records per log segment.", lo=2, hi=40),
        Param("checkpoint_every", 20, "Take a checkpoint every this many writes (0 = only when asked).", lo=0, hi=500),
        Param("rate", 4, "Background writes per second from the client (0 = only yours).", lo=0, hi=20),
        Param("replay", "checked", "checked: verify CRCs and skip LSNs already applied; naive: apply every record.",
              choices=("checked", "naive")),
    )
    FAULTS = ("crash", "restart", "pause", "resume", "delay", "slow", "drop-next", "duplicate-next")
    UNFAULTABLE = ("client",)
    LATENCY = (2.0, 5.0)

    @classmethod
    def parse_params(cls, raw: dict) -> dict:
        flush = str(raw.get("flush", "")).strip()
        return super().parse_params({**raw, "flush": FLUSH_ALIASES[flush]} if flush in FLUSH_ALIASES else raw)

    def setup(self) -> None:
        p = self.params
        self.flush, self.batch_size, self.fsync_ms = p["flush"], p["batch_size"], p["fsync_ms"]
        self.metrics.update({"writes": 0, "acks": 0, "fsyncs": 0, "fsync_ms": 0, "ack_ms": 0, "lost_acked": 0,
                             "checkpoints": 0, "segments_deleted": 0, "replayed": 0})
        # The promises, judged from outside the store: for each key, the writes the store applied to it since
        # its last acknowledged one [(n, lsn, result)], and that one (`promised`).  After a recovery the key must
        # hold the promised write's result or a later write's.  n orders the writes: it is the seq of their
        # append event (LSNs can repeat after a crash; this cannot).
        self.written: dict[int, tuple] = {}  # lsn -> (n, key) of the latest write under that LSN
        self.history: dict[str, list[tuple]] = {}
        self.promised: dict[str, tuple] = {}  # key -> (n, lsn, result) of its last acknowledged write
        self.acked_total = 0
        self.bit_rot = False  # a flushed record was corrupted since the last recovery
        self.deleted_segments: list[dict] = []
        self.db = self.add_node(Store(self, "db"))
        self.client = self.add_node(Client(self, "client"))
        self.add_check("no-acked-write-lost", "After every recovery, each key holds what its last acknowledged write "
                                              "left there (or what a later write left): judged from the recovered "
                                              "table against the acknowledgements the client was sent.")
        self.add_check("loss-bounded", "A power loss takes no acknowledged write with always or batch, at most "
                                       "batch_size with periodic; never has no bound.")
        self.add_check("recovery-exact", "Recovery rebuilds exactly the last durable state: the checkpoint plus the "
                                         "flushed records after its redo point, up to the first damaged one.")
        self.add_check("bad-record-rejected", "A corrupted or torn record is caught by its CRC and never applied.")
        self.add_check("replay-idempotent", "Replaying a record that was already applied (a duplicate, or one the "
                                            "checkpoint covers) changes nothing.")
        if self.flush == "never":
            self.note("loss-bounded", "flush=never promises nothing: a power loss can take every write since the "
                                      "last checkpoint")

    # -- what the lab records to judge the store ------------------------------------
    @observe("append")
    def applied(self, event: dict) -> None:
        """The store applied a write (it is in its memory table now)."""
        self.written[event["lsn"]] = (event["seq"], event["key"])
        result = event["value"] if event["op"] == "SET" else None  # what it leaves under its key
        self.history.setdefault(event["key"], []).append((event["seq"], event["lsn"], result))

    @observe("ack")
    def acknowledged(self, fact: dict) -> None:
        """The store tells the client this write is done: a promise (they come in the order of the writes)."""
        self.acked_total += 1
        n, key = self.written[fact["lsn"]]
        self.history[key] = [e for e in self.history[key] if e[0] >= n]  # the earlier writes no longer count
        self.promised[key] = self.history[key][0]

    @observe("fsync", "checkpoint")
    def fsynced(self, event: dict) -> None:
        self.count("fsyncs")  # a checkpoint writes the table with one fsync
        self.count("fsync_ms", self.fsync_ms)
        if event["kind"] == "checkpoint":
            self.count("checkpoints")

    @observe("segment-deleted")
    def segment_deleted(self, event: dict) -> None:
        self.count("segments_deleted")
        self.deleted_segments = (self.deleted_segments + [{"id": event["id"], "records": event["records"]}])[-6:]

    @observe("replaying")
    def judge_replay(self, fact: dict) -> None:
        """The store has read a record and is about to act on its verdict."""
        self.count("replayed")
        record, verdict = fact["record"], fact["verdict"]
        seq = record.seq
        if crc_of(seq, record.payload) != record.crc:
            if verdict == "applied":
                self.fail("bad-record-rejected", f"seq {seq} failed its CRC ({record.damage}) but was applied")
            else:
                self.note("bad-record-rejected", f"seq {seq} ({record.damage}): CRC mismatch caught, log cut there")
        elif seq <= self.db.applied_seq:
            before, after = self.db.table, dict(self.db.table)
            if verdict == "applied":
                apply(after, *parse(record.payload))
            if changed := first_difference(before, after):
                self.fail("replay-idempotent", f"replaying seq {seq} again changed {changed} from "
                                               f"{before.get(changed, '(none)')} to {after.get(changed, '(none)')}")
            else:
                self.note("replay-idempotent", f"seq {seq} was already applied: skipped")

    def judge_promises(self, table: dict) -> list[tuple]:
        """Compare the recovered table with the acknowledgements: for each key,
        the result of its last acknowledged write or of a later write must be
        there.  Returns the broken promises; the table is the new baseline."""
        broken = []
        for key in sorted(set(self.history) | set(table)):
            got, promise = table.get(key), self.promised.get(key)
            matching = [e for e in self.history.get(key, []) if e[2] == got]
            if promise and not matching:
                broken.append((key, promise, got))
            if promise and matching:  # still bound by the promise; drop the writes that did not survive
                self.history[key] = [e for e in self.history[key] if e[0] <= matching[-1][0]]
            else:  # no promise on this key any more: what was recovered is where it starts again
                self.promised.pop(key, None)
                self.history[key] = [(self.seq, 0, got)]
        return broken

    def durable_state(self) -> tuple[dict, int]:
        """The last durable state, read off the disk: the checkpoint, then each
        flushed record after its redo point, in log order, up to the first
        corrupted one (a record already covered is skipped).  A torn write never
        finished its fsync: it is not part of the durable log."""
        cp = self.db.disk["checkpoint"]
        table, applied, kept = dict(cp.table), cp.seq, 0
        flushed = [r for r in self.db.on_disk if r.pos >= cp.redo and r.damage != "torn"]
        for record in sorted(flushed, key=lambda r: r.pos):
            if record.damage:  # corrupted
                break
            kept += 1
            if record.seq > applied:
                apply(table, *parse(record.payload))
                applied = record.seq
        return table, kept

    @observe("recovered")
    def judge_recovery(self, event: dict) -> None:
        table = self.db.table
        broken = self.judge_promises(table)
        if broken:
            self.count("lost_acked", len(broken))
            shown = ", ".join(f"{key}={promise[2] if promise[2] is not None else '(removed)'} (LSN {promise[1]}) "
                              f"came back as {got if got is not None else '(none)'}"
                              for key, promise, got in broken[:3]) + ("..." if len(broken) > 3 else "")
            self.fail("no-acked-write-lost", f"recovery lost {len(broken)} acknowledged writes: {shown}")
        elif not self.metrics["lost_acked"]:
            self.note("no-acked-write-lost", f"all {self.acked_total} acknowledged writes are in the recovered "
                                             "table (or overwritten by later writes)")
        # How many acknowledged writes one power loss may take (None: no bound).
        bound = {"always": 0, "batch": 0, "periodic": self.batch_size, "never": None}[self.flush]
        if self.bit_rot:
            self.note("loss-bounded", "the last recovery followed bit rot on disk, not only a power loss: "
                                      "no bound applies to that")
        elif bound is None:
            self.note("loss-bounded", f"flush=never promises nothing: this power loss took {len(broken)} "
                                      "acknowledged writes")
        elif len(broken) > bound:
            self.fail("loss-bounded", f"one power loss took {len(broken)} acknowledged writes; the bound with "
                                      f"flush={self.flush} is {bound}")
        else:
            self.note("loss-bounded", f"last power loss took {len(broken)} acknowledged writes (bound {bound})")
        self.bit_rot = False
        expected, kept = self.durable_state()
        if diff := first_difference(table, expected):
            self.fail("recovery-exact", f"after recovery {diff} = {table.get(diff, '(none)')}, "
                                        f"but the durable state says {expected.get(diff, '(none)')}")
        else:
            self.note("recovery-exact", f"recovered {len(table)} keys = checkpoint "
                                        f"{self.db.disk['checkpoint'].seq} + {kept} records")

    # -- actions ----------------------------------------------------------------------
    def require_serving(self, refusal: str) -> None:
        if self.db.status != "up":
            raise SimError(f"db is {self.db.status}; restart it first")
        if self.db.role != "serving":
            raise SimError(refusal)

    @action("set", Arg("key", "text"), Arg("value", "text"), group="request", help="Client: SET key value.")
    def do_set(self, key: str, value: str) -> None:
        self.client.send_write("SET", key, value)

    @action("remove", Arg("key", "text"), group="request", help="Client: REMOVE key.")
    def do_remove(self, key: str) -> None:
        self.client.send_write("DEL", key)

    @action("checkpoint", help="Write the table to disk now; segments below the low-water mark are deleted.")
    def do_checkpoint(self) -> None:
        self.require_serving("db is still recovering; checkpoint once it serves again")
        self.db.checkpoint()

    @action("corrupt", Arg("lsn", "int", lo=1), help="Flip a bit in the flushed record with this LSN (bit rot).")
    def do_corrupt(self, seq: int) -> None:
        if self.db.role == "recovering":
            raise SimError("db is reading its log right now; corrupt a record before the restart or after recovery")
        intact = [r for r in self.db.on_disk if not r.damage]
        record = next((r for r in intact if r.seq == seq), None)
        if record is None:
            lsns = [r.seq for r in intact]
            where = f"{min(lsns)}..{max(lsns)}" if lsns else "none yet"
            raise SimError(f"no intact record with LSN {seq} on disk (flushed LSNs: {where}); "
                           "buffered records are not on disk")
        record.payload = record.payload[:-1] + chr(ord(record.payload[-1]) ^ 1)  # one flipped bit
        record.damage = "corrupted"
        self.bit_rot = True
        self.emit("corrupt", lsn=seq, payload=record.payload, crc=record.crc)

    @action("tear", help="Cut the power while a record is being written: it reaches the disk half-written.")
    def do_tear(self) -> None:
        self.require_serving("db is recovering; tear cuts the power during a write, so wait until it serves")
        db = self.db
        if db.unflushed:
            record = db.unflushed[0]
        else:  # the next write the store was about to make (never acknowledged)
            record = db.new_record(*self.client.next_write())
            db.append(record)
        torn = replace(record, payload=record.payload[: len(record.payload) // 2], damage="torn")
        db.disk["segments"][record.segment].append(torn)
        self.emit("tear", lsn=record.seq, payload=torn.payload)
        self.do_crash("db")

    @action("duplicate", Arg("lsn", "int", lo=1),
            help="Append a second copy of the record with this LSN to the log (a retried append).")
    def do_duplicate(self, seq: int) -> None:
        self.require_serving("db is recovering; duplicate a record once it serves again")
        db = self.db
        original = next((r for r in db.on_disk + db.unflushed if r.seq == seq and not r.damage), None)
        if original is None:
            raise SimError(f"no record with LSN {seq} in the log (it may be below the low-water mark); "
                           f"the latest LSN is {db.applied_seq}")
        copy = replace(original, copy=True)
        db.append(copy)
        self.emit("duplicate", lsn=seq, segment=copy.segment)
        db.fsync_soon(full_batch=False)  # a copy alone never fills a batch: it arms the timer at most

    # -- the page ---------------------------------------------------------------------
    def view(self) -> dict:
        db = self.db
        segments = [{"id": seg_id, "records": [r.view(True) for r in on_disk] +
                     [r.view(False) for r in db.unflushed if r.segment == seg_id]}
                    for seg_id, on_disk in list(db.disk["segments"].items())[-SHOWN_SEGMENTS:]]
        return {
            "edges": [["client", "db"]],
            "wal": {
                "flush": self.flush,
                "replay": self.params["replay"],
                "table": [[k, v] for k, v in sorted(db.table.items())],
                "segments": segments,
                "hidden_segments": max(0, len(db.disk["segments"]) - SHOWN_SEGMENTS),
                "unflushed": len(db.unflushed),
                "low_water": db.disk["checkpoint"].seq,
                "redo": db.disk["checkpoint"].redo,
                "deleted": self.deleted_segments,
                "recovery": dict(vars(db.recovery)) if db.recovery else None,
            },
        }
