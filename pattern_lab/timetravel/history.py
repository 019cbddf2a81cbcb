"""Time travel: rebuild any past moment of a run, quickly.

A run is deterministic (lab, params, seed and the applied command log), so
the state at time t is `replay(commands with t_c <= t, until=t)`.  Replaying
ten minutes from zero on every drag of the timeline would be too slow, so a
`History` keeps a *checkpoint* (a deep copy of the whole Lab: clock, heap,
random generator, nodes, network) every CHECKPOINT_MS of simulated time.
A seek copies the nearest checkpoint at or before t and replays at most one
short stretch from there.

Why the result equals a fresh replay exactly: a checkpoint at time c is taken
after `run_until(c)` and before the commands stamped c are applied, i.e. at a
point the fresh replay passes through too (`run_until(a); run_until(b)` does
the same as `run_until(b)` when nothing happens in between).  The unit tests
check it byte for byte for every lab.

Histories are cached per process (an LRU of MAX_RUNS runs).  They live in the
web processes that answer the seeks, never in the Celery worker that drives
the live run, so scrubbing costs the live run's viewers nothing but CPU on a
shared machine.  A live run's history grows as new commands arrive: the
checkpoints before the first new command stay valid.
"""

from __future__ import annotations

import bisect
import copy
import threading
from collections import OrderedDict
from dataclasses import dataclass

from simulations.kernel import Lab

CHECKPOINT_MS = 5_000
MAX_RUNS = 12  # histories kept per process
# The latest events kept for a moment's log: as many as a live frame's builder
# reads to rebuild its log ((LOG_EVENTS + LOG_TRAFFIC) x 8, see frames.py).
LOG_KEEP = 960
QUIET: set[str] = set()  # kinds left out of the log (none: message lines are in it too)
# Events that get a mark on the timeline.
MARK_KINDS = {"crash", "restart", "pause", "resume", "partition", "cut", "heal", "delay", "loss", "slow",
              "drop-next", "duplicate-next", "check", "rejected"}
# Events the space-time diagram draws.
DIAGRAM_KINDS = {"send", "drop", "crash", "restart", "pause", "resume", "partition", "heal", "cut"}
STEP_LOOKAHEAD_MS = 10_000  # how far "step forward" looks for the next event


@dataclass
class Checkpoint:
    t: float
    lab: Lab  # never mutated: seeks work on a copy
    recent: tuple  # the log lines up to t
    applied: int  # commands applied (all stamped before t)
    marks: int  # len(History.marks) at t


@dataclass
class Moment:
    """What a seek returns: the lab as it was at t (a private copy), the log
    up to t, the diagram's events of the window before t, and where the
    previous and next logged events are (for the step buttons)."""

    t: float
    lab: Lab
    recent: list
    window: list
    prev_t: float | None = None
    next_t: float | None = None
    applied: int = 0  # commands applied so far


def command_key(c) -> tuple:
    t, action, args = c
    return (float(t), action, tuple(str(a) for a in args))


