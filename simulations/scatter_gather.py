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

  * failure detection: a busy worker sends PROGRESS every 300 ms; when the
    coordinator hears nothing from a worker that holds tasks for 1 s, it
    suspects it and sends those tasks to another worker (reassignment);
  * a gather timeout: when the deadline passes, the coordinator answers with
    what it has, marked partial, naming the resolutions that are missing
    (the aggregator's completion condition in Hohpe and Woolf's
    Enterprise Integration Patterns).

Optionally, like MapReduce's backup tasks (Dean and Ghemawat, 2004), a task
running much longer than expected gets a second copy on an idle worker; the
first result wins and the other copy is cancelled.
"""

from __future__ import annotations

from .kernel import Arg, Lab, Node, Param, SimError, action, fmt_ms

# The job: each resolution's pixel count sets its cost (100 ms + 1 ms per 1000 pixels).
RESOLUTIONS = (("240p", 426 * 240), ("360p", 640 * 360), ("480p", 854 * 480),
               ("720p", 1280 * 720), ("1080p", 1920 * 1080))
COST = {res: 100 + pixels // 1000 for res, pixels in RESOLUTIONS}
NOISE = 0.1  # each task's real cost varies by up to +-10% from its estimate
PROGRESS_EVERY = 300  # ms between a busy worker's progress reports
SUSPECT_AFTER = 1000  # ms of silence before the coordinator suspects a busy worker
WATCH_EVERY = 100  # ms between the coordinator's checks of its job
MERGE_MS = 50  # the gather step: writing the manifest of links
BACKUP_AFTER = 1.5  # a task running 1.5x its estimate gets a backup copy
MAX_LATENCY = 12  # the network's highest one-way latency (see LATENCY)
MAX_WORKERS = 8
FIRST_JOB_AT = 300  # ms: the first job starts by itself


class Worker(Node):
    """A transcoder: works through its queue one task at a time."""

    role = "worker"

    def boot(self) -> None:
        self.role = "worker"
        self.queue: list[dict] = []  # tasks waiting
        self.current: dict | None = None  # the task being transcoded
        self.factor = getattr(self, "factor", 1)  # a straggler's slowness survives restarts
        if self.lab.started:
            self.send("coordinator", "HELLO")  # back in service

    def view(self) -> dict:
        busy = self.current["res"] if self.current and self.status != "down" else None
        parts = [f"{busy}" if busy else "idle"]
        if self.queue and self.status != "down":
            parts.append(f"+{len(self.queue)}")
        if self.factor > 1:
            parts.append(f"×{self.factor} slow")
        return {"task": busy, "queued": len(self.queue) if self.status != "down" else 0, "factor": self.factor,
                "label": " · ".join(parts) if self.status != "down" else "down"}

    def on_message(self, msg) -> None:
        if msg.type == "TASK":
            mine = ([self.current] if self.current else []) + self.queue
            if any(t["job"] == msg.body["job"] and t["res"] == msg.body["res"] for t in mine):
                return  # already have it (a restarted coordinator sends its tasks again)
            self.queue.append(dict(msg.body))
            if self.current is None:
                self.start_next()
        elif msg.type == "CANCEL":
            job, res = msg.body["job"], msg.body["res"]
            self.queue = [t for t in self.queue if not (t["job"] == job and t["res"] == res)]
            if self.current and self.current["job"] == job and self.current["res"] == res:
                self.cancel_timer("done")
                self.lab.record_end(self.id, job, res, "cancelled")
                self.current = None
                self.start_next()

    def start_next(self) -> None:
        if not self.queue:
            self.current = None
            self.cancel_timer("progress")
            return
        self.current = self.queue.pop(0)
        task = self.current
        self.lab.record_start(self.id, task["job"], task["res"], task.get("copy", ""))
        self.set_timer("done", task["cost"] * self.factor)
        self.report_progress()

    def report_progress(self) -> None:
        task = self.current
        self.send("coordinator", "PROGRESS", job=task["job"], res=task["res"])
        self.set_timer("progress", PROGRESS_EVERY)

    def on_timer(self, name: str, data: dict) -> None:
        if name == "progress" and self.current:
            self.report_progress()
        elif name == "done" and self.current:
            task = self.current
            self.lab.record_end(self.id, task["job"], task["res"], "done")
            self.send("coordinator", "RESULT", job=task["job"], res=task["res"],
                      link=f"cdn/video-{task['job']}/{task['res']}.mp4")
            self.start_next()

    def crash(self) -> None:
        self.lab.worker_lost(self)
        super().crash()


class Coordinator(Node):
    """Scatters the tasks, watches the workers, gathers the results."""

    role = "coordinator"

    def boot(self) -> None:
        self.role = "coordinator"
        self.heard: dict[str, float] = {}  # worker -> when it last spoke (or was given work)
        self.suspects: list[str] = []  # workers believed dead
        self.set_timer("watch", WATCH_EVERY)
        job = self.disk.get("job")
        if job and job["status"] == "running" and self.lab.started:
            # The job table is on disk: resume by sending again every task not gathered.
            self.lab.emit("resume-job", job=job["id"], missing=self.missing(job))
            for res in self.missing(job):
                job["tasks"][res]["worker"] = None
            if job["mode"] == "scattered":
                self.scatter(job, self.missing(job))
            else:
                self.dispatch_next(job)

    def view(self) -> dict:
        job = self.disk.get("job")
        if not job or self.status == "down":
            return {"label": "down" if self.status == "down" else "idle"}
        got = len(job["results"])
        return {"job": job["id"], "label": f"job {job['id']}: {got}/{len(RESOLUTIONS)} {job['status']}"}

    # -- the job ----------------------------------------------------------------------
    def start_job(self, job: dict) -> None:
        self.disk["job"] = job
        self.suspects = []  # a new job gives every worker a fresh chance
        if job["mode"] == "scattered":
            self.scatter(job, [res for res, _ in RESOLUTIONS])
        else:
            self.dispatch_next(job)

    def live_workers(self) -> list[str]:
        return [w for w in self.lab.worker_ids() if w not in self.suspects]

    def outstanding(self, job: dict, worker: str) -> list[str]:
        return [res for res, t in job["tasks"].items() if t["worker"] == worker and res not in job["results"]]

    def missing(self, job: dict) -> list[str]:
        return [res for res, _ in RESOLUTIONS if res not in job["results"]]

    def scatter(self, job: dict, tasks: list[str], why: str = "") -> None:
        """Largest task first, each to the worker with the least work queued."""
        for res in sorted(tasks, key=lambda r: -COST[r]):
            workers = self.live_workers()
            if not workers:
                self.lab.emit("stuck", job=job["id"], res=res, why="no live worker")
                continue
            load = {w: sum(COST[r] for r in self.outstanding(job, w)) for w in workers}
            target = min(workers, key=lambda w: load[w])  # ties: the first in id order
            self.assign(job, res, target, "redo" if why else "")

    def dispatch_next(self, job: dict) -> None:
        """Sequential: one task at a time, in order, to the first live worker."""
        if any(t["worker"] for res, t in job["tasks"].items() if res not in job["results"]):
            return  # one is already out
        missing = self.missing(job)
        workers = self.live_workers()
        if missing and workers:
            self.assign(job, missing[0], workers[0], "")

    def assign(self, job: dict, res: str, worker: str, copy: str) -> None:
        task = job["tasks"][res]
        if copy != "backup":
            task["worker"] = worker
        task["sent"] = round(self.now, 3)
        self.heard[worker] = self.now  # its silence is measured from now on
        if copy:
            self.lab.emit("reassign" if copy == "redo" else "backup", job=job["id"], res=res, to=worker)
            self.lab.count("reassigned" if copy == "redo" else "backups")
        self.send(worker, "TASK", job=job["id"], res=res, cost=task["cost"], copy=copy)

    def on_message(self, msg) -> None:
        src, body = msg.src, msg.body
        self.heard[src] = self.now
        if src in self.suspects:
            self.suspects.remove(src)
            self.lab.emit("unsuspect", worker=src)
        job = self.disk.get("job")
        if msg.type == "PROGRESS" and job and body["job"] == job["id"]:
            task = job["tasks"][body["res"]]
            if task["worker"] == src and task.get("running_on") != src:
                task["running_on"], task["started"] = src, round(self.now, 3)
        elif msg.type == "RESULT":
            self.gather(job, src, body)

    def gather(self, job: dict | None, src: str, body: dict) -> None:
        if not job or body["job"] != job["id"] or job["status"] != "running":
            self.lab.emit("late-result", job=body["job"], res=body["res"], worker=src)
            self.lab.mark_late(src, body["job"], body["res"])
            return
        res = body["res"]
        if res in job["results"]:
            return  # a second copy finished too: the first one won
        job["results"][res] = body["link"]
        job["tasks"][res]["done_by"] = src
        self.lab.emit("gathered", job=job["id"], res=res, worker=src, have=len(job["results"]))
        for other in self.lab.copies_running(job["id"], res, src):
            self.send(other, "CANCEL", job=job["id"], res=res)
        if not self.missing(job):
            self.set_timer("merge", MERGE_MS)  # all in: write the manifest
        elif job["mode"] == "sequential":
            self.dispatch_next(job)

    def on_timer(self, name: str, data: dict) -> None:
        job = self.disk.get("job")
        if name == "merge" and job and job["status"] == "running":
            self.lab.finish_job(job, "complete")
        elif name == "watch":
            self.set_timer("watch", WATCH_EVERY)
            if job and job["status"] == "running":
                self.watch(job)

    def watch(self, job: dict) -> None:
        lab = self.lab
        # The gather timeout: answer with what we have.
        if job["deadline"] is not None and self.now >= job["deadline"]:
            self.cancel_timer("merge")
            for res in self.missing(job):  # stop the work nobody will wait for
                for worker in lab.copies_running(job["id"], res, None):
                    self.send(worker, "CANCEL", job=job["id"], res=res)
            return lab.finish_job(job, "complete" if not self.missing(job) else "partial")
        # Failure detection: a worker holding tasks that has been silent too long.
        for worker in lab.worker_ids():
            held = self.outstanding(job, worker)
            if held and worker not in self.suspects and self.now - self.heard.get(worker, self.now) > SUSPECT_AFTER:
                self.suspects.append(worker)
                lab.emit("suspect", worker=worker, holds=held)
                if lab.params["reassign"]:
                    for res in held:
                        job["tasks"][res]["worker"] = None
                    if job["mode"] == "scattered":
                        self.scatter(job, held, why="suspected")
                    else:
                        self.dispatch_next(job)
        if job["mode"] == "sequential" and lab.params["reassign"]:
            self.dispatch_next(job)  # a task left unassigned when nobody was alive
        elif lab.params["reassign"]:
            unassigned = [r for r in self.missing(job) if job["tasks"][r]["worker"] is None]
            if unassigned and self.live_workers():
                self.scatter(job, unassigned, why="unassigned")
        # Backup tasks: a copy of a task that runs far beyond its estimate, on an idle worker.
        if lab.params["backups"]:
            idle = [w for w in self.live_workers() if not self.outstanding(job, w)
                    and not lab.copies_running(job["id"], None, None, on=w)]
            for res in self.missing(job):
                task = job["tasks"][res]
                started = task.get("started")
                if idle and started is not None and not task.get("backup") and \
                        self.now - started > BACKUP_AFTER * COST[res]:
                    task["backup"] = idle[0]
                    self.assign(job, res, idle.pop(0), "backup")


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
        Param("reassign", True, "Detect silent workers and send their tasks to another worker."),
        Param("backups", False, "Start a backup copy of a task that runs 1.5x longer than expected "
              "(MapReduce's backup tasks)."),
    )
    FAULTS = ("crash", "restart", "pause", "resume", "partition", "cut", "heal", "delay", "loss",
              "drop-next", "duplicate-next")
    LATENCY = (4.0, float(MAX_LATENCY))

    def setup(self) -> None:
        self.started = False
        self.jobs: list[dict] = []  # finished jobs, newest last (a short history)
        self.bars: list[dict] = []  # the Gantt chart of the current job
        self.lost: list[dict] = []  # tasks that died with a worker in the current job
        self.paused: list[str] = []  # workers paused during the current job (their work stopped)
        self.gather_timeout = float(self.params["gather_timeout"])
        self.metrics.update({"jobs": 0, "reassigned": 0, "backups": 0, "last_job_ms": None,
                             "last_sequential_ms": None, "last_scattered_ms": None, "speedup": None,
                             "speedup_basis": None})
        self.add_node(Coordinator(self, "coordinator"))
        for i in range(1, self.params["workers"] + 1):
            self.add_node(Worker(self, f"w{i}"))
        self.started = True
        self.add_check("time-model", "A scattered job takes about its longest task plus overhead (the busiest "
                       "worker's queue when there are fewer workers than tasks); a sequential one about the sum.")
        self.add_check("redone-elsewhere", "A task lost with a crashed worker is redone on another worker and "
                       "the job still completes (while no worker at all is up, it waits for one).")
        self.add_check("result-complete", "The latest job gathered every resolution; a job cut short by the "
                       "gather timeout is marked partial and names what is missing.")
        self.sim.after(FIRST_JOB_AT, self.start_job, self.params["mode"])
        self.sim.after(WATCH_EVERY, self.audit)

    def worker_ids(self) -> list[str]:
        return [n for n in self.nodes if n != "coordinator"]

    @property
    def coordinator(self) -> Coordinator:
        return self.nodes["coordinator"]

    def current_job(self) -> dict | None:
        return self.coordinator.disk.get("job")

    # -- jobs --------------------------------------------------------------------------
    def start_job(self, mode: str) -> None:
        coord = self.coordinator
        if not coord.up:
            self.emit("job-refused", why=f"the coordinator is {coord.status}")
            return
        self.count("jobs")
        number = self.metrics["jobs"]
        rng = self.sim.rng
        tasks = {res: {"estimate": COST[res], "cost": round(COST[res] * (1 + rng.uniform(-NOISE, NOISE)), 1),
                       "worker": None} for res, _ in RESOLUTIONS}
        deadline = self.now + self.gather_timeout if self.gather_timeout else None
        job = {"id": number, "mode": mode, "start": round(self.now, 3), "deadline": deadline,
               "tasks": tasks, "results": {}, "status": "running", "end": None, "missing": [],
               "workers": len(self.worker_ids())}
        self.bars, self.lost, self.paused = [], [], []
        for name in ("time-model", "redone-elsewhere", "result-complete"):
            self.holds(name, f"job {number} running")
        self.emit("job", job=number, mode=mode, deadline=deadline)
        coord.start_job(job)
        job["plan_ms"] = self.planned_ms(job)

    def planned_ms(self, job: dict) -> float:
        """What the job's compute should take: the busiest worker's queue (scattered), the sum (sequential)."""
        costs = [t["cost"] for t in job["tasks"].values()]
        if job["mode"] == "sequential":
            return round(sum(costs), 1)
        per_worker: dict[str, float] = {}
        for t in job["tasks"].values():
            if t["worker"]:
                per_worker[t["worker"]] = per_worker.get(t["worker"], 0) + t["cost"]
        return round(max(per_worker.values() or [max(costs)]), 1)

    def finish_job(self, job: dict, status: str) -> None:
        job["status"], job["end"] = status, round(self.now, 3)
        job["missing"] = [res for res, _ in RESOLUTIONS if res not in job["results"]]
        elapsed = round(job["end"] - job["start"], 1)
        job["elapsed"] = elapsed
        work = round(sum(t["cost"] for t in job["tasks"].values()), 1)
        job["work_ms"] = work
        self.emit("job-done", job=job["id"], status=status, ms=elapsed, missing=job["missing"])
        for bar in self.bars:
            if bar["state"] == "running":
                bar["state"] = "abandoned" if status == "partial" else bar["state"]
        self.metrics["last_job_ms"] = elapsed
        # The checks, measured on this job.
        rounds = 1 if job["mode"] == "scattered" else len(RESOLUTIONS)
        overhead = MERGE_MS + rounds * 2 * MAX_LATENCY + 20
        job["overhead_ms"] = overhead
        if status == "complete":
            self.metrics[f"last_{job['mode']}_ms"] = elapsed
            self.holds("result-complete", f"job {job['id']}: all {len(RESOLUTIONS)} resolutions in {fmt_ms(elapsed)}")
            model = "busiest worker" if job["mode"] == "scattered" and job["workers"] < len(RESOLUTIONS) else (
                "longest task" if job["mode"] == "scattered" else "sum of tasks")
            detail = (f"job {job['id']} ({job['mode']}): {fmt_ms(elapsed)}; {model} {fmt_ms(job['plan_ms'])} "
                      f"+ overhead up to {overhead}ms")
            if job["plan_ms"] <= elapsed <= job["plan_ms"] + overhead:
                self.holds("time-model", detail)
            else:
                self.fail("time-model", detail + f": {fmt_ms(elapsed - job['plan_ms'])} late ({self.blame(job)})")
        else:
            self.holds("time-model", f"job {job['id']} was cut short by the gather timeout: no full time to compare")
            self.fail("result-complete", f"job {job['id']} partial after {fmt_ms(elapsed)}: missing "
                      f"{', '.join(job['missing'])}")
        for loss in self.lost:
            if loss["res"] in job["results"] and job["tasks"][loss["res"]].get("done_by") != loss["worker"]:
                loss["redone_by"] = job["tasks"][loss["res"]]["done_by"]
            elif loss["res"] in job["missing"] and status == "partial" and \
                    self.now - max(loss["at"], loss.get("waiting_since", 0)) <= SUSPECT_AFTER + 1000:
                # the gather timeout ended the job before the coordinator could notice the silence:
                # a partial result (result-complete says so), not a task that nobody would redo
                loss["cut_short"] = True
            elif loss["res"] in job["missing"]:
                self.fail("redone-elsewhere", f"{loss['res']} died with {loss['worker']} and was never redone: "
                          f"job {job['id']} ended without it")
        if not self.lost:
            self.holds("redone-elsewhere", f"no task was lost in job {job['id']}")
        elif self.checks["redone-elsewhere"].ok:
            self.holds("redone-elsewhere", "; ".join(
                f"{x['res']} lost with {x['worker']}, " + ("the gather timeout ended the job before it could be "
                                                           "noticed" if x.get("cut_short") else
                                                           f"redone on {x.get('redone_by', '?')}")
                for x in self.lost))
        seq, scat = self.metrics["last_sequential_ms"], self.metrics["last_scattered_ms"]
        if seq and scat:  # both modes measured: the real speed-up
            self.metrics["speedup"], self.metrics["speedup_basis"] = round(seq / scat, 2), "measured"
        elif status == "complete" and job["mode"] == "scattered":  # the work done one after another / time taken
            self.metrics["speedup"], self.metrics["speedup_basis"] = round(work / elapsed, 2), "sum of tasks / job time"
        self.jobs.append({k: job[k] for k in ("id", "mode", "status", "elapsed", "missing", "plan_ms", "work_ms")})
        del self.jobs[:-6]

    def after_fault(self, fault: str, node_id: str | None) -> None:
        if fault == "pause" and node_id not in self.paused:
            self.paused.append(node_id)

    def blame(self, job: dict) -> str:
        reasons = [f"{x['res']} lost with {x['worker']}" for x in self.lost]
        reasons += [f"{w} is a straggler (x{self.nodes[w].factor})" for w in self.worker_ids()
                    if self.nodes[w].factor > 1 and any(b["worker"] == w for b in self.bars)]
        reasons += [f"{w} was paused" for w in self.paused]
        return ", ".join(reasons) or "delays on the network"

    # -- what the workers do (for the Gantt chart) ---------------------------------------
    def record_start(self, worker: str, job: int, res: str, copy: str) -> None:
        cur = self.current_job()
        if cur and cur["id"] == job:
            self.bars.append({"worker": worker, "res": res, "start": round(self.now, 3), "end": None,
                              "state": "running", "copy": copy})
            del self.bars[:-24]
        self.emit("task-start", worker=worker, job=job, res=res, copy=copy)

    def record_end(self, worker: str, job: int, res: str, state: str) -> None:
        for bar in self.bars:
            if bar["worker"] == worker and bar["res"] == res and bar["end"] is None:
                bar["end"], bar["state"] = round(self.now, 3), state
        self.emit("task-" + state, worker=worker, job=job, res=res)

    def mark_late(self, worker: str, job: int, res: str) -> None:
        mine = [b for b in self.bars if b["worker"] == worker and b["res"] == res]
        if mine:
            mine[-1]["state"] = "late"  # finished after the gather stopped waiting

    def worker_lost(self, worker: Worker) -> None:
        """A worker crashes: what it was doing or holding dies with it."""
        job = self.current_job()
        if worker.current:
            self.record_end(worker.id, worker.current["job"], worker.current["res"], "lost")
        if job and job["status"] == "running":
            held = [t for t in ([worker.current] if worker.current else []) + worker.queue if t["job"] == job["id"]]
            for task in held:
                if task["res"] not in job["results"] and task.get("copy") != "backup":
                    self.lost.append({"res": task["res"], "worker": worker.id, "at": round(self.now, 3)})

    def copies_running(self, job: int, res: str | None, winner: str | None, on: str | None = None) -> list[str]:
        """Workers still working on (or queueing) a copy of this task (for CANCEL), or anything on `on`."""
        out = []
        for w in self.worker_ids():
            node = self.nodes[w]
            if node.status == "down" or w == winner or (on and w != on):
                continue
            tasks = ([node.current] if node.current else []) + node.queue
            if any(t["job"] == job and (res is None or t["res"] == res) for t in tasks):
                out.append(w)
        return out

    # -- the observer's audit ----------------------------------------------------------------
    def audit(self) -> None:
        self.sim.after(WATCH_EVERY, self.audit)
        job = self.current_job()
        if not job or job["status"] != "running":
            return
        # A task sent to a worker that is down (it crashed before the task arrived) is lost too.
        for res in [r for r, _ in RESOLUTIONS if r not in job["results"]]:
            worker = job["tasks"][res]["worker"]
            if worker and self.nodes[worker].status == "down" and not any(
                    x["res"] == res and x["worker"] == worker for x in self.lost):
                self.lost.append({"res": res, "worker": worker, "at": round(self.now, 3)})
        anyone_up = any(self.nodes[w].status == "up" for w in self.worker_ids())
        coordinating = self.coordinator.status == "up"  # a paused or crashed coordinator reassigns nothing
        for loss in self.lost:
            task = job["tasks"][loss["res"]]
            stuck = loss["res"] not in job["results"] and task["worker"] in (loss["worker"], None)
            if stuck and self.copies_running(job["id"], loss["res"], None):
                loss["waiting_since"] = self.now  # a live worker (maybe the restarted one) is on it
                continue
            if stuck and not coordinating:
                loss["waiting_since"] = self.now  # the clock starts again when it runs again
                continue
            if stuck and not anyone_up and self.params["reassign"]:
                # No worker is up: nobody could redo it.  The clock starts again when one is back.
                loss["waiting_since"] = self.now
                if self.checks["redone-elsewhere"].ok:
                    self.checks["redone-elsewhere"].detail = (f"{loss['res']} died with {loss['worker']}: waiting "
                                                              "for a live worker to redo it")
                continue
            if stuck and self.now - max(loss["at"], loss.get("waiting_since", 0)) > SUSPECT_AFTER + 1000:
                why = "reassignment is off" if not self.params["reassign"] else "a live worker was there to take it"
                self.fail("redone-elsewhere", f"{loss['res']} died with {loss['worker']} at {fmt_ms(loss['at'])} "
                          f"and nobody redoes it ({why}): job {job['id']} cannot complete")

    # -- actions ------------------------------------------------------------------------------
    @action("job", Arg("mode", "word", optional=True, choices=("scattered", "sequential")), group="request",
            help="Start a transcoding job (five resolutions), scattered or sequential (default: the mode param).")
    def do_job(self, mode: str | None) -> None:
        job = self.current_job()
        if job and job["status"] == "running":
            raise SimError(f"job {job['id']} is still running; wait for it, or set a gather timeout to cut it short")
        if not self.coordinator.up:
            raise SimError(f"the coordinator is {self.coordinator.status}; restart it first")
        self.start_job(mode or self.params["mode"])

    @action("straggle", Arg("worker"), Arg("factor", "int", lo=1, hi=10),
            help="Make a worker a straggler: its tasks take factor times longer (1 = normal speed).")
    def do_straggle(self, worker: str, factor: int) -> None:
        if worker == "coordinator":
            raise SimError("only workers transcode: pick w1, w2, ...")
        node = self.nodes[worker]
        node.factor = factor  # the task under way keeps its pace; the next ones run at the new speed
        self.emit("straggle", worker=worker, factor=factor)

    @action("timeout", Arg("ms", "ms", hi=60_000),
            help="Gather timeout: return what has arrived after this many ms, marked partial (0 = wait for all).")
    def do_timeout(self, ms: float) -> None:
        self.gather_timeout = ms
        job = self.current_job()
        if job and job["status"] == "running":
            job["deadline"] = job["start"] + ms if ms else None  # also applies to the job under way
        self.emit("gather-timeout", ms=ms)

    @action("add-worker", help=f"Add a worker (up to {MAX_WORKERS}).")
    def do_add_worker(self) -> None:
        workers = self.worker_ids()
        if len(workers) >= MAX_WORKERS:
            raise SimError(f"there are already {MAX_WORKERS} workers, the most this lab runs")
        new = f"w{len(workers) + 1}"
        self.add_node(Worker(self, new))
        self.emit("add-worker", worker=new)

    # -- the page -------------------------------------------------------------------------------
    def view(self) -> dict:
        workers = self.worker_ids()
        # The coordinator on the left.  Up to three workers stand in one column on the
        # right; more go into two rows (above and below the coordinator's line), so
        # no edge from the coordinator runs through another worker.
        layout = {"coordinator": [14, 50]}
        if len(workers) <= 3:
            for i, w in enumerate(workers):
                layout[w] = [74, round(8 + 88 * (i + 0.5) / len(workers), 1)]
        else:
            top = -(-len(workers) // 2)
            step = 48 / (top - 1)
            for row, members in enumerate((workers[:top], workers[top:])):
                first = 44 + step * (top - len(members)) / 2  # a shorter row sits in the gaps
                for i, w in enumerate(members):
                    layout[w] = [round(first + step * i, 1), 17 if row == 0 else 83]
        job = self.current_job()
        return {
            "layout": layout,
            "edges": [["coordinator", w] for w in workers],
            "job": self.job_view(job) if job else None,
            "gantt": self.gantt(job, workers) if job else None,
            "history": self.jobs,
            "gather_timeout": self.gather_timeout,
            "costs": [{"res": res, "ms": COST[res]} for res, _ in RESOLUTIONS],
        }

    def job_view(self, job: dict) -> dict:
        tasks = []
        for res, _ in RESOLUTIONS:
            t = job["tasks"][res]
            tasks.append({"res": res, "cost": t["cost"], "worker": t.get("done_by") or t["worker"],
                          "link": job["results"].get(res), "state": "gathered" if res in job["results"] else (
                              "missing" if job["status"] != "running" else "waiting")})
        elapsed = (job["end"] if job["end"] is not None else self.now) - job["start"]
        return {"id": job["id"], "mode": job["mode"], "status": job["status"], "elapsed": round(elapsed, 1),
                "plan_ms": job.get("plan_ms"), "work_ms": round(sum(t["cost"] for t in job["tasks"].values()), 1),
                "deadline_in": round(job["deadline"] - job["start"], 1) if job["deadline"] is not None else None,
                "missing": job["missing"], "tasks": tasks, "overhead_ms": job.get("overhead_ms"),
                "lost": [dict(x) for x in self.lost]}

    def gantt(self, job: dict, workers: list[str]) -> dict:
        end = job["end"] if job["end"] is not None else self.now
        span = max(end - job["start"], job.get("plan_ms") or 0, 500)
        span = max(span, *[(b["end"] or self.now) - job["start"] for b in self.bars]) if self.bars else span
        rows = []
        for w in workers:
            bars = []
            for b in self.bars:
                if b["worker"] != w:
                    continue
                stop = b["end"] if b["end"] is not None else self.now
                bars.append({"res": b["res"], "state": b["state"], "copy": b["copy"],
                             "x": round(100 * (b["start"] - job["start"]) / span, 2),
                             "w": round(max(0.5, 100 * (stop - b["start"]) / span), 2),
                             "ms": round(stop - b["start"])})
            rows.append({"worker": w, "status": self.nodes[w].status, "bars": bars, "y": 4 + 16 * len(rows)})
        marks = {"end": round(100 * (end - job["start"]) / span, 2) if job["end"] is not None else None,
                 "deadline": round(100 * (job["deadline"] - job["start"]) / span, 2)
                 if job["deadline"] is not None and job["deadline"] - job["start"] <= span else None,
                 "now": round(100 * (self.now - job["start"]) / span, 2) if job["end"] is None else None}
        return {"span_ms": round(span), "rows": rows, "marks": marks, "height": 16 * len(rows) + 18,
                "axis_y": 16 * len(rows) + 4}
