"""Write-ahead log: a key-value store that survives a power loss.

The store `db` keeps its table in memory and, before it changes the table,
appends the change to a log (SET key value, or DEL key).  A client sends it
writes.  The rules:

  * every change gets the next sequence number (its LSN) and is appended to the log
    FIRST, then applied to the memory table ("write ahead");
  * each record carries a CRC (zlib.crc32 of its bytes), so a record that was
    corrupted on disk, or only half written when the power failed (a torn
    write), is recognised when it is read back;
  * an append lands in the operating system's buffer; only an fsync makes it
    durable.  The flush policy decides when to fsync and when to acknowledge
    (named as in Cassandra's commit log and PostgreSQL):
      - always: fsync, then acknowledge (writes that arrive during an fsync
        share the next one: group commit);
      - batch: acknowledge only after the fsync, but wait to fsync until N
        records or T ms have gathered (fewer fsyncs, slower acks);
      - periodic: acknowledge at once, fsync every N records or T ms, and hold
        new writes while N unflushed records wait (the bound on what a power
        loss can take: like Cassandra's periodic mode, or PostgreSQL with
        synchronous_commit=off);
      - never: acknowledge at once and never fsync (only a checkpoint
        persists anything: no bound at all on what a power loss takes);
  * every record has a position in the log (like a byte offset) and the log
    is split into segments of bounded size; a checkpoint writes the whole
    table to disk with the sequence number it covers and the log position
    it was taken at (the redo point).  Segments entirely before the redo
    point are deleted (the low-water mark);
  * recovery after a crash loads the checkpoint, then replays the log record
    by record from the redo point on: a record whose sequence number is
    already covered is skipped (so replaying a duplicate changes nothing), and
    the first record whose CRC does not match ends the log: it and everything
    after it are cut off (point-in-time recovery, as RocksDB calls it).

The `replay` param can switch the checks off ("naive": apply every record as
it reads), to show what the CRC and the sequence numbers protect against.
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
ACK_AFTER_FSYNC = ("always", "batch")
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


@dataclass(frozen=True)
class Checkpoint:
    seq: int  # the last LSN the table contains
    table: dict
    redo: int  # the log position it was taken at: replay starts there


NO_CHECKPOINT = Checkpoint(0, {}, 0)


@dataclass
class Recovery:
    """The replay in progress after a restart (all but the queue is shown on the page)."""

    total: int = 0
    done: int = 0
    applied: int = 0
    skipped: int = 0
    bad: int | None = None  # the LSN whose CRC failed: the log was cut there
    from_checkpoint: int = 0
    last: list[dict] = field(default_factory=list)  # the latest verdicts, newest first
    queue: list[tuple[int, int]] = field(default_factory=list)  # (segment id, index) of each record still to read


def parse(payload: str) -> tuple[str, str, str]:
    """Read a record's bytes back as (op, key, value); garbage reads as garbage."""
    parts = payload.split(" ")
    op = parts[0]
    key = parts[1] if len(parts) > 1 else ""
    return op, key, " ".join(parts[2:])


def apply(table: dict, op: str, key: str, value: str) -> None:
    """SET and DEL on the memory table."""
    if op == "SET" and key:
        table[key] = value
    elif op == "DEL":
        table.pop(key, None)


