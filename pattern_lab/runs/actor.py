"""Live runs in a worker process: one scheduler loop drives every run the
process holds a lease for.

Celery only carries "drive run X" messages (tasks.drive_run), and the task
returns at once: it checks that somebody still watches the run (a message
queued for a run that was abandoned meanwhile is dropped) and puts the run on
the worker's list of runs to start.  Two starter threads take runs from that
list, newest first (checking again that they are watched), take the run's
lease (a Redis key with a TTL holding a fencing token), rebuild the
simulation by replaying the command log, and hand it to the process's
`Scheduler`.  The scheduler, one thread, then loops over all its runs:

  1. renew every lease in one Redis call (which also says which runs are
     watched); stop runs nobody has watched for IDLE_S;
  2. pick up wake-ups from the worker's one inbox list ("<run> cmd", "ctl",
     "step", "view"): new commands are stamped with the current simulated
     time *before* they are applied (the log is the write-ahead log);
  3. for each watched, running run whose frame is due: advance the
     simulation to where the wall clock says (elapsed x speed) and publish
     the batch of events as one frame, under the fence;
  4. otherwise block on the inbox until the next frame or renewal is due.

A run nobody watches costs nothing: its clock stands still (it resumes where
it was when a viewer comes back) and nothing is rendered.  When Redis goes
away the loop backs off and retries; when it is back (empty) the scheduler
takes its leases again with fencing tokens above the old ones (the fence
counter is seeded from the database) and carries on from memory.  If the
worker dies, the lease expires; a daphne process with viewers queues the run
again; the new owner replays the log up to the last published position.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time

import redis
from django.conf import settings
from django.db import close_old_connections, transaction

from simulations import get_lab
from simulations.kernel import replay

from . import keys, wire
from .frames import FrameBuilder, node_actions
from .models import Command, Run

log = logging.getLogger(__name__)

# Set when the worker is asked to shut down: the scheduler hands its runs back
# at once (releasing the leases) so another worker takes over without waiting.
SHUTDOWN = threading.Event()
STATS_S = float(os.environ.get("PATTERN_LAB_STATS_S", "60"))  # how often the loop logs what it carries
CHECKPOINT_S = 5.0
# Runs replayed at the same time in one worker process: few, so that the
# loop (one thread among many, all under one GIL) keeps its share.
START_SLOTS = 2  # how often a live run's simulated time is saved in the database
RENDER_BUDGET_S = 0.02  # frames rendered in one go before leases and the inbox are looked at again
# A run counts as unwatched once its watched key has been missing this long
# (a reloading page, or Redis restarting, must not pause the clock).
UNWATCHED_AFTER_S = 1.5
CLOCK_FRAME_S = 1.0  # a running, watched run sends a frame at least this often
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)


class LeaseLost(Exception):
    pass


class Actor:
    """One live run inside a scheduler: the simulation, its clock, its frames."""

    def __init__(self, run_id: str, token: int, sched: Scheduler):
        self.run_id = run_id
        self.token = token
        self.sched = sched
        self.r = sched.r
        self.frame_s = sched.frame_s
        self.watched = True
        # The first frame is a delta: replayed to the last published position,
        # the run has the same seq as the previous owner's last frame, so
        # viewers see the takeover's events follow on as if nothing happened.
        self.behind = False
        self.last_seen = time.monotonic()
        self.next_frame = 0.0
        self.published = 0.0
        self.force_next = False

    # -- start (in the Celery task's thread) ---------------------------------------------
    def start(self) -> None:
        run = Run.objects.get(id=self.run_id)
        # Claim the run in the database too: commands are stamped only under this fence.
        if not Run.objects.filter(id=run.id, fence__lt=self.token).update(fence=self.token, status=Run.LIVE):
            raise LeaseLost(self.run_id)
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
        self.r.delete(keys.steps(run.id))  # steps asked for before this actor existed are stale
        self.anchor()
        self.load_scheduled()
        self.apply_pending()
        self.flush(force=True)
        self.saved_t = self.lab.now
        log.info("run %s: actor %s took over at t=%.0f seq=%d after %d commands",
                 run.id, self.token, self.lab.now, self.lab.seq, len(applied))

    # -- clock ---------------------------------------------------------------------------
    def anchor(self) -> None:
        """Tie simulated time to the wall clock from here on."""
        self.wall0, self.sim0 = time.monotonic(), self.lab.now

    @property
    def running(self) -> bool:
        return self.watched and not self.frozen

    def target(self) -> float:
        if not self.running:
            return self.lab.now
        return max(self.lab.now, float(int(self.sim0 + (time.monotonic() - self.wall0) * 1000 * self.speed)))

    def advance(self) -> None:
        """Run the simulation up to now, stopping exactly at each scripted
        command's due time to apply it."""
        target = self.target()
        while self.scheduled and self.scheduled[0].due <= target:
            cmd = self.scheduled.pop(0)
            self.lab.run_until(cmd.due)
            self.apply([cmd])
        self.lab.run_until(target)

    def step(self) -> None:
        """While frozen: exactly one thing happens (the next due event, or the
        next scripted command), and it is drawn."""
        due = self.lab.next_event_time()
        if self.scheduled and (due is None or self.scheduled[0].due <= due):
            cmd = self.scheduled.pop(0)
            self.lab.run_until(cmd.due)
            self.apply([cmd])
        else:
            self.lab.step()
        self.flush(force=True)

    # -- wake-ups (scheduler thread) --------------------------------------------------------
    def on_wake(self, signals: set) -> None:
        if "view" in signals and self.r.exists(keys.watched(self.run_id)):
            self.set_watched(True)  # (leaving is noticed by the lease renewals)
        if "ctl" in signals:
            run = Run.objects.only("speed", "frozen", "fence", "watch").get(id=self.run_id)
            if run.fence != self.token:
                raise LeaseLost(self.run_id)
            if run.watch != self.frames.watch:
                self.frames.watch = run.watch
                self.flush(force=True)
            if (run.speed, run.frozen) != (self.speed, self.frozen):
                self.advance()  # up to now at the old speed, then the new one from here
                self.speed, self.frozen = run.speed, run.frozen
                self.anchor()
                self.flush(force=True)
        if "step" in signals:
            steps = int(self.r.getdel(keys.steps(self.run_id)) or 0)
            for _ in range(min(steps, 50) if self.frozen else 0):
                self.step()
        if "cmd" in signals:
            self.advance()
            self.apply_pending()

    def set_watched(self, watched: bool) -> None:
        if watched == self.watched:
            if watched:
                self.last_seen = time.monotonic()
            return
        # Nothing is rendered here (many viewers may come or go at once): a
        # returning viewer's full frame is rendered by the loop, within its
        # budget, as the run's next frame.
        if watched:
            self.watched = True
            self.last_seen = time.monotonic()
            self.anchor()  # the clock stood still while nobody watched
            self.behind = self.force_next = True
            self.next_frame = 0.0
        else:
            self.watched = False  # the clock stops where the last frame left it
            self.last_seen = time.monotonic()

    def tick(self, now: float) -> None:
        """A frame is due: advance to now and publish what happened (and at
        least once a second the clock, so a slow run is seen moving)."""
        self.advance()
        self.flush(force=self.force_next or now - self.published > CLOCK_FRAME_S)
        self.force_next = False
        self.next_frame = now + self.frame_s

    # -- commands ---------------------------------------------------------------------------
    def load_scheduled(self) -> None:
        self.scheduled = list(Command.objects.filter(run_id=self.run_id, t=None)
                              .exclude(due=None).order_by("due", "id"))

    def apply_pending(self) -> None:
        """Apply the learner's new commands now."""
        pending = list(Command.objects.filter(run_id=self.run_id, t=None, due=None).order_by("id"))
        if pending:
            self.apply(pending)

    def apply(self, commands: list) -> None:
        # Finish everything due at this very time first (a step may have
        # stopped between two events of one instant): a replay applies
        # commands after all of their instant's events too.
        self.lab.run_until(self.lab.now)
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

    # -- frames -----------------------------------------------------------------------------
    def flush(self, force: bool = False) -> None:
        events = self.lab.drain()
        if not events and not force:
            return
        if not self.watched and not force:
            # Nobody watches: keep the log, skip rendering (the next viewer
            # gets a full frame, see set_watched()).
            self.frames.remember(events)
            self.behind = True
            return
        clock = {"speed": self.speed, "frozen": self.frozen}
        seq, delta, full = self.frames.build(self.lab, events, clock)
        # After frames were skipped a delta would leave a hole in the log: send the full frame.
        message = full if self.behind else delta
        frame_keys = [keys.lease(self.run_id), keys.full(self.run_id), keys.pos(self.run_id), keys.frames(self.run_id),
                      keys.ok(self.run_id)]
        frame_args = [self.token, wire.pack(seq, message), wire.pack(seq, full), f"{self.lab.now} {seq}", keys.FRAME_TTL_S,
                      "1" if all(c.ok for c in self.lab.checks.values()) else "0"]
        self.behind = False
        self.published = time.monotonic()
        self.sched.stats["frames"] += 1
        batch = self.sched.batch if threading.current_thread() is self.sched else None
        if batch is not None:  # the loop publishes its batch of frames in one round trip
            batch.evalsha(self.sched.publish.sha, len(frame_keys), *frame_keys, *frame_args)
            self.sched.batched.append(self)
        elif not self.sched.publish(keys=frame_keys, args=frame_args):
            raise LeaseLost(self.run_id)

    def stop(self) -> None:
        Run.objects.filter(id=self.run_id, fence=self.token).update(status=Run.IDLE, sim_t=self.lab.now)
        log.info("run %s: idle, stopped at t=%.0f", self.run_id, self.lab.now)


