"""Scatter-gather: transcode one video into five resolutions at once.

A `coordinator` receives a job: make 240p, 360p, 480p, 720p and 1080p
versions of a video.  A bigger picture costs more work, so the five tasks
take very different times (1080p has about twenty times the pixels of 240p).

Sequential (one transcoding service does everything):

    for each resolution: send TASK to w1, wait for its RESULT
    job time ~ the sum of all tasks

Scatter-gather:

    scatter: send every TASK at once, largest first, each to the worker with
             the least work queued (with five workers: one task each)
    process: every worker transcodes its task and sends RESULT(link)
    gather:  collect the links; when all five are in, write the manifest
    job time ~ the longest task + the overhead of scattering and gathering

So the speed-up is bounded by the longest task: the gather always waits for
the slowest worker (a "straggler").  Two things keep a job alive anyway:

  * failure detection: every worker sends a STATUS every 300 ms naming the
    tasks it holds (Dean and Ghemawat's master pings its workers and records
    which worker has each task).  A worker holding tasks that stays silent
    for 1 s is suspected, and its tasks go to another worker (reassignment);
    so does a task a live worker has not named for 1 s: it never arrived, or
    its RESULT was lost (Hadoop's JobTracker likewise expires a task never
    seen in its tracker's status reports);
  * a gather timeout: at the deadline, the coordinator answers with what it
    has, marked partial, naming the missing resolutions (the aggregator's
    completion condition in Hohpe and Woolf's Enterprise Integration Patterns).

Optionally, like MapReduce's backup tasks (Dean and Ghemawat, 2004), a task
running much longer than expected gets a second copy on an idle worker.  The
first result wins: the coordinator cancels the other copies it handed out
(except on workers it suspects: it believes them dead).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .kernel import FAULTS, Arg, Lab, Link, Node, Param, SimError, action, fmt_ms, observe, on

# The job: each resolution's pixel count sets its cost (100 ms + 1 ms per 1000 pixels).
RESOLUTIONS = (("240p", 426 * 240), ("360p", 640 * 360), ("480p", 854 * 480),
               ("720p", 1280 * 720), ("1080p", 1920 * 1080))
COST = {res: 100 + pixels // 1000 for res, pixels in RESOLUTIONS}
NOISE = 0.1  # each task's real cost varies by up to +-10% from its estimate
STATUS_EVERY = 300  # ms between a worker's status reports
SUSPECT_AFTER = 1000  # ms before the coordinator suspects a silent busy worker, or a task a worker does not name
WATCH_EVERY = 100  # ms between the coordinator's checks of its job
MERGE_MS = 50  # the gather step: writing the manifest of links
BACKUP_AFTER = 1.5  # a task running 1.5x its estimate gets a backup copy
MAX_LATENCY = 12  # the network's highest one-way latency (see LATENCY)
MAX_WORKERS = 8
FIRST_JOB_AT = 300  # ms: the first job starts by itself
# The time model's overhead: a scatter and a gather per round of tasks, the manifest, some slack.
OVERHEAD = {"scattered": MERGE_MS + 2 * MAX_LATENCY + 20,
            "sequential": MERGE_MS + len(RESOLUTIONS) * 2 * MAX_LATENCY + 20}


@dataclass
class Task:  # one resolution of the job, as the coordinator tracks it
    cost: float  # what it really takes: its estimate COST[res], +-NOISE
    worker: str | None = None  # who must do it (None: nobody alive holds it)
    named: float = 0.0  # when that worker last named it in a STATUS (or was sent it)
    missed_by: set[str] = field(default_factory=set)  # live workers sent it that never named it
    copies: set[str] = field(default_factory=set)  # the workers given a copy, until it is gathered
    running_on: str | None = None  # the worker that reported running it ...
    started: float | None = None  # ... and since when
    backup: str | None = None  # the worker given a backup copy
    done_by: str | None = None  # whose result was gathered


@dataclass
class Job:  # the coordinator's job table: on its disk, it survives a crash
    id: int
    mode: str  # scattered | sequential
    start: float
    deadline: float | None  # the gather timeout (None: wait for everything)
    tasks: dict[str, Task]  # resolution -> task, smallest first
    results: dict[str, str] = field(default_factory=dict)  # resolution -> link
    status: str = "running"  # running | complete | partial
    end: float | None = None

    def missing(self) -> list[str]:
        return [res for res in self.tasks if res not in self.results]

    def held_by(self, worker: str) -> list[str]:
        return [res for res in self.missing() if self.tasks[res].worker == worker]


@dataclass
class Work:  # a task as a worker holds it (the TASK message)
    job: int
    res: str
    cost: float
    copy: str  # "", "redo" or "backup"


class Worker(Node):
    """A transcoder: works through its queue one task at a time."""

    def boot(self) -> None:
        self.role = "worker"
        self.queue: list[Work] = []  # tasks waiting
        self.current: Work | None = None  # the task being transcoded
        self.factor = getattr(self, "factor", 1)  # a straggler's slowness survives restarts
        self.every(STATUS_EVERY, self.report_status, key="status")  # busy or idle
        if self.restarted:
            self.send("coordinator", "HELLO")  # back in service, holding nothing

    def view(self) -> dict:
        if self.status == "down":
            return {"label": "down"}
        parts = [self.current.res if self.current else "idle"] + ([f"+{len(self.queue)}"] if self.queue else [])
        parts += [f"×{self.factor} slow"] if self.factor > 1 else []
        return {"label": " · ".join(parts)}

    def tasks(self) -> list[Work]:
        return ([self.current] if self.current else []) + self.queue

    def has(self, job: int, res: str) -> bool:  # running or queued
        return any((t.job, t.res) == (job, res) for t in self.tasks())

    @on("TASK")
    def take(self, msg) -> None:
        work = Work(**msg.body)
        if self.has(work.job, work.res):
            return  # already have it (a restarted coordinator sends its tasks again)
        self.queue.append(work)
        if self.current is None:
            self.start_next()

    @on("CANCEL")
    def drop(self, msg) -> None:
        job, res = msg.body["job"], msg.body["res"]
        self.queue = [t for t in self.queue if (t.job, t.res) != (job, res)]
        if self.current and (self.current.job, self.current.res) == (job, res):
            self.cancel("done")
            self.lab.emit("task-cancelled", worker=self.id, job=job, res=res)
            self.start_next()

    def start_next(self) -> None:
        if not self.queue:
            self.current = None
            return
        task = self.current = self.queue.pop(0)
        self.lab.emit("task-start", worker=self.id, job=task.job, res=task.res, copy=task.copy)
        self.after(task.cost * self.factor, self.done, key="done")
        self.report_status()  # at once: a backup copy is timed from the start

    def report_status(self) -> None:
        """The heartbeat: the task being transcoded, and every task held."""
        running = [self.current.job, self.current.res] if self.current else None
        self.send("coordinator", "STATUS", running=running, holds=[[t.job, t.res] for t in self.tasks()])

    def done(self) -> None:
        task = self.current
        self.lab.emit("task-done", worker=self.id, job=task.job, res=task.res)
        self.send("coordinator", "RESULT", job=task.job, res=task.res, link=f"cdn/video-{task.job}/{task.res}.mp4")
        self.start_next()

    def crash(self) -> None:
        # The task under way dies with the worker, and so do those queued behind it.
        if self.current:
            self.lab.emit("task-lost", worker=self.id, job=self.current.job, res=self.current.res)
        self.lab.witness("worker-lost", worker=self.id, held=self.tasks())
        super().crash()


class Coordinator(Node):
    """Scatters the tasks, watches the workers, gathers the results."""

    def boot(self) -> None:
        self.role = "coordinator"
        self.heard: dict[str, float] = {}  # worker -> when it last spoke (or was given work)
        self.suspects: list[str] = []  # workers believed dead
        self.every(WATCH_EVERY, self.watch, key="watch")
        if self.restarted and self.job and self.job.status == "running":
            # The job table is on disk: send again every task not gathered (all in: the merge starts again).
            self.lab.emit("resume-job", job=self.job.id, missing=self.job.missing())
            self.scatter(self.job, self.job.missing())
            if not self.job.missing():
                self.after(MERGE_MS, self.finish, self.job, "complete", key="merge")

    @property
    def job(self) -> Job | None:
        return self.disk.get("job")

    def view(self) -> dict:
        job = self.job
        label = f"job {job.id}: {len(job.results)}/{len(RESOLUTIONS)} {job.status}" if job else "idle"
        return {"label": "down" if self.status == "down" else label}

    # -- scatter -------------------------------------------------------------------------
    def start_job(self, job: Job) -> None:
        self.disk["job"] = job
        self.suspects = []  # a new job gives every worker a fresh chance
        self.scatter(job, job.missing())

    def live_workers(self) -> list[str]:
        return [w for w in self.lab.worker_ids() if w not in self.suspects]

    def candidates(self, task: Task) -> list[str]:
        """Live workers that did not already miss the task, unless all did (then all of them once more).
        Hadoop's JobTracker likewise avoids giving a task again to a machine where it failed."""
        live = self.live_workers()
        if all(w in task.missed_by for w in live):
            task.missed_by.clear()
        return [w for w in live if w not in task.missed_by]

    def scatter(self, job: Job, tasks: list[str], copy: str = "") -> None:
        """Send tasks that nobody alive holds: largest first, each to the worker with the least work queued
        (sequential: only the next one in turn)."""
        for res in tasks:
            job.tasks[res].worker = None
        if job.mode == "sequential":
            return self.dispatch_next(job)
        for res in sorted(tasks, key=lambda r: -COST[r]):
            workers = self.candidates(job.tasks[res])
            if not workers:
                self.lab.emit("stuck", job=job.id, res=res, why="no live worker")
                continue
            load = {w: sum(COST[r] for r in job.held_by(w)) for w in workers}
            self.assign(job, res, min(workers, key=load.get), copy)  # ties: the first in id order

    def dispatch_next(self, job: Job) -> None:
        """Sequential: one task at a time, in order, to the first live worker."""
        missing = job.missing()
        if not missing or any(job.tasks[res].worker for res in missing):
            return  # all gathered, or one is already out
        workers = self.candidates(job.tasks[missing[0]])
        if workers:
            self.assign(job, missing[0], workers[0], "")

    def assign(self, job: Job, res: str, worker: str, copy: str) -> None:
        task = job.tasks[res]
        if copy != "backup":
            task.worker, task.named = worker, self.now
        task.copies.add(worker)
        self.heard[worker] = self.now  # its silence is measured from now on
        if copy:
            self.lab.emit("reassign" if copy == "redo" else "backup", job=job.id, res=res, to=worker)
            self.lab.count("reassigned" if copy == "redo" else "backups")
        self.send(worker, "TASK", job=job.id, res=res, cost=task.cost, copy=copy)

    def cancel_copies(self, job: Job, res: str, but: str | None = None) -> None:
        """Tell the workers given a copy of the task to drop it (a suspect would not hear it)."""
        task = job.tasks[res]
        for worker in self.live_workers():
            if worker in task.copies and worker != but:
                self.send(worker, "CANCEL", job=job.id, res=res)
        task.copies.clear()

    # -- process: the workers report -------------------------------------------------------
    def on_message(self, msg) -> None:
        self.heard[msg.src] = self.now  # any message shows its sender is alive
        if msg.src in self.suspects:
            self.suspects.remove(msg.src)
            self.lab.emit("unsuspect", worker=msg.src)
        super().on_message(msg)

    @on("HELLO")
    def hello(self, msg) -> None:
        """A worker started (or restarted): it holds no copy of any task."""
        for task in self.job.tasks.values() if self.job else ():
            task.copies.discard(msg.src)

    @on("STATUS")
    def status_report(self, msg) -> None:
        job = self.job
        for job_id, res in msg.body["holds"] if job else ():
            task = job.tasks[res]
            if job_id == job.id and task.worker == msg.src:
                task.named = self.now
                if [job_id, res] == msg.body["running"] and task.running_on != msg.src:
                    task.running_on, task.started = msg.src, round(self.now, 3)

    # -- gather ------------------------------------------------------------------------------
    @on("RESULT")
    def gather(self, msg) -> None:
        job, res, src = self.job, msg.body["res"], msg.src
        if not job or msg.body["job"] != job.id or job.status != "running":
            self.lab.emit("late-result", job=msg.body["job"], res=res, worker=src)
            return
        if res in job.results:
            return  # a second copy finished too: the first one won
        job.results[res] = msg.body["link"]
        job.tasks[res].done_by = src
        self.lab.emit("gathered", job=job.id, res=res, worker=src, have=len(job.results))
        self.cancel_copies(job, res, but=src)  # the other copies are not needed any more
        if not job.missing():
            self.after(MERGE_MS, self.finish, job, "complete", key="merge")  # all in: write the manifest
        elif job.mode == "sequential":
            self.dispatch_next(job)

    def finish(self, job: Job, status: str) -> None:
        job.status, job.end = status, round(self.now, 3)
        self.lab.emit("job-done", job=job.id, status=status, ms=round(job.end - job.start, 1), missing=job.missing())

    # -- the coordinator's watch: gather timeout, failure detection, backup tasks ---------------
    def watch(self) -> None:
        job, params = self.job, self.lab.params
        if not job or job.status != "running":
            return
        # The gather timeout: answer with what we have, and stop the work nobody will wait for.
        if job.deadline is not None and self.now >= job.deadline:
            self.cancel("merge")
            for res in job.missing():
                self.cancel_copies(job, res)
            return self.finish(job, "partial" if job.missing() else "complete")
        # Failure detection: a worker holding tasks that has been silent too long.
        for worker in self.live_workers():
            held = job.held_by(worker)
            if held and self.now - self.heard[worker] > SUSPECT_AFTER:
                self.suspects.append(worker)
                self.lab.emit("suspect", worker=worker, holds=held)
                if params["reassign"]:
                    self.scatter(job, held, "redo")
        # Lost messages: a task its live worker has not named for as long never reached it (or its RESULT was lost).
        for worker in self.live_workers():
            unnamed = [res for res in job.held_by(worker) if self.now - job.tasks[res].named > SUSPECT_AFTER]
            if params["reassign"] and unnamed:
                self.lab.emit("not-held", worker=worker, tasks=unnamed)
                for res in unnamed:
                    job.tasks[res].missed_by.add(worker)
                self.scatter(job, unnamed, "redo")
        unassigned = [r for r in job.missing() if job.tasks[r].worker is None]
        if params["reassign"] and unassigned and self.live_workers():  # left so when nobody was alive
            self.scatter(job, unassigned, "redo")
        # Backup tasks: a copy of a task that runs far beyond its estimate, on an idle worker.
        if params["backups"]:
            busy = {w for task in job.tasks.values() for w in task.copies}
            idle = [w for w in self.live_workers() if w not in busy and not job.held_by(w)]
            for res in job.missing():
                task = job.tasks[res]
                if idle and task.started is not None and task.backup is None and \
                        self.now - task.started > BACKUP_AFTER * COST[res]:
                    task.backup = idle[0]
                    self.assign(job, res, idle.pop(0), "backup")