class History:
    def __init__(self, lab_cls: type[Lab], params: dict, seed: int, commands=(), log_keep: int = LOG_KEEP):
        self.lab_cls, self.params, self.seed = lab_cls, params, seed
        self.log_keep = log_keep
        self.commands: list[tuple] = [command_key(c) for c in commands]
        self.lock = threading.Lock()
        self.head = lab_cls(params, seed)
        self.head_i = 0
        self.recent: list[dict] = []
        self.marks: list[dict] = []
        self.setup_events = self.head.drain()  # what setup() emitted, before any checkpoint
        self._note(self.setup_events)
        self.checkpoints = [self._checkpoint()]

    # -- building ------------------------------------------------------------
    def _checkpoint(self) -> Checkpoint:
        return Checkpoint(self.head.now, copy.deepcopy(self.head), tuple(self.recent), self.head_i, len(self.marks))

    def _note(self, events: list[dict]) -> None:
        self.recent.extend(e for e in events if e["kind"] not in QUIET)
        del self.recent[:-self.log_keep]
        self.marks.extend(e for e in events if e["kind"] in MARK_KINDS)

    def extend(self, until: float) -> None:
        """Move the head (the furthest replayed state) to `until`, leaving a
        checkpoint at every multiple of CHECKPOINT_MS on the way."""
        lab, cmds = self.head, self.commands
        while lab.now < until:
            boundary = (int(lab.now // CHECKPOINT_MS) + 1) * CHECKPOINT_MS
            target = min(boundary, until)
            while self.head_i < len(cmds) and cmds[self.head_i][0] < target:
                t, action, args = cmds[self.head_i]
                lab.run_until(t)
                lab.command(action, list(args))
                self.head_i += 1
            lab.run_until(target)
            self._note(lab.drain())
            if target == boundary:
                self.checkpoints.append(self._checkpoint())
        # Commands stamped exactly `until` belong to that moment too (after any checkpoint there).
        while self.head_i < len(cmds) and cmds[self.head_i][0] <= until:
            t, action, args = cmds[self.head_i]
            lab.run_until(t)
            lab.command(action, list(args))
            self.head_i += 1
        self._note(lab.drain())

    def update_commands(self, commands) -> bool:
        """Take the run's current command log.  Returns False when it does
        not continue the one this history was built from (then build anew)."""
        new = [command_key(c) for c in commands]
        old = self.commands
        if new[:len(old)] != old:
            return False
        if len(new) == len(old):
            return True
        first = new[len(old)][0]
        self.commands = new
        if first < self.head.now:
            self._rewind_to(first)
        return True

    def _rewind_to(self, t: float) -> None:
        """Forget everything replayed after t (a command arrived for a time the
        head has already passed: normally impossible for a live run)."""
        keep = [c for c in self.checkpoints if c.t <= t] or self.checkpoints[:1]
        self.checkpoints = keep
        ck = keep[-1]
        self.head = copy.deepcopy(ck.lab)
        self.head_i = ck.applied
        self.recent = list(ck.recent)
        del self.marks[ck.marks:]

    # -- seeking ----------------------------------------------------------------
    def checkpoint_before(self, t: float) -> Checkpoint:
        i = bisect.bisect_right([c.t for c in self.checkpoints], t) - 1
        return self.checkpoints[max(i, 0)]

    def seek(self, t: float, window_ms: float = 0.0, lookahead: float | None = None) -> Moment:
        """The run as it was at t (after every event and command at or before t).
        `window_ms`: also collect the diagram's events of (t - window_ms, t].
        `lookahead`: find the next logged event after t, up to that time (on
        a copy; or call find_next() once done with the moment's lab)."""
        with self.lock:
            self.extend(t)
            ck = self.checkpoint_before(max(0.0, t - window_ms))
            lab = copy.deepcopy(ck.lab)
        recent = list(ck.recent)
        events: list[dict] = []
        i = ck.applied
        cmds = self.commands
        while i < len(cmds) and cmds[i][0] <= t:
            ct, action, args = cmds[i]
            lab.run_until(ct)
            lab.command(action, list(args))
            i += 1
        lab.run_until(t)
        events = lab.drain()
        if ck is self.checkpoints[0]:
            events = self.setup_events + events
            recent = []
        recent.extend(e for e in events if e["kind"] not in QUIET)
        del recent[:-self.log_keep]
        lo = t - window_ms
        window = [e for e in events if e["t"] > lo and e["kind"] in DIAGRAM_KINDS] if window_ms else []
        before = [e["t"] for e in recent if e["t"] < t]
        # Stepping back from the first logged event goes to the start of the run.
        prev_t = before[-1] if before else (0.0 if t > 0 else None)
        moment = Moment(t, lab, recent, window, prev_t=prev_t, applied=i)
        if lookahead is not None:
            probe = Moment(t, copy.deepcopy(lab), [], [], applied=i)
            moment.next_t = self.find_next(probe, lookahead)
        return moment

    def find_next(self, moment: Moment, end: float) -> float | None:
        """When the next logged event after the moment happens.  Runs the
        moment's lab forward (so call it last).  With nothing logged in the
        next STEP_LOOKAHEAD_MS, that much later (or None at the run's end)."""
        limit = min(end, moment.t + STEP_LOOKAHEAD_MS)
        found = self._next_event_time(moment.lab, moment.applied, limit)
        if found is None and limit > moment.t:
            return limit
        moment.next_t = found
        return found

    def _next_event_time(self, lab: Lab, i: int, limit: float) -> float | None:
        """When the next logged event after lab.now happens (None before `limit`)."""
        cmds = self.commands
        while True:
            nt = lab.next_event_time()
            ct = cmds[i][0] if i < len(cmds) else None
            step = min(x for x in (nt, ct, float("inf")) if x is not None)
            if step > limit:
                return None
            if ct is not None and ct <= step:
                lab.run_until(ct)
                lab.command(cmds[i][1], list(cmds[i][2]))
                i += 1
            else:
                lab.run_until(step)
            logged = [e for e in lab.drain() if e["kind"] not in QUIET]
            if logged:
                return logged[0]["t"]

    def marks_until(self, t: float) -> list[dict]:
        with self.lock:
            self.extend(t)
            return [m for m in self.marks if m["t"] <= t]


# -- the per-process cache -------------------------------------------------------
_cache: OrderedDict[str, History] = OrderedDict()
_cache_lock = threading.Lock()


def history_for(run_id: str, lab_cls, params: dict, seed: int, commands) -> History:
    """The cached history of a run, brought up to date with its command log."""
    with _cache_lock:
        h = _cache.get(run_id)
        if h is not None and (h.lab_cls, h.params, h.seed) == (lab_cls, params, seed):
            _cache.move_to_end(run_id)
            with h.lock:
                if h.update_commands(commands):
                    return h
        h = History(lab_cls, params, seed, commands)
        _cache[run_id] = h
        while len(_cache) > MAX_RUNS:
            _cache.popitem(last=False)
        return h


def forget(run_id: str) -> None:
    with _cache_lock:
        _cache.pop(run_id, None)