class Scheduler(threading.Thread):
    """The one loop of a worker process that drives all of its live runs."""

    def __init__(self):
        super().__init__(name="run-scheduler", daemon=True)
        cfg = settings.PATTERN_LAB
        self.frame_s = cfg["FRAME_MS"] / 1000
        self.lease_ms = cfg["LEASE_MS"]
        self.idle_s = cfg["IDLE_S"]
        self.r = keys.client()
        self.publish = self.r.register_script(keys.PUBLISH)
        self.renew_all = self.r.register_script(keys.RENEW_ALL)
        self.acquire_script = self.r.register_script(keys.ACQUIRE)
        self.release = self.r.register_script(keys.RELEASE)
        self.wake_script = self.r.register_script(keys.WAKE)
        self.inbox = f"worker:{socket.gethostname()}:{os.getpid()}:inbox"
        self.actors: dict[str, Actor] = {}
        self.arrivals: queue.Queue[Actor] = queue.Queue()
        self.starting: set[str] = set()  # runs being replayed by a task thread right now
        self.lock = threading.Lock()
        # Runs to start (an ordered dict used as an ordered set), the starter
        # threads, and a count of what is waiting for them.
        self.to_start: dict[str, None] = {}
        self.starters: list[threading.Thread] = []
        self.start_wanted = threading.Semaphore(0)
        self.next_renew = 0.0
        self.next_checkpoint = time.monotonic() + CHECKPOINT_S
        self.next_stats = time.monotonic() + STATS_S
        self.stats = {"loops": 0, "ticks": 0, "frames": 0}
        self.batch = None  # a pipeline while the loop renders a batch of frames
        self.batched: list[Actor] = []

    # -- taking a run (Celery task thread) ------------------------------------------------------
    def take(self, run_id: str) -> str:
        """Handle one "drive run X" message, at once; says what was done.

        A run somebody watches goes on this worker's list of runs to start;
        a few starter threads replay them, newest first, checking again that
        somebody still watches.  The message never waits for a replay, so
        after a burst of abandoned runs the backlog drains at message speed
        and a learner who just arrived is started first."""
        with self.lock:
            if run_id in self.actors or run_id in self.to_start or run_id in self.starting:
                return "already driven here"
        if not self.r.exists(keys.watched(run_id)):
            self.r.delete(keys.starting(run_id))  # the next viewer may queue it again
            return "dropped: nobody watches it"
        with self.lock:
            self.to_start[run_id] = None
            if not self.starters:
                self.starters = [threading.Thread(target=self.starter, name=f"run-starter-{i}", daemon=True)
                                 for i in range(START_SLOTS)]
                for t in self.starters:
                    t.start()
        self.start_wanted.release()
        return "to start"

    def starter(self) -> None:
        """Replays runs from this worker's list of runs to start, newest first."""
        while not SHUTDOWN.is_set():
            if not self.start_wanted.acquire(timeout=1):
                continue
            with self.lock:
                if not self.to_start:
                    continue
                run_id = self.to_start.popitem()[0]  # the newest
                self.starting.add(run_id)
            try:
                outcome = self._take(run_id)
                log.debug("run %s: %s", run_id, outcome)
            except Exception:
                log.exception("run %s: could not start", run_id)
            finally:
                with self.lock:
                    self.starting.discard(run_id)
                close_old_connections()

    def _take(self, run_id: str) -> str:
        r = self.r
        # Let the next viewer queue the run again if it is dropped or started.
        _, watched = r.pipeline(transaction=False).delete(keys.starting(run_id)).exists(
            keys.watched(run_id)).execute()
        if not watched:  # the viewer left while the run waited its turn
            return "dropped: nobody watches it"
        return self._start(run_id)

    def _start(self, run_id: str) -> str:
        r = self.r
        row = Run.objects.filter(id=run_id).values_list("fence", flat=True).first()
        if row is None:
            return "dropped: no such run"
        # A longer lease while the log is replayed; the loop shortens it.
        token = self.acquire_script(keys=[keys.lease(run_id), keys.fence(run_id)], args=[row, self.lease_ms * 3])
        if not token:
            return "dropped: another worker drives it"
        actor = Actor(run_id, int(token), self)
        # Who drives the run, written before the log is read: a command stored
        # after this point wakes this worker; one stored before is in the log.
        self.claim_keys(run_id)
        try:
            actor.start()
        except LeaseLost:
            self.release(keys=[keys.lease(run_id)], args=[actor.token])
            return "dropped: lease lost while starting"
        except BaseException:
            self.release(keys=[keys.lease(run_id)], args=[actor.token])
            raise
        self.arrivals.put(actor)
        r.rpush(self.inbox, f"{run_id} new")
        self.ensure_running()
        return "driving"

    def claim_keys(self, *run_ids: str) -> None:
        pipe = self.r.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.set(keys.worker(run_id), os.getpid(), ex=keys.FRAME_TTL_S)
            pipe.set(keys.inbox(run_id), self.inbox, ex=keys.FRAME_TTL_S)
        pipe.execute()

    def ensure_running(self) -> None:
        with self.lock:
            if not self.is_alive() and not SHUTDOWN.is_set():
                self.start()

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> None:
        profile_to = os.environ.get("PATTERN_LAB_PROFILE")  # a file for cProfile's stats of this loop
        if profile_to:
            import cProfile

            cProfile.runctx("self.loop()", globals(), {"self": self}, profile_to)
        else:
            self.loop()

    def loop(self) -> None:
        backoff = 0.0
        while not SHUTDOWN.is_set():
            try:
                self.once()
                if backoff:
                    log.warning("scheduler: Redis is back")
                backoff = 0.0
            except REDIS_ERRORS as err:
                backoff = min(2.0, backoff * 2 or 0.1)
                log.warning("scheduler: Redis unavailable (%s); retrying in %.1fs", err, backoff)
                SHUTDOWN.wait(backoff)
            except Exception:
                log.exception("scheduler: unexpected error")
                SHUTDOWN.wait(0.1)
            finally:
                close_old_connections()
        self.hand_back()

    def once(self) -> None:
        self.adopt_arrivals()
        now = time.monotonic()
        self.stats["loops"] += 1
        if now >= self.next_stats:
            self.report(now)
        if now >= self.next_renew:
            self.renew(now)
        if now >= self.next_checkpoint:
            self.checkpoint()
        self.read_inbox(block=0)
        # Frames due, most overdue first, within a time budget (under load every
        # run's frames simply come less often; each still shows the present).
        now = time.monotonic()
        due = sorted((a for a in self.actors.values() if a.running and a.next_frame <= now),
                     key=lambda a: a.next_frame)
        self.batch, self.batched = self.r.pipeline(transaction=False), []
        try:
            for actor in due:
                self.guard(actor, actor.tick, now)
                self.stats["ticks"] += 1
                if time.monotonic() - now > RENDER_BUDGET_S:
                    break
        finally:
            batch, self.batch = self.batch, None
        if self.batched:
            self.publish_batch(batch)
        if due:
            return
        next_frame = min((a.next_frame for a in self.actors.values() if a.running), default=now + 1)
        wait = min(next_frame, self.next_renew) - time.monotonic()
        if wait > 0.002:
            self.read_inbox(block=wait)

    def publish_batch(self, batch) -> None:
        """The frames rendered in one pass, published in one round trip (each
        still checks its own fencing token inside Redis)."""
        results = batch.execute(raise_on_error=False)
        for actor, ok in zip(self.batched, results):
            if ok == 1:
                continue
            actor.behind = True  # this frame is lost: the next one is a full one
            if isinstance(ok, redis.exceptions.NoScriptError):  # Redis restarted: load the script again
                self.r.script_load(keys.PUBLISH)
            elif isinstance(ok, Exception):
                raise ok
            else:
                self.guard(actor, self.lease_lost, actor)
        self.batched = []

    @staticmethod
    def lease_lost(actor: Actor) -> None:
        raise LeaseLost(actor.run_id)

    def report(self, now: float) -> None:
        """A line in the worker's log every minute: what this loop carries."""
        span = now - self.next_stats + STATS_S
        self.next_stats = now + STATS_S
        stats, self.stats = self.stats, {"loops": 0, "ticks": 0, "frames": 0}
        if self.actors:
            watched = sum(1 for a in self.actors.values() if a.watched)
            log.info("scheduler: %d runs (%d watched), %.0f frames/s, %.0f ticks/s, %.0f loops/s",
                     len(self.actors), watched, stats["frames"] / span, stats["ticks"] / span, stats["loops"] / span)

    def guard(self, actor: Actor, fn, *args) -> None:
        """Run one actor's step; drop the actor if it lost its lease."""
        try:
            fn(*args)
        except LeaseLost:
            if not self.r.exists(keys.lease(actor.run_id)):
                # Expired or wiped (a Redis restart), not taken: take it again.
                self.reacquire([actor])
                return
            log.warning("run %s: lease lost, another worker owns it now", actor.run_id)
            self.actors.pop(actor.run_id, None)
        except Run.DoesNotExist:
            log.warning("run %s: no such run", actor.run_id)
            self.actors.pop(actor.run_id, None)
            self.release(keys=[keys.lease(actor.run_id)], args=[actor.token])
        except REDIS_ERRORS:
            raise
        except Exception:
            # One broken run must not stall the others: give it up (a viewer
            # that is still there queues it again, replayed from its log).
            log.exception("run %s: failed; handing it back", actor.run_id)
            self.actors.pop(actor.run_id, None)
            self.release(keys=[keys.lease(actor.run_id)], args=[actor.token])

    def adopt_arrivals(self) -> None:
        while True:
            try:
                actor = self.arrivals.get_nowait()
            except queue.Empty:
                return
            self.actors[actor.run_id] = actor
            # Anything sent while it was starting: look at all of it once.
            self.guard(actor, actor.on_wake, {"view", "ctl", "step", "cmd"})

    def read_inbox(self, block: float) -> None:
        items = []
        if block:
            reply = self.r.blpop([self.inbox], timeout=max(0.01, round(block, 3)))
            if not reply:
                return
            items.append(reply[1])  # the first wake-up counts too
        items += self.r.lpop(self.inbox, 500) or []
        if not items:
            return
        signals: dict[str, set] = {}
        for item in items:
            run_id, _, what = item.decode().partition(" ")
            signals.setdefault(run_id, set()).add(what)
        self.adopt_arrivals()
        for run_id, what in signals.items():
            actor = self.actors.get(run_id)
            if actor is not None:
                self.guard(actor, actor.on_wake, what)

    def renew(self, now: float) -> None:
        """Every lease in one call; it also says which runs are watched."""
        self.next_renew = now + self.lease_ms / 4000
        actors = list(self.actors.values())
        if not actors:
            return
        key_list = [k for a in actors for k in (keys.lease(a.run_id), keys.watched(a.run_id))]
        states = self.renew_all(keys=key_list, args=[self.lease_ms, *[a.token for a in actors]])
        vanished = []
        for actor, state in zip(actors, states):
            if state == 0:
                log.warning("run %s: lease lost, another worker owns it now", actor.run_id)
                self.actors.pop(actor.run_id, None)
            elif state == -1:
                vanished.append(actor)
            elif state == 2 or now - actor.last_seen > UNWATCHED_AFTER_S:
                self.guard(actor, actor.set_watched, state == 2)
        if vanished:
            self.reacquire(vanished)
        for actor in list(self.actors.values()):
            if not actor.watched and now - actor.last_seen > self.idle_s:
                self.guard(actor, self.stop, actor)

    def reacquire(self, actors: list[Actor]) -> None:
        """Leases that vanished (Redis restarted empty, or this loop stalled
        past the TTL): take them again with newer tokens, unless someone else
        has.  In one Redis call and one transaction, and nothing rendered, so
        that many runs come back at once without stalling the loop again."""
        pipe = self.r.pipeline(transaction=False)
        for a in actors:
            self.acquire_script(keys=[keys.lease(a.run_id), keys.fence(a.run_id)],
                                args=[a.token, self.lease_ms, a.token], client=pipe)
        tokens = pipe.execute()
        kept, refused = [], []
        with transaction.atomic():
            for a, token in zip(actors, tokens):
                if token and Run.objects.filter(id=a.run_id, fence=a.token).update(fence=int(token)):
                    kept.append((a, int(token)))
                else:
                    refused.append((a, token))
        for a, token in refused:
            log.warning("run %s: lease lost, another worker owns it now", a.run_id)
            self.actors.pop(a.run_id, None)
            if token:
                self.release(keys=[keys.lease(a.run_id)], args=[token])
        for a, token in kept:
            a.token = token
        self.claim_keys(*(a.run_id for a, _ in kept))
        for a, _ in kept:  # commands or clock changes whose wake-up was lost meanwhile
            self.guard(a, a.on_wake, {"cmd", "ctl"})
        if kept:
            log.warning("took %d leases again (Redis restarted, or this worker stalled)", len(kept))

    def checkpoint(self) -> None:
        """Save each running run's simulated time, so a resume after losing
        Redis and this worker does not start from further back."""
        self.next_checkpoint = time.monotonic() + CHECKPOINT_S
        moved = [a for a in self.actors.values() if a.lab.now != a.saved_t]
        if not moved:
            return
        with transaction.atomic():
            for a in moved:
                Run.objects.filter(id=a.run_id, fence=a.token).update(sim_t=a.lab.now)
                a.saved_t = a.lab.now

    def stop(self, actor: Actor) -> None:
        actor.stop()
        self.actors.pop(actor.run_id, None)
        self.release(keys=[keys.lease(actor.run_id)], args=[actor.token])

    def hand_back(self) -> None:
        """Shutting down: give every run back at once (one transaction, one
        Redis call), so that another worker can take them without waiting."""
        actors = list(self.actors.values())
        self.actors.clear()
        try:
            with transaction.atomic():
                for a in actors:
                    Run.objects.filter(id=a.run_id, fence=a.token).update(sim_t=a.lab.now)
            pipe = self.r.pipeline(transaction=False)
            for a in actors:
                self.release(keys=[keys.lease(a.run_id)], args=[a.token], client=pipe)
            pipe.execute()
        except Exception:
            log.exception("could not hand back %d runs (their leases will expire)", len(actors))
        close_old_connections()

    def wake(self) -> None:
        try:
            self.r.rpush(self.inbox, "- stop")
        except REDIS_ERRORS:
            pass


_scheduler: Scheduler | None = None
_scheduler_lock = threading.Lock()


def scheduler() -> Scheduler:
    """The process's scheduler (created on the first run it is given)."""
    global _scheduler
    with _scheduler_lock:
        if _scheduler is None:
            _scheduler = Scheduler()
        return _scheduler


def shutdown(timeout: float = 4.0) -> None:
    SHUTDOWN.set()
    if _scheduler is not None and _scheduler.is_alive():
        _scheduler.wake()
        _scheduler.join(timeout)