@dataclass
class Loss:  # a task that died with a worker (what redone-elsewhere follows)
    res: str
    worker: str
    at: float
    waiting_since: float = 0.0  # nobody could redo it until then: its clock starts again
    redone_by: str | None = None

    def overdue(self, now: float) -> bool:
        """Time enough to notice the silence and redo the task has passed (with a second to spare)."""
        return now - max(self.at, self.waiting_since) > SUSPECT_AFTER + 1000


class ScatterGather(Lab):
    slug = "scatter-gather"
    title = "Scatter-gather"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    INVARIANTS = {"redone-elsewhere": ("reassign=on",)}
    PARAMS = (
        Param("mode", "scattered", "Transcode the five resolutions one after another on w1, or all at once.",
              choices=("scattered", "sequential")),
        Param("workers", 5, "Transcoding workers at the start (w1..wN).", lo=1, hi=MAX_WORKERS),
        Param("gather_timeout", 0, "Give up waiting after this many ms and return a partial result (0 = wait "
              "for everything).", lo=0, hi=60_000),
        Param("reassign", True, "Detect silent workers and tasks lost on the way, and reassign those tasks."),
        Param("backups", False, "Start a backup copy of a task that runs 1.5x longer than expected "
              "(MapReduce's backup tasks)."),
    )
    FAULTS = tuple(f for f in FAULTS if f != "slow")  # a slow worker is a straggler (see the straggle action)
    LATENCY = (4.0, float(MAX_LATENCY))

    def setup(self) -> None:
        self.jobs: list[dict] = []  # finished jobs, newest last (a short history)
        self.bars: list[dict] = []  # the Gantt chart of the current job
        self.lost: list[Loss] = []  # tasks that died with a worker in the current job
        self.paused: list[str] = []  # workers paused during the current job (their work stopped)
        self.model, self.plan_ms = "", 0.0  # the current job's time model, and what its compute should take
        self.gather_timeout = float(self.params["gather_timeout"])
        self.metrics.update({"jobs": 0, "reassigned": 0, "backups": 0, "last_job_ms": None, "last_sequential_ms": None,
                             "last_scattered_ms": None, "speedup": None, "speedup_basis": None})
        self.add_node(Coordinator(self, "coordinator"))
        for i in range(1, self.params["workers"] + 1):
            self.add_node(Worker(self, f"w{i}"))
        self.add_check("time-model", "A scattered job takes about its longest task plus overhead (the busiest "
                       "worker's queue when there are fewer workers than tasks); a sequential one about the sum.")
        self.add_check("redone-elsewhere", "A task lost with a crashed worker is redone on another worker and the job "
                       "still completes (while no worker is up and connected to the coordinator, it waits for one).")
        self.add_check("result-complete", "The latest job gathered every resolution; a job cut short by the "
                       "gather timeout is marked partial and names what is missing.")
        self.sim.after(FIRST_JOB_AT, self.start_job, self.params["mode"])
        self.every(WATCH_EVERY, self.audit)

    def worker_ids(self) -> list[str]:
        return [n for n in self.nodes if n != "coordinator"]

    @property
    def coordinator(self) -> Coordinator:
        return self.nodes["coordinator"]

    # -- jobs --------------------------------------------------------------------------
    def start_job(self, mode: str) -> None:
        coord = self.coordinator
        if not coord.up:
            self.emit("job-refused", why=f"the coordinator is {coord.status}")
            return
        self.count("jobs")
        number = self.metrics["jobs"]
        tasks = {res: Task(round(COST[res] * (1 + self.rng.uniform(-NOISE, NOISE)), 1)) for res in COST}
        deadline = self.now + self.gather_timeout if self.gather_timeout else None
        job = Job(number, mode, round(self.now, 3), deadline, tasks)
        self.bars, self.lost, self.paused = [], [], []
        for name in self.checks:
            self.holds(name, f"job {number} running")
        self.emit("job", job=number, mode=mode, deadline=deadline)
        coord.start_job(job)
        self.model, self.plan_ms = self.time_model(job)

    def time_model(self, job: Job) -> tuple[str, float]:
        """What the job's compute should take: the sum of its tasks, or the busiest worker's queue (all sent)."""
        if job.mode == "sequential":
            return "sum of tasks", round(sum(t.cost for t in job.tasks.values()), 1)
        queues = [sum(t.cost for t in job.tasks.values() if t.worker == w) for w in self.worker_ids()]
        return "busiest worker" if len(queues) < len(RESOLUTIONS) else "longest task", round(max(queues), 1)

    # -- what the workers do (the Gantt chart) -------------------------------------------
    @observe("task-start")
    def bar_starts(self, e: dict) -> None:
        if self.coordinator.job.id == e["job"]:  # not a task left over from an earlier job
            self.bars.append({**e, "start": e["t"], "end": None, "state": "running"})  # its worker, res and copy
            del self.bars[:-24]

    @observe("task-done", "task-cancelled", "task-lost")
    def bar_ends(self, e: dict) -> None:
        for bar in self.bars:
            if bar["worker"] == e["worker"] and bar["res"] == e["res"] and bar["end"] is None:
                bar["end"], bar["state"] = e["t"], e["kind"].removeprefix("task-")

    @observe("late-result")
    def bar_late(self, e: dict) -> None:
        mine = [b for b in self.bars if b["worker"] == e["worker"] and b["res"] == e["res"]]
        if mine:
            mine[-1]["state"] = "late"  # finished after the gather stopped waiting

    @observe("worker-lost")
    def worker_lost(self, fact: dict) -> None:
        """A worker crashed: the current job's tasks it held (but for backup copies) are lost."""
        job = self.coordinator.job
        for task in fact["held"] if job and job.status == "running" else ():
            if task.job == job.id and task.res not in job.results and task.copy != "backup":
                self.lost.append(Loss(task.res, fact["worker"], round(self.now, 3)))

    @observe("pause")
    def worker_paused(self, e: dict) -> None:
        self.paused.append(e["node"])  # its work stopped (the time model names it)

    # -- the checks ------------------------------------------------------------------------
    @observe("job-done")
    def job_done(self, e: dict) -> None:
        job, status, elapsed, missing = self.coordinator.job, e["status"], e["ms"], e["missing"]
        for bar in self.bars:
            if bar["state"] == "running" and status == "partial":
                bar["state"] = "abandoned"
        self.metrics["last_job_ms"] = elapsed
        if status == "complete":
            self.metrics[f"last_{job.mode}_ms"] = elapsed
            self.holds("result-complete", f"job {job.id}: all {len(RESOLUTIONS)} resolutions in {fmt_ms(elapsed)}")
            detail = (f"job {job.id} ({job.mode}): {fmt_ms(elapsed)}; {self.model} {fmt_ms(self.plan_ms)} "
                      f"+ overhead up to {OVERHEAD[job.mode]}ms")
            if self.plan_ms <= elapsed <= self.plan_ms + OVERHEAD[job.mode]:
                self.holds("time-model", detail)
            else:
                self.fail("time-model", detail + f": {fmt_ms(elapsed - self.plan_ms)} late ({self.blame()})")
        else:
            self.holds("time-model", f"job {job.id} was cut short by the gather timeout: no full time to compare")
            self.fail("result-complete", f"job {job.id} partial after {fmt_ms(elapsed)}: missing {', '.join(missing)}")
        for loss in self.lost:
            if loss.res in job.results:
                loss.redone_by = job.tasks[loss.res].done_by  # maybe by the worker it died with, restarted
            elif loss.overdue(self.now):
                self.fail("redone-elsewhere", f"{loss.res} died with {loss.worker} and was never redone: "
                          f"job {job.id} ended without it")
        # Neither redone nor overdue: the gather timeout ended the job before the loss could be noticed, or while
        # another worker redid the task.  A partial result (result-complete says so), not a task nobody would redo.
        self.note("redone-elsewhere", "; ".join(
            f"{x.res} lost with {x.worker}, " + (f"redone on {x.redone_by}" if x.redone_by else
                                                 "the gather timeout ended the job before it was redone")
            for x in self.lost) or f"no task was lost in job {job.id}")
        work = round(sum(t.cost for t in job.tasks.values()), 1)
        seq, scat = self.metrics["last_sequential_ms"], self.metrics["last_scattered_ms"]
        if seq and scat:  # both modes measured: the real speed-up
            self.metrics["speedup"], self.metrics["speedup_basis"] = round(seq / scat, 2), "measured"
        elif status == "complete" and job.mode == "scattered":  # the work done one after another / time taken
            self.metrics["speedup"], self.metrics["speedup_basis"] = round(work / elapsed, 2), "sum of tasks / job time"
        self.jobs.append({"id": job.id, "mode": job.mode, "status": status, "elapsed": elapsed, "missing": missing})
        del self.jobs[:-6]

    def blame(self) -> str:
        reasons = [f"{x.res} lost with {x.worker}" for x in self.lost]
        reasons += [f"{w} is a straggler (x{self.nodes[w].factor})" for w in self.worker_ids()
                    if self.nodes[w].factor > 1 and any(b["worker"] == w for b in self.bars)]
        reasons += [f"{w} was paused" for w in dict.fromkeys(self.paused)]  # each once
        return ", ".join(reasons) or "delays on the network"

    def audit(self) -> None:
        """Follow each lost task until it is redone (or cannot be)."""
        job = self.coordinator.job
        if not job or job.status != "running":
            return
        # A task sent to a worker that is down (it crashed before the task arrived) is lost too.
        for res in job.missing():
            worker = job.tasks[res].worker
            if worker and self.nodes[worker].status == "down" and not any(
                    x.res == res and x.worker == worker for x in self.lost):
                self.lost.append(Loss(res, worker, round(self.now, 3)))
        workers = [self.nodes[w] for w in self.worker_ids()]
        able = [w for w in workers if w.up and self.connected(w.id)]  # who could redo a task
        for loss in [x for x in self.lost if x.res not in job.results]:
            # Its clock starts again while nobody can reassign it (a paused or crashed coordinator reassigns
            # nothing), or while a worker is on it: another one it was given to, or a live one that has it.
            redoing = job.tasks[loss.res].worker not in (loss.worker, None) or any(
                w.status != "down" and w.has(job.id, loss.res) for w in workers)
            if not self.coordinator.up or redoing:
                loss.waiting_since = self.now
            elif not able and self.params["reassign"]:
                loss.waiting_since = self.now
                self.note("redone-elsewhere", f"{loss.res} died with {loss.worker}: waiting for a live worker "
                          "connected to the coordinator to redo it")
            elif loss.overdue(self.now):
                why = "reassignment is off" if not self.params["reassign"] else "a live worker was there to take it"
                self.fail("redone-elsewhere", f"{loss.res} died with {loss.worker} at {fmt_ms(loss.at)} "
                          f"and nobody redoes it ({why}): job {job.id} cannot complete")

    def connected(self, worker: str) -> bool:
        """The coordinator and the worker reach each other, over links without a fault (loss, delay...)."""
        return all(self.net.reachable(a, b) and self.net.links.get((a, b), Link()).clean()
                   for a, b in (("coordinator", worker), (worker, "coordinator")))

    # -- actions ------------------------------------------------------------------------------
    @action("job", Arg("mode", "word", optional=True, choices=("scattered", "sequential")), group="request",
            help="Start a transcoding job (five resolutions), scattered or sequential (default: the mode param).")
    def do_job(self, mode: str | None) -> None:
        job = self.coordinator.job
        if job and job.status == "running":
            raise SimError(f"job {job.id} is still running; wait for it, or set a gather timeout to cut it short")
        if not self.coordinator.up:
            raise SimError(f"the coordinator is {self.coordinator.status}; restart it first")
        self.start_job(mode or self.params["mode"])

    @action("straggle", Arg("worker"), Arg("factor", "int", lo=1, hi=10), nodes=worker_ids,
            not_for="only workers transcode: pick w1, w2, ...",
            help="Make a worker a straggler: its tasks take factor times longer (1 = normal speed).")
    def do_straggle(self, worker: str, factor: int) -> None:
        self.nodes[worker].factor = factor  # the task under way keeps its pace; the next ones run at the new speed
        self.emit("straggle", worker=worker, factor=factor)

    @action("timeout", Arg("ms", "ms", hi=60_000),
            help="Gather timeout: return what has arrived after this many ms, marked partial (0 = wait for all).")
    def do_timeout(self, ms: float) -> None:
        self.gather_timeout = ms
        job = self.coordinator.job
        if job and job.status == "running":
            job.deadline = job.start + ms if ms else None  # also applies to the job under way
        self.emit("gather-timeout", ms=ms)

    @action("add-worker", help=f"Add a worker (up to {MAX_WORKERS}).")
    def do_add_worker(self) -> None:
        workers = self.worker_ids()
        if len(workers) >= MAX_WORKERS:
            raise SimError(f"there are already {MAX_WORKERS} workers, the most this lab runs")
        new = f"w{len(workers) + 1}"
        self.add_node(Worker(self, new)).send("coordinator", "HELLO")  # a new worker announces itself
        self.emit("add-worker", worker=new)

    # -- the page -------------------------------------------------------------------------------
    def view(self) -> dict:
        workers, job = self.worker_ids(), self.coordinator.job
        return {"edges": [["coordinator", w] for w in workers], "history": self.jobs,
                "job": self.job_view(job) if job else None, "gantt": self.gantt(job, workers) if job else None,
                "gather_timeout": self.gather_timeout}

    def job_view(self, job: Job) -> dict:
        over = job.end is not None
        tasks = [{"res": res, "cost": t.cost, "worker": t.done_by or t.worker, "link": job.results.get(res),
                  "state": "gathered" if res in job.results else ("waiting" if job.status == "running" else "missing")}
                 for res, t in job.tasks.items()]
        return {"id": job.id, "mode": job.mode, "status": job.status, "tasks": tasks, "plan_ms": self.plan_ms,
                "elapsed": round((job.end if over else self.now) - job.start, 1),
                "work_ms": round(sum(t.cost for t in job.tasks.values()), 1), "missing": job.missing() if over else [],
                "overhead_ms": OVERHEAD[job.mode] if over else None,
                "deadline_in": round(job.deadline - job.start, 1) if job.deadline is not None else None,
                "lost": [{k: v for k, v in vars(x).items() if v or k == "at"} for x in self.lost]}

    def gantt(self, job: Job, workers: list[str]) -> dict:
        """The current job's bars, a row per worker; times in percent of the chart's span."""
        end = job.end if job.end is not None else self.now
        span = max(end - job.start, self.plan_ms, 500, *[(b["end"] or self.now) - job.start for b in self.bars])

        def pct(ms: float) -> float:
            return round(100 * ms / span, 2)

        def bar(b: dict) -> dict:
            ms = (b["end"] if b["end"] is not None else self.now) - b["start"]
            return {"res": b["res"], "state": b["state"], "copy": b["copy"], "x": pct(b["start"] - job.start),
                    "w": max(0.5, pct(ms)), "ms": round(ms)}

        rows = [{"worker": w, "status": self.nodes[w].status, "y": 4 + 16 * i,
                 "bars": [bar(b) for b in self.bars if b["worker"] == w]} for i, w in enumerate(workers)]
        marks = {"end": pct(end - job.start) if job.end is not None else None,
                 "deadline": pct(job.deadline - job.start)
                 if job.deadline is not None and job.deadline - job.start <= span else None,
                 "now": pct(self.now - job.start) if job.end is None else None}
        return {"span_ms": round(span), "rows": rows, "marks": marks, "height": 16 * len(rows) + 18,
                "axis_y": 16 * len(rows) + 4}