class Store(Node):
    """The key-value store with its write-ahead log."""

    def boot(self) -> None:
        # What survives a power loss lives in self.disk: the flushed segments
        # and the latest checkpoint.  Everything below is memory.
        self.disk.setdefault("segments", {})  # segment id -> its fsynced records, oldest segment first
        self.disk.setdefault("checkpoint", None)  # Checkpoint
        self.disk.setdefault("next_segment", 1)
        self.disk.setdefault("next_pos", 1)  # the log's end: the position of the next append
        self.table: dict[str, str] = {}
        self.buffer: list[Record] = []  # appended, not yet fsynced
        self.syncing: list[Record] = []  # being written by the fsync in progress
        self.waiting: list = []  # writes held back while the batch is full
        self.durable_acks: dict[int, tuple[str, int]] = {}  # always, batch: lsn -> (client, req), acked after the fsync
        self.applied_seq = 0
        self.next_seq = 1
        self.since_checkpoint = 0
        self.recovery: Recovery | None = None
        if self.restarted:
            self.start_recovery()
        else:
            self.role = "serving"
            self.active_segment = self.new_segment()

    # -- the write path -----------------------------------------------------------
    @property
    def unflushed(self) -> list[Record]:
        return self.syncing + self.buffer

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
        if self.lab.flush in ACK_AFTER_FSYNC:
            self.durable_acks[record.seq] = (msg.src, msg.body["req"])  # acknowledge once it is on disk
        else:
            self.acknowledge(msg.src, msg.body["req"], record.seq)  # acknowledge now: it is only in memory
        self.fsync_soon()
        self.since_checkpoint += 1
        if self.lab.checkpoint_every and self.since_checkpoint >= self.lab.checkpoint_every:
            self.checkpoint()

    def new_record(self, op: str, key: str, value: str) -> Record:
        """The change as bytes, under the next LSN, with their CRC."""
        seq, payload = self.next_seq, f"SET {key} {value}" if op == "SET" else f"DEL {key}"
        self.next_seq += 1
        return Record(seq, payload, crc_of(seq, payload))

    def append(self, record: Record) -> None:
        """Add a record to the active segment (in the buffer until an fsync);
        a full segment is closed and the next one opened."""
        record.segment = self.active_segment
        record.pos = self.disk["next_pos"]
        self.disk["next_pos"] += 1
        self.buffer.append(record)
        if self.segment_size(self.active_segment) >= self.lab.segment_size:
            self.active_segment = self.new_segment()

    def acknowledge(self, client: str, req: int, seq: int) -> None:
        self.lab.ack_sent(seq)
        self.send(client, "ACK", req=req, lsn=seq)

    def fsync_soon(self, full_batch: bool = True) -> None:
        """The flush policy: always fsyncs now; batch and periodic fsync once
        batch_size records wait (`full_batch`), else batch_ms after the first."""
        flush = self.lab.flush
        if flush == "always" or (full_batch and flush in BATCHED and len(self.unflushed) >= self.lab.batch_size):
            self.flush()
        elif flush in BATCHED and not self.pending("batch"):
            self.after(self.lab.batch_ms, self.flush, key="batch")

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
            self.lab.record_durable(record)
        self.lab.emit("fsync", lsns=[r.seq for r in done], ms=self.lab.fsync_ms)
        for record in done:
            if who := self.durable_acks.pop(record.seq, None):
                self.acknowledge(*who, record.seq)
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

    def segment_size(self, seg_id: int) -> int:
        return len(self.disk["segments"][seg_id]) + len([r for r in self.unflushed if r.segment == seg_id])

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
        self.lab.power_loss(self.unflushed)
        super().crash()
        self.buffer, self.syncing, self.waiting, self.durable_acks = [], [], [], {}
        self.table, self.recovery = {}, None

    def start_recovery(self) -> None:
        """Load the checkpoint, then read the log from its redo point on (what
        lies before it is in the checkpoint, and is never read)."""
        self.role = "recovering"
        cp = self.disk["checkpoint"] or NO_CHECKPOINT
        self.table, self.applied_seq = dict(cp.table), cp.seq
        queue = [(seg_id, i) for seg_id, records in self.disk["segments"].items()
                 for i, r in enumerate(records) if r.pos >= cp.redo]
        self.recovery = Recovery(total=len(queue), from_checkpoint=cp.seq, queue=queue)
        self.lab.emit("recovery-start", checkpoint=cp.seq, redo=cp.redo, records=len(queue))
        self.after(REPLAY_STEP, self.replay_next, key="replay")

    def replay_next(self) -> None:
        rec = self.recovery
        if not rec.queue:
            return self.finish_recovery()
        seg_id, index = rec.queue.pop(0)
        record = self.disk["segments"][seg_id][index]
        seq, payload = record.seq, record.payload
        checked = self.lab.replay_mode == "checked"
        before = dict(self.table)
        if checked and crc_of(seq, payload) != record.crc:
            verdict = "crc-failed"  # the end of the usable log
        elif checked and seq <= self.applied_seq:
            verdict = "skipped"  # already applied (in the checkpoint, or a duplicate)
        else:
            apply(self.table, *parse(payload))
            verdict = "applied"
        rec.done += 1
        rec.applied += verdict == "applied"
        rec.skipped += verdict == "skipped"
        rec.last = ([{"seq": seq, "verdict": verdict}] + rec.last)[:6]
        self.lab.emit("replay", lsn=seq, segment=seg_id, verdict=verdict, crc=record.crc,
                      computed=crc_of(seq, payload), payload=payload)
        self.lab.judge_replay(record, verdict, before, self.table, self.applied_seq)
        if verdict == "applied":
            self.applied_seq = max(self.applied_seq, seq)
        if verdict == "crc-failed":
            rec.bad = seq
            self.truncate(seg_id, index)
            return self.finish_recovery()
        self.after(REPLAY_STEP, self.replay_next, key="replay")

    def truncate(self, seg_id: int, index: int) -> None:
        """Cut the log at a bad record: it and everything after it are dropped."""
        segments = self.disk["segments"]
        later = [s for s in segments if s > seg_id]
        cut = len(segments[seg_id]) - index + sum(len(segments[s]) for s in later)
        segments[seg_id] = segments[seg_id][:index]
        for s in later:
            del segments[s]
        self.lab.emit("truncate", segment=seg_id, at=index, records=cut)

    def finish_recovery(self) -> None:
        rec = self.recovery
        rec.queue = []
        segments = self.disk["segments"]
        seqs = [r.seq for records in segments.values() for r in records]
        self.next_seq = max([self.applied_seq, *seqs]) + 1
        self.applied_seq = self.next_seq - 1
        last = next(reversed(segments), None)
        if segments and len(segments[last]) < self.lab.segment_size:
            self.active_segment = last
        else:
            self.active_segment = self.new_segment()
        self.role = "serving"
        self.lab.emit("recovered", applied=rec.applied, skipped=rec.skipped, bad=rec.bad,
                      keys=len(self.table), next_lsn=self.next_seq)

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

    def tick(self) -> None:
        """The background workload: a write every 1/rate seconds."""
        self.send_write(*self.next_write())
        self.after(1000 / self.lab.params["rate"], self.tick, key="tick")

    def next_write(self) -> tuple[str, str, str]:
        """Mostly SETs of a few keys, some removals."""
        self.counter += 1
        key = KEYS[self.rng.randrange(len(KEYS))]
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

    def answer(self, msg) -> float | None:
        """When the write this answers was sent (None: it was answered already, or timed out)."""
        self.answered(("write", msg.body["req"]))
        return self.outstanding.pop(msg.body["req"], None)

    @on("ACK")
    def acked(self, msg) -> None:
        if (sent := self.answer(msg)) is not None:
            self.lab.count("acks")
            self.lab.latencies.append(self.now - sent)
            self.lab.metrics["ack_ms"] = round(sum(self.lab.latencies) / len(self.lab.latencies), 1)

    @on("REJECT")
    def rejected(self, msg) -> None:
        if self.answer(msg) is not None:
            self.lab.count("rejected")


