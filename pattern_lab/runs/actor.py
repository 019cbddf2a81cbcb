"""The actor: one long-lived task per live run.

It takes the run's lease (a Redis key with a TTL holding a fencing token),
rebuilds the simulation by replaying the command log, then loops:

  1. advance the simulation to where the wall clock says it should be
     (wall time elapsed x speed, unless the learner froze the clock);
  2. publish the batch of events as one frame (at most one per FRAME_MS);
  3. block on the run's wake list until the next frame is due, picking up
     new commands (stamped with the current simulated time *before* they are
     applied) and clock changes;
  4. renew the lease; stop when it is lost or nobody has watched for IDLE_S.

If the worker dies the lease expires; a daphne process that still has
viewers notices and queues the actor again; the new actor replays the log to
the last published position and carries on, so viewers see a short stall and
no gap or repeat in the sequence numbers.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from django.conf import settings
from django.db import close_old_connections, transaction

from simulations import get_lab
from simulations.kernel import replay

from . import keys
from .frames import FrameBuilder, node_actions
from .models import Command, Run

log = logging.getLogger(__name__)

# Set when the worker is asked to shut down: actors hand their runs back at
# once (releasing the lease) so another worker takes over without waiting.
SHUTDOWN = threading.Event()


class LeaseLost(Exception):
    pass


class Actor:
    def __init__(self, run_id: str):
        self.run_id = run_id
        self.r = keys.client()
        cfg = settings.PATTERN_LAB
        self.frame_s = cfg["FRAME_MS"] / 1000
        self.lease_ms = cfg["LEASE_MS"]
        self.idle_s = cfg["IDLE_S"]
        self.publish = self.r.register_script(keys.PUBLISH)
        self.renew = self.r.register_script(keys.RENEW)
        self.release = self.r.register_script(keys.RELEASE)

    # -- lease ---------------------------------------------------------------------
    def acquire(self) -> bool:
        token = self.r.incr(keys.fence(self.run_id))
        if not self.r.set(keys.lease(self.run_id), token, nx=True, px=self.lease_ms):
            return False
        self.token = token
        self.r.pipeline().delete(keys.starting(self.run_id)).set(
            keys.worker(self.run_id), os.getpid(), ex=keys.FRAME_TTL_S).execute()
        return True

    def keep_lease(self) -> None:
        if not self.renew(keys=[keys.lease(self.run_id)], args=[self.token, self.lease_ms]):
            raise LeaseLost(self.run_id)

    # -- life cycle -------------------------------------------------------------------
    def run(self) -> None:
        if not self.acquire():
            return
        try:
            self.start()
            self.loop()
        except LeaseLost:
            log.warning("run %s: lease lost, another worker owns it now", self.run_id)
        except Run.DoesNotExist:
            log.warning("run %s: no such run", self.run_id)
        finally:
            self.release(keys=[keys.lease(self.run_id)], args=[self.token])
            close_old_connections()

    def start(self) -> None:
        run = Run.objects.get(id=self.run_id)
        # Claim the run in the database too: commands are stamped only under this fence.
        Run.objects.filter(id=run.id).update(fence=self.token, status=Run.LIVE)
        self.run_row = run
        self.lab_cls = get_lab(run.lab)
        applied = list(run.commands.exclude(t=None).order_by("n", "id"))
        self.applied_n = max((c.n or 0 for c in applied), default=0)
        pos = self.r.get(keys.pos(run.id))
        resume_t = max(float(pos.split()[0]) if pos else 0.0, run.sim_t)
        self.lab = replay(self.lab_cls, run.params, run.seed, [c.as_tuple() for c in applied], resume_t)
        replayed = self.lab.drain()
        self.frames = FrameBuilder(run.id, node_actions(self.lab_cls))
        self.frames.remember(replayed)
        self.frames.prev_seq = self.lab.seq
        self.frames.watch = run.watch
        self.speed, self.frozen = run.speed, run.frozen
        self.watched, self.behind = True, False
        self.anchor()
        self.load_scheduled()
        self.apply_pending()
        self.flush(force=True)
        log.info("run %s: actor %s took over at t=%.0f seq=%d after %d commands",
                 run.id, self.token, self.lab.now, self.lab.seq, len(applied))

    def anchor(self) -> None:
        """Tie simulated time to the wall clock from here on."""
        self.wall0, self.sim0 = time.monotonic(), self.lab.now

    def target(self) -> float:
        if self.frozen:
            return self.lab.now
        return float(int(self.sim0 + (time.monotonic() - self.wall0) * 1000 * self.speed))

    def loop(self) -> None:
        last_seen = time.monotonic()
        next_lease = 0.0
        while not SHUTDOWN.is_set():
            now = time.monotonic()
            if now >= next_lease:
                self.keep_lease()
                next_lease = now + self.lease_ms / 4000
                watched = bool(self.r.exists(keys.watched(self.run_id)))
                if watched:
                    last_seen = now
                elif now - last_seen > self.idle_s:
                    self.stop()
                    return
                if watched and not self.watched:
                    self.watched = True
                    self.flush(force=True)  # a viewer is back: bring it up to date
                self.watched = watched
            self.advance()
            self.flush()
            reply = self.r.blpop([keys.wake(self.run_id)], timeout=self.frame_s)
            if reply:
                self.on_wake(reply[1].decode())

    def on_wake(self, first: str) -> None:
        signals = {first}  # the signal that woke us counts too (a lone "ctl" was lost before)
        while True:
            item = self.r.lpop(keys.wake(self.run_id), 50)
            if not item:
                break
            signals.update(x.decode() for x in item)
        self.advance()
        if "ctl" in signals:
            run = Run.objects.only("speed", "frozen", "fence", "watch").get(id=self.run_id)
            if run.fence != self.token:
                raise LeaseLost(self.run_id)
            if run.watch != self.frames.watch:
                self.frames.watch = run.watch
                self.flush(force=True)
            if (run.speed, run.frozen) != (self.speed, self.frozen):
                self.speed, self.frozen = run.speed, run.frozen
                self.anchor()
                self.flush(force=True)
        self.apply_pending()

    def advance(self) -> None:
        """Run the simulation up to now, stopping exactly at each scripted
        command's due time to apply it."""
        target = self.target()
        while self.scheduled and self.scheduled[0].due <= target:
            cmd = self.scheduled.pop(0)
            self.lab.run_until(cmd.due)
            self.apply([cmd])
        self.lab.run_until(target)

    def load_scheduled(self) -> None:
        self.scheduled = list(Command.objects.filter(run_id=self.run_id, t=None)
                              .exclude(due=None).order_by("due", "id"))

    def apply_pending(self) -> None:
        """Apply the learner's new commands now."""
        pending = list(Command.objects.filter(run_id=self.run_id, t=None, due=None).order_by("id"))
        if pending:
            self.apply(pending)

    def apply(self, commands: list) -> None:
        t = self.lab.now
        # Write-ahead: the time and the place in the log are stored before the
        # commands touch the simulation, and only under this actor's fence.
        with transaction.atomic():
            claimed = 0
            for cmd in commands:
                self.applied_n += 1
                claimed += Command.objects.filter(id=cmd.id, t=None, run__fence=self.token).update(
                    t=t, n=self.applied_n)
        if claimed != len(commands):
            raise LeaseLost(self.run_id)
        verdicts = self.r.pipeline()
        for cmd in commands:
            error = self.lab.command(cmd.action, list(cmd.args))
            if error:
                Command.objects.filter(id=cmd.id).update(error=error[:300])
            key = f"cmd:{cmd.id}:verdict"
            verdicts.rpush(key, error or "").expire(key, 10)
        self.flush(force=True)
        verdicts.execute()

    def flush(self, force: bool = False) -> None:
        events = self.lab.drain()
        if not events and not force:
            return
        if not self.watched and not force:
            # Nobody watches: keep the log, skip rendering (the next viewer
            # gets a full frame, see loop()).
            self.frames.remember(events)
            self.behind = True
            return
        clock = {"speed": self.speed, "frozen": self.frozen}
        seq, delta, full = self.frames.build(self.lab, events, clock)
        # After frames were skipped a delta would leave a hole in the log: send the full frame.
        message = full if self.behind else delta
        self.behind = False
        ok = self.publish(
            keys=[keys.lease(self.run_id), keys.full(self.run_id), keys.pos(self.run_id), keys.frames(self.run_id),
                  keys.ok(self.run_id)],
            args=[self.token, f"{seq}|{message}", f"{seq}|{full}", f"{self.lab.now} {seq}", keys.FRAME_TTL_S,
                  "1" if all(c.ok for c in self.lab.checks.values()) else "0"],
        )
        if not ok:
            raise LeaseLost(self.run_id)

    def stop(self) -> None:
        Run.objects.filter(id=self.run_id, fence=self.token).update(status=Run.IDLE, sim_t=self.lab.now)
        log.info("run %s: idle, stopped at t=%.0f", self.run_id, self.lab.now)