class WriteAheadLog(Lab):
    slug = "write-ahead-log"
    title = "Write-ahead log"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    INVARIANTS = {
        "loss-bounded": ("checked",),  # never promises no bound, so it cannot break it either
        "recovery-exact": ("checked",),
        "bad-record-rejected": ("checked",),
        "replay-idempotent": ("checked",),
    }
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
        raw = dict(raw)
        if str(raw.get("flush", "")).strip() in FLUSH_ALIASES:
            raw["flush"] = FLUSH_ALIASES[str(raw["flush"]).strip()]
        return super().parse_params(raw)

    def setup(self) -> None:
        p = self.params
        self.flush, self.batch_size, self.batch_ms = p["flush"], p["batch_size"], p["batch_ms"]
        self.fsync_ms, self.segment_size, self.checkpoint_every = p["fsync_ms"], p["segment_size"], p["checkpoint_every"]
        self.replay_mode = p["replay"]
        self.metrics.update({"writes": 0, "acks": 0, "fsyncs": 0, "fsync_ms": 0, "ack_ms": 0, "lost_acked": 0,
                             "checkpoints": 0, "segments_deleted": 0, "replayed": 0})
        self.latencies: list[float] = []
        # What the lab knows independently of the store (to judge it).
        # 1. The promises: for each key, the writes the store applied to it since
        #    the last acknowledged one, [(n, lsn, result)], and which of them was
        #    the last acknowledged (`promised`).  After a recovery the key must
        #    hold that write's result or a later write's, whatever the store did.
        self.n = 0  # writes applied so far, in order (LSNs can repeat after a crash; this cannot)
        self.this_life: dict[int, tuple] = {}  # lsn -> (n, key) for the store's current incarnation
        self.acked_this_life: set[int] = set()
        self.history: dict[str, list[tuple]] = {}
        self.promised: dict[str, tuple] = {}  # key -> (n, lsn, result) of its last acknowledged write
        self.acked_total = 0
        # 2. The durable log as the fsyncs wrote it, by log position, and the checkpoint.
        self.durable: dict[int, tuple] = {}  # pos -> (lsn, op, key, value) once an fsync wrote it
        self.durable_checkpoint = NO_CHECKPOINT
        self.damaged: set[int] = set()  # positions of records the learner corrupted or tore
        self.bit_rot = False  # a durable record was corrupted since the last recovery
        self.lost_reported: list[int] = []
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
        if p["rate"]:
            self.client.after(1000 / p["rate"], self.client.tick, key="tick")

    # -- what the lab records to judge the store ------------------------------------
    @observe("append")
    def applied(self, event: dict) -> None:
        """The store applied a write (it is in its memory table now)."""
        self.n += 1
        self.this_life[event["lsn"]] = (self.n, event["key"])
        result = event["value"] if event["op"] == "SET" else None  # what it leaves under its key
        self.history.setdefault(event["key"], []).append((self.n, event["lsn"], result))

    def ack_sent(self, lsn: int) -> None:
        """The store tells the client this write is done: a promise."""
        self.acked_total += 1
        self.acked_this_life.add(lsn)
        n, key = self.this_life[lsn]
        entry = next((e for e in self.history[key] if e[0] == n), None)
        if entry and (key not in self.promised or self.promised[key][0] < n):
            self.promised[key] = entry
            self.history[key] = [e for e in self.history[key] if e[0] >= n]

    def record_durable(self, record: Record) -> None:
        """An fsync wrote this record."""
        if record.pos >= self.durable_checkpoint.redo:  # before the redo point it is in the checkpoint already
            self.durable[record.pos] = (record.seq, *parse(record.payload))

    @observe("checkpoint")
    def checkpointed(self, event: dict) -> None:
        self.durable_checkpoint = cp = self.db.disk["checkpoint"]
        for pos in [pos for pos in self.durable if pos < cp.redo]:
            del self.durable[pos]  # covered by the checkpoint now
        self.count("checkpoints")

    @observe("fsync", "checkpoint", "replay")
    def meter(self, event: dict) -> None:
        if event["kind"] == "replay":
            return self.count("replayed")
        self.count("fsyncs")  # a checkpoint writes the table with one fsync
        self.count("fsync_ms", self.fsync_ms)

    @observe("segment-deleted")
    def segment_deleted(self, event: dict) -> None:
        self.count("segments_deleted")
        self.deleted_segments = (self.deleted_segments + [{"id": event["id"], "records": event["records"]}])[-6:]

    def bound(self) -> int | None:
        """How many acknowledged writes one power loss may take (None: no bound)."""
        return {"always": 0, "batch": 0, "periodic": self.batch_size, "never": None}[self.flush]

    def power_loss(self, unflushed: list[Record]) -> None:
        """The machine loses power: what was not fsynced is gone (shown; judged at recovery)."""
        redo = self.durable_checkpoint.redo
        at_risk = [r.seq for r in unflushed if r.seq in self.acked_this_life and not r.copy
                   and r.pos >= redo]  # acknowledged, not on disk, not in the checkpoint
        self.emit("power-loss", unflushed=len(unflushed), acked_lost=at_risk)
        self.this_life, self.acked_this_life = {}, set()

    def expected_state(self) -> tuple[dict, list[int]]:
        """The last durable state, from the lab's own records: the checkpoint,
        then each flushed record after its redo point, in log order, up to the
        first damaged one (a record already covered is skipped)."""
        table, applied, kept = dict(self.durable_checkpoint.table), self.durable_checkpoint.seq, []
        for pos in sorted(self.durable):
            if pos in self.damaged:
                break
            kept.append(pos)
            seq, op, key, value = self.durable[pos]
            if seq > applied:
                apply(table, op, key, value)
                applied = seq
        return table, kept

    def judge_replay(self, record: Record, verdict: str, before: dict, after: dict, applied: int) -> None:
        seq = record.seq
        if crc_of(seq, record.payload) != record.crc:
            if verdict == "applied":
                self.fail("bad-record-rejected", f"seq {seq} failed its CRC ({record.damage}) but was applied")
            else:
                self.note("bad-record-rejected", f"seq {seq} ({record.damage}): CRC mismatch caught, log cut there")
        elif seq <= applied and verdict == "applied" and before != after:
            changed = next(k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k))
            self.fail("replay-idempotent", f"replaying seq {seq} again changed {changed} from "
                                           f"{before.get(changed, '(none)')} to {after.get(changed, '(none)')}")
        elif seq <= applied:
            self.note("replay-idempotent", f"seq {seq} was already applied: skipped")

    def judge_promises(self, table: dict) -> list[tuple]:
        """Compare the recovered table with the acknowledgements: for each key,
        the result of its last acknowledged write or of a later write must be
        there.  Returns the broken promises; the table is the new baseline."""
        broken = []
        for key in sorted(set(self.history) | set(table)):
            got = table.get(key)
            promise = self.promised.get(key)
            entries = self.history.get(key, [])
            matching = [e for e in entries if e[2] == got]
            if promise and not matching:
                broken.append((key, promise, got))
            self.n += 1
            if promise and matching:  # still bound by the promise; drop the writes that did not survive
                last = matching[-1][0]
                self.history[key] = [e for e in entries if e[0] <= last]
            else:  # no promise on this key any more: what was recovered is where it starts again
                self.promised.pop(key, None)
                self.history[key] = [(self.n, 0, got)]
        return broken

    @observe("recovered")
    def recovered(self, event: dict) -> None:
        self.judge_recovery(self.db.table)

    def judge_recovery(self, table: dict) -> None:
        broken = self.judge_promises(table)
        if broken:
            seqs = [promise[1] for _key, promise, _got in broken]
            self.lost_reported += seqs
            self.count("lost_acked", len(broken))
            shown = ", ".join(f"{key}={promise[2] if promise[2] is not None else '(removed)'} (LSN {promise[1]}) "
                              f"came back as {got if got is not None else '(none)'}"
                              for key, promise, got in broken[:3]) + ("..." if len(broken) > 3 else "")
            self.fail("no-acked-write-lost", f"recovery lost {len(broken)} acknowledged writes: {shown}")
        elif not self.lost_reported:
            self.note("no-acked-write-lost", f"all {self.acked_total} acknowledged writes are in the recovered "
                                             "table (or overwritten by later writes)")
        bound = self.bound()
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
        expected, kept = self.expected_state()
        cp_seq = self.durable_checkpoint.seq
        if table != expected:
            diff = next(k for k in sorted(set(table) | set(expected)) if table.get(k) != expected.get(k))
            self.fail("recovery-exact", f"after recovery {diff} = {table.get(diff, '(none)')}, "
                                        f"but the durable state says {expected.get(diff, '(none)')}")
        else:
            self.note("recovery-exact", f"recovered {len(table)} keys = checkpoint {cp_seq} + {len(kept)} records")
        if self.replay_mode == "checked":
            # The store cut the log at the first bad record: the lab's record of
            # the durable log is now exactly what is left.
            self.durable = {pos: self.durable[pos] for pos in kept}
            self.damaged = set()

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
        records = [r for seg in self.db.disk["segments"].values() for r in seg]
        record = next((r for r in records if r.seq == seq and not r.damage), None)
        if record is None:
            on_disk = sorted({r.seq for r in records if not r.damage})
            where = f"{on_disk[0]}..{on_disk[-1]}" if on_disk else "none yet"
            raise SimError(f"no intact record with LSN {seq} on disk (flushed LSNs: {where}); buffered records are not on disk")
        record.payload = record.payload[:-1] + chr(ord(record.payload[-1]) ^ 1)  # one flipped bit
        record.damage = "corrupted"
        self.damaged.add(record.pos)
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
        self.damaged.add(record.pos)
        self.emit("tear", lsn=record.seq, payload=torn.payload)
        self.do_crash("db")

    @action("duplicate", Arg("lsn", "int", lo=1), help="Append a second copy of the record with this LSN to the log (a retried append).")
    def do_duplicate(self, seq: int) -> None:
        self.require_serving("db is recovering; duplicate a record once it serves again")
        db = self.db
        records = [r for seg in db.disk["segments"].values() for r in seg] + db.unflushed
        original = next((r for r in records if r.seq == seq and not r.damage), None)
        if original is None:
            raise SimError(f"no record with LSN {seq} in the log (it may be below the low-water mark); "
                           f"the latest LSN is {db.next_seq - 1}")
        copy = replace(original, copy=True)
        db.append(copy)
        self.emit("duplicate", lsn=seq, segment=copy.segment)
        db.fsync_soon(full_batch=False)  # a copy alone never fills a batch: it arms the timer at most

    # -- the page ---------------------------------------------------------------------
    def view(self) -> dict:
        db = self.db
        up = db.status != "down"
        segments = []
        for seg_id, on_disk in list(db.disk["segments"].items())[-SHOWN_SEGMENTS:]:
            records = [self.record_view(r, True) for r in on_disk]
            if up:
                records += [self.record_view(r, False) for r in db.unflushed if r.segment == seg_id]
            segments.append({"id": seg_id, "records": records})
        checkpoint = db.disk["checkpoint"] or NO_CHECKPOINT
        return {
            "edges": [["client", "db"]],
            "wal": {
                "flush": self.flush,
                "replay": self.replay_mode,
                "table": [[k, v] for k, v in sorted(db.table.items())] if up else [],
                "segments": segments,
                "hidden_segments": max(0, len(db.disk["segments"]) - SHOWN_SEGMENTS),
                "unflushed": len(db.unflushed) if up else 0,
                "low_water": checkpoint.seq,
                "redo": checkpoint.redo,
                "checkpoint_keys": len(checkpoint.table),
                "deleted": self.deleted_segments,
                "recovery": {k: v for k, v in vars(db.recovery).items() if k != "queue"} if db.recovery else None,
                "acked": self.acked_total,
                "lost": self.lost_reported[-12:],
            },
        }

    @staticmethod
    def record_view(record: Record, flushed: bool) -> dict:
        op, key, value = parse(record.payload)
        return {"seq": record.seq, "pos": record.pos, "op": op, "key": key, "value": value, "flushed": flushed,
                "damage": record.damage, "copy": record.copy,
                "crc": f"{record.crc:08x}", "crc_ok": crc_of(record.seq, record.payload) == record.crc}
