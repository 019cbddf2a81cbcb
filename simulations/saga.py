"""Saga: one business transaction spread over services that each own a database.

A merchant adds a product.  Three services each keep their own table: `product` (the product row),
`price` (its price) and `metadata` (its tags).  No database transaction can span all three, yet a
product must never end up without a price.  A saga (Garcia-Molina and Salem, 1987) runs the work as
a sequence of local transactions and, when a step fails, undoes the steps already done with
*compensating* transactions, in reverse order:

    create product -> create price -> create metadata
    create product -> create price -> (metadata fails) -> delete price -> delete product

Two ways to drive the steps (param `mode`):

Orchestration
  * the `orchestrator` writes every decision to a durable saga log (begin, step done, compensate
    [plan], step undone, end) *before* acting; after a crash it rebuilds its state from the log;
  * it sends CREATE to each service in turn and waits for CREATED or FAILED;
  * no answer within `timeout`: it sends the same CREATE again (up to `retries` times), then treats
    the step as failed -- and, since the step may have run anyway, compensates it too;
  * FAILED or give-up: it sends COMPENSATE to the done steps, newest first, each one only after the
    previous is acknowledged, retrying until it is.

Choreography
  * nobody is in charge: services react to events on a `bus`.  product publishes product-created,
    price reacts and publishes price-created, metadata reacts and publishes metadata-created;
  * a failed step publishes <service>-failed; the service before it reacts by deleting its row and
    publishing <service>-deleted, and so on back to the start: the compensations walk backwards by
    themselves;
  * the bus keeps events in a durable log and redelivers each one until the subscriber acknowledges
    it (at-least-once delivery); services put the events they publish in an outbox stored with their
    rows, so an event is never lost between "row written" and "event published".

Both ways deliver some messages more than once (retries, redeliveries, a duplicated packet).  That
is safe only because every handler is idempotent (param `idempotent`): a service remembers, per
saga, what it already did and answers a repeat with the same result instead of inserting another
row, and a compensation leaves a tombstone so that a late CREATE is ignored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import partial

from .kernel import Arg, Lab, Node, Param, SimError, action, observe, on

STEPS = ("product", "price", "metadata")  # the saga's steps, in order
COMP_ATTEMPTS = 8  # orchestrator: tries per compensation before the saga is "failed"
AUDIT_EVERY = 500  # ms between the checks' sweeps
FINAL = ("completed", "compensated", "failed")

# Choreography: who reacts to which event.  Failures and deletions ask the subscriber to undo its step.
SUBSCRIBERS = {
    "product-created": ["price"],
    "price-created": ["metadata"],
    "metadata-failed": ["price"],  # undo price ...
    "price-failed": ["product"],  # ... or undo product
    "price-deleted": ["product"],  # ... and after price, product
}

NAMES = ("desk lamp", "tea kettle", "bike bell", "wool scarf", "chess set", "yoga mat", "cast-iron pan", "backpack")
COLOURS = ("red", "blue", "green", "black", "white", "oak")
ROW = {"product": "{name}", "price": "${price}", "metadata": "colour={meta}"}  # what each service's row holds


# == Services: product, price, metadata ============================================================


@dataclass
class Database:
    """A service's own database: its rows, what it did per saga, and the events it still has to publish."""

    rows: list[dict] = field(default_factory=list)
    done: dict[str, str] = field(default_factory=dict)  # saga -> created | failed | compensated
    outbox: list[dict] = field(default_factory=list)  # choreography: events not yet on the bus
    accepted: dict[str, dict] = field(default_factory=dict)  # merchant requests taken, not yet committed
    next_row: int = 1
    next_event: int = 1


class Service(Node):
    def boot(self) -> None:
        self.role = "service"
        self.db: Database = self.disk.setdefault("db", Database())
        self.working: set[tuple[str, str]] = set()  # (do, saga) while its local transaction runs
        if self.db.outbox:
            self.after(0, self.flush_outbox, key="outbox")
        for saga, body in self.db.accepted.items():  # a request accepted before a crash: do it now
            self.after(0, self.handle, "create", saga, body, None, key=("accepted", saga))

    def view(self) -> dict:
        rows, fault = self.db.rows, self.lab.fault_text(self.id)
        label = f"{len(rows)} row{'s' if len(rows) != 1 else ''}" + (f" · fails {fault}" if fault else "")
        return {"rows": rows, "outbox": len(self.db.outbox), "fault": fault, "label": label}

    @on("CREATE", "COMPENSATE")
    def command(self, msg) -> None:  # from the orchestrator
        self.handle(msg.type.lower(), msg.body["saga"], msg.body, msg.src)

    @on("DELIVER")
    def delivered(self, msg) -> None:  # an event from the bus
        do = "compensate" if msg.body["event"].endswith(("-failed", "-deleted")) else "create"
        self.handle(do, msg.body["saga"], msg.body, msg.src, msg.body["eid"])

    @on("PUBLISHED")
    def published(self, msg) -> None:  # the bus has the event: drop it from the outbox
        self.db.outbox = [e for e in self.db.outbox if e["eid"] != msg.body["eid"]]

    def handle(self, do: str, saga: str, body: dict, reply_to: str | None, eid: str | None = None) -> None:
        """Start the local transaction (it commits after `work_ms`), unless this request ran here already."""
        if self.lab.idempotent and (do, saga) in self.working:  # being processed: its answer will follow
            self.lab.emit("duplicate-ignored", node=self.id, saga=saga, do=do)
            return
        if self.repeated(do, saga, reply_to, eid):
            return
        if reply_to is None:  # the merchant's request is stored first: nobody would re-send it
            self.db.accepted[saga] = dict(body)
        self.working.add((do, saga))
        self.lab.witness("begin", node=self.id, saga=saga, do=do)
        fields = {k: body[k] for k in ("product", "name", "price", "meta") if k in body}
        self.after(self.lab.params["work_ms"], self.commit, do, saga, fields, reply_to, eid)

    def repeated(self, do: str, saga: str, reply_to: str | None, eid: str | None) -> bool:
        """Idempotency: a request decided here already gets the same answer again, and nothing is redone."""
        state = self.db.done.get(saga)
        decided = state is not None if do == "create" else state == "compensated"
        if not (self.lab.idempotent and decided):
            return False
        self.lab.emit("duplicate-ignored", node=self.id, saga=saga, do=do)
        self.answer(do, saga, reply_to, eid)
        return True

    def commit(self, do: str, saga: str, body: dict, reply_to: str | None, eid: str | None) -> None:
        """The local transaction: the rows, the outcome and the event to publish, in one write to the disk."""
        db = self.db
        self.working.discard((do, saga))
        if reply_to is None:
            db.accepted.pop(saga, None)
        if self.repeated(do, saga, reply_to, eid):
            return
        if do == "compensate":
            mine = [r for r in db.rows if r["saga"] == saga]  # delete every row of the saga ...
            if not self.lab.idempotent:
                mine = mine[:1]  # ... where a naive delete takes one
            for row in mine:
                db.rows.remove(row)
                self.lab.emit("row", node=self.id, op="delete", saga=saga, row=row["row"])
            outcome = "compensated" if self.lab.idempotent or mine else "nothing"
        elif self.lab.step_fails(self.id):
            outcome = "failed"
            self.lab.emit("step-failed", node=self.id, saga=saga)
        else:
            outcome = "created"
            row = {"row": db.next_row, "saga": saga, "product": body["product"], "value": ROW[self.id].format(**body)}
            db.next_row += 1
            db.rows.append(row)
            self.lab.emit("row", node=self.id, op="insert", saga=saga, row=row["row"], value=row["value"])
        if outcome != "nothing":
            db.done[saga] = outcome  # "compensated" is a tombstone: a late CREATE is now ignored
        if self.lab.mode == "choreography":  # the event to publish goes into the outbox, in the same write
            event = f"{self.id}-{'deleted' if do == 'compensate' else outcome}"
            db.outbox.append({"eid": f"{self.id}.{db.next_event}", "event": event, "saga": saga, **body})
            db.next_event += 1
            self.flush_outbox()
        self.lab.witness("commit", node=self.id, saga=saga, do=do, outcome=outcome)
        self.answer(do, saga, reply_to, eid)

    def answer(self, do: str, saga: str, reply_to: str | None, eid: str | None) -> None:
        if reply_to is None:
            return  # the merchant's own request (choreography): nobody waits on it
        if eid is not None:
            self.send(reply_to, "ACK", eid=eid)  # tell the bus the event is handled
        elif do == "compensate":
            self.send(reply_to, "COMPENSATED", saga=saga)
        else:
            self.send(reply_to, "CREATED" if self.db.done[saga] == "created" else "FAILED", saga=saga)

    def flush_outbox(self) -> None:
        """Send every event still in the outbox to the bus, until it confirms each."""
        for event in self.db.outbox:
            self.send("bus", "PUBLISH", **event)
        if self.db.outbox:
            self.after(self.lab.params["timeout"], self.flush_outbox, key="outbox")


# == Orchestration: the orchestrator and its saga log ==============================================


@dataclass
class Saga:
    """A saga in flight, as the orchestrator knows it: its log, replayed."""

    id: str
    product: dict
    phase: str = "forward"  # forward, then compensating if a step fails
    todo: list[str] = field(default_factory=lambda: list(STEPS))  # the steps still to run (or undo), next first
    attempt: int = 0  # sends of the next step's command so far


class Orchestrator(Node):
    """Runs each saga step by step, writing every decision to its saga log before acting on it."""

    def boot(self) -> None:
        self.role = "coordinator"
        # The saga log: on disk, or (log=memory) in memory, so that a crash forgets every saga in flight.
        self.log = self.disk.setdefault("log", []) if self.lab.params["log"] == "durable" else []
        self.active: dict[str, Saga] = {}
        for rec in self.log:  # recovery: rebuild every unfinished saga from the log, record by record ...
            self.apply(rec)
        for saga in self.active.values():  # ... and carry on with each
            self.lab.emit("saga-resumed", node=self.id, saga=saga.id, phase=saga.phase, at=saga.todo[0])
            self.after(0, self.go_on, saga.id, key=("go", saga.id))

    def view(self) -> dict:
        active = list(self.active) if self.status != "down" else []
        return {"log": self.log[-8:], "log_size": len(self.log), "active": active,
                "label": f"log {len(self.log)} · {len(active)} active"}

    def write(self, saga_id: str, rec: str, **fields) -> None:
        """Append a decision to the saga log (on disk when `log` is durable), then apply it: the log is the state."""
        self.log.append({"saga": saga_id, "rec": rec, **fields})
        self.apply(self.log[-1])
        shown = {k: v for k, v in fields.items() if k != "product"}
        self.lab.emit("log", node=self.id, saga=saga_id, rec=rec, **shown)

    def apply(self, rec: dict) -> None:
        saga = self.active.get(rec["saga"])
        if rec["rec"] == "begin":
            self.active[rec["saga"]] = Saga(rec["saga"], rec["product"])
        elif rec["rec"] in ("done", "undone"):
            saga.todo.pop(0)
        elif rec["rec"] == "compensate":
            saga.phase, saga.todo, saga.attempt = "compensating", list(rec["plan"]), 0
        elif rec["rec"] == "end":
            self.active.pop(rec["saga"], None)

    def progress(self, saga: Saga, service: str, do: str, status: str, attempt: int = 0) -> None:
        self.lab.emit("step", saga=saga.id, service=service, do=do, status=status,
                      **({"attempt": attempt} if attempt > 1 else {}))

    # -- the saga ----------------------------------------------------------------------------
    def start(self, saga_id: str, product: dict) -> None:
        self.write(saga_id, "begin", product=product)
        self.act(self.active[saga_id])

    def go_on(self, saga_id: str) -> None:
        if saga_id in self.active:
            self.act(self.active[saga_id])

    def act(self, saga: Saga) -> None:
        """Send the saga's next command and wait for its answer."""
        saga.attempt += 1
        service, timeout = saga.todo[0], self.lab.params["timeout"]
        if saga.phase == "forward":
            self.progress(saga, service, "create", "running", saga.attempt)
            command, body = "CREATE", saga.product
        else:
            self.progress(saga, service, "compensate", "running", saga.attempt)
            command, body, timeout = "COMPENSATE", {}, timeout * min(saga.attempt, 4)  # back off
        self.request(service, command, awaiting=("wait", saga.id), timeout=timeout,
                     on_timeout=partial(self.no_answer, saga), saga=saga.id, **body)

    def no_answer(self, saga: Saga) -> None:
        service = saga.todo[0]
        if saga.phase == "forward" and saga.attempt > self.lab.params["retries"]:
            # No answer after every retry: the step may or may not have run, so it is undone too.
            self.progress(saga, service, "create", "timeout")
            self.compensate(saga, f"{service} did not answer", maybe=service)
        elif saga.phase == "compensating" and saga.attempt >= COMP_ATTEMPTS:
            self.progress(saga, service, "compensate", "failed")
            self.finish(saga, "failed", f"could not undo {service}")  # for a human to repair
        else:
            self.lab.emit("retry", saga=saga.id, service=service)
            self.act(saga)

    def awaited(self, msg, phase: str) -> Saga | None:
        """The saga this answer is for, if it is the one awaited now (else: late or repeated, dealt with already)."""
        saga = self.active.get(msg.body["saga"])
        if saga is None or saga.phase != phase or msg.src != saga.todo[0]:
            self.lab.count("stale_replies")
            return None
        self.answered(("wait", saga.id))
        saga.attempt = 0
        return saga

    @on("CREATED")
    def step_done(self, msg) -> None:
        if saga := self.awaited(msg, "forward"):
            self.write(saga.id, "done", service=msg.src)
            self.progress(saga, msg.src, "create", "done")
            self.next_step(saga)

    @on("FAILED")
    def step_failed(self, msg) -> None:
        if saga := self.awaited(msg, "forward"):
            self.progress(saga, msg.src, "create", "failed")
            self.compensate(saga, f"{msg.src} failed")

    @on("COMPENSATED")
    def step_undone(self, msg) -> None:
        if saga := self.awaited(msg, "compensating"):
            self.write(saga.id, "undone", service=msg.src)
            self.progress(saga, msg.src, "compensate", "done")
            self.next_step(saga)

    def compensation_plan(self, executed: list[str]) -> list[str]:
        """Undo the executed steps newest first."""
        return list(reversed(executed))

    def compensate(self, saga: Saga, why: str, maybe: str | None = None) -> None:
        """Undo the steps that ran, and `maybe`, one that may have run."""
        executed = [s for s in STEPS if s not in saga.todo or s == maybe]
        self.write(saga.id, "compensate", plan=self.compensation_plan(executed))
        self.lab.emit("saga", saga=saga.id, status="compensating", why=why)
        self.next_step(saga)

    def next_step(self, saga: Saga) -> None:
        if saga.todo:
            self.act(saga)
        else:
            self.finish(saga, "completed" if saga.phase == "forward" else "compensated")

    def finish(self, saga: Saga, status: str, why: str = "") -> None:
        self.write(saga.id, "end", status=status)
        self.lab.emit("saga", saga=saga.id, status=status, **({"why": why} if why else {}))


# == Choreography: the event bus ===================================================================


class Bus(Node):
    """A message broker: logs each published event and delivers it to every subscriber until acknowledged."""

    def boot(self) -> None:
        self.role = "bus"
        store = self.disk if self.lab.params["log"] == "durable" else {}  # memory: a crash loses undelivered events
        self.log: list[dict] = store.setdefault("log", [])
        self.acked: set[str] = store.setdefault("acked", set())  # "<eid>><subscriber>" of each delivery done
        self.unacked: dict[str, int] = {}  # each delivery in progress -> how many times it was sent
        for event in self.log:  # recovery: redeliver whatever was not acknowledged
            self.fan_out(event)

    def view(self) -> dict:
        pending = list(self.unacked) if self.status != "down" else []
        return {"log": [{k: e[k] for k in ("eid", "event", "saga")} for e in self.log[-8:]],
                "log_size": len(self.log), "pending": pending,
                "label": f"log {len(self.log)} · {len(pending)} unacked"}

    @on("PUBLISH")
    def store(self, msg) -> None:
        event = dict(msg.body)
        if all(e["eid"] != event["eid"] for e in self.log):  # a re-sent publish is stored once
            self.log.append(event)
            self.lab.emit("event", eid=event["eid"], event=event["event"], saga=event["saga"], src=msg.src)
            self.fan_out(event)
        self.send(msg.src, "PUBLISHED", eid=event["eid"])

    def fan_out(self, event: dict) -> None:
        for sub in self.lab.subscribers.get(event["event"], []):
            key = f"{event['eid']}>{sub}"
            if key not in self.acked and key not in self.unacked:
                self.unacked[key] = 0
                self.after(0, self.deliver, key, event, sub, key=("deliver", key))

    def deliver(self, key: str, event: dict, sub: str) -> None:
        """At least once: send the event again (backing off) until the subscriber acknowledges it."""
        if self.unacked[key]:
            self.lab.count("redeliveries")
        self.unacked[key] += 1
        wait = self.lab.params["timeout"] * min(self.unacked[key], 4)
        self.request(sub, "DELIVER", awaiting=("deliver", key), timeout=wait,
                     on_timeout=partial(self.deliver, key, event, sub), **event)

    @on("ACK")
    def acknowledged(self, msg) -> None:
        key = f"{msg.body['eid']}>{msg.src}"
        if self.answered(("deliver", key)):
            self.acked.add(key)
            del self.unacked[key]


# == The lab: each saga as an observer sees it, and the checks =====================================


@dataclass
class Timeline:
    """One saga as the page shows it, pieced together from what the run does."""

    id: str
    product: str
    status: str = "running"
    steps: list[dict] = field(default_factory=list)  # steps and compensations: service, do, status, t, attempts, end
    started: float = 0.0
    ended: float | None = None
    why: str = ""
    created: list[str] = field(default_factory=list)  # services whose create committed, in order
    undone: list[str] = field(default_factory=list)  # services whose compensation committed, in order
    progress: float = 0.0  # when anything last happened to it (a saga stuck too long breaks a check)

    def view(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "progress"}


class SagaLab(Lab):
    slug = "saga"
    title = "Saga"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate (a service
    # away longer than the orchestrator's retries ends a saga failed, by design: completed-or-compensated shows it).
    INVARIANTS = {"reverse-order": ("*",), "resumes-from-log": ("durable",), "no-duplicate-rows": ("idempotent=on",)}
    PARAMS = (
        Param("mode", "orchestration", "Who drives the steps: an orchestrator with a saga log, or services "
              "reacting to events on a bus.", choices=("orchestration", "choreography")),
        Param("idempotent", True, "Handlers recognise a repeated request and do not insert a second row "
              "(off: every delivery inserts)."),
        Param("log", "durable", "Where the orchestrator's saga log (or the bus's event log) lives.",
              choices=("durable", "memory")),
        Param("timeout", 1000, "How long (ms) the orchestrator or the bus waits for an answer before sending "
              "again.", lo=100, hi=10_000),
        Param("retries", 2, "Orchestration: how many times a step is re-sent before it counts as failed.", lo=0, hi=10),
        Param("work_ms", 300, "How long (ms) each service's local transaction takes.", lo=0, hi=5000),
    )
    LATENCY = (20.0, 50.0)

    def setup(self) -> None:
        self.mode, self.idempotent = self.params["mode"], self.params["idempotent"]
        self.subscribers = {event: list(subs) for event, subs in SUBSCRIBERS.items()}
        self.sagas: dict[str, Timeline] = {}
        self.step_faults: dict[str, tuple[str, int]] = {}  # service -> (always | next | percent, n)
        self.in_hand: list[str] = []  # the sagas (or the bus's deliveries) unfinished when the hub crashed
        self.calm_since = 0.0  # the last time a node was away or the network was cut
        hub = Orchestrator(self, "orchestrator") if self.mode == "orchestration" else Bus(self, "bus")
        self.hub = self.add_node(hub)
        for service in STEPS:
            self.add_node(Service(self, service))
        self.metrics.update({"sagas": 0, "completed": 0, "compensated": 0, "failed": 0, "retries": 0,
                             "duplicates_ignored": 0, "stale_replies": 0, "redeliveries": 0})
        self.add_check("completed-or-compensated",
                       "Every saga ends completed (one row in each service) or fully compensated (no row left): "
                       "never a product without a price. (A compensation whose service stays away longer than its "
                       "retries ends the saga failed, for a human to repair: this check shows it, so it is no "
                       "invariant under a long outage.)")
        self.add_check("reverse-order", "Compensations undo the executed steps in reverse order.")
        self.add_check("resumes-from-log",
                       "A restarted orchestrator (choreography: the bus) picks up every unfinished saga from its log.")
        self.add_check("no-duplicate-rows",
                       "A repeated or duplicated message creates no second row (idempotent handlers).")
        self.checks["reverse-order"].detail = "no compensation yet"
        self.checks["resumes-from-log"].detail = f"no restart of the {self.hub.id} yet"
        self.checks["no-duplicate-rows"].detail = "no repeated message yet"
        self.every(AUDIT_EVERY, self.audit)

    # -- what the page shows ----------------------------------------------------------
    def view(self) -> dict:
        return {
            "mode": self.mode,
            "sagas": [s.view() for s in list(self.sagas.values())[-12:]],
            "step_faults": {s: self.fault_text(s) for s in STEPS if s in self.step_faults},
            "subscriptions": self.subscribers if self.mode == "choreography" else {},
            "edges": [[self.hub.id, s] for s in STEPS],
        }

    def fault_text(self, service: str) -> str:
        how, n = self.step_faults.get(service, ("", 0))
        return {"always": "always", "next": f"next {n}", "percent": f"{n}%"}.get(how, "")

    # -- the timelines, from the run's events ---------------------------------------------
    @observe("saga")
    def saga_status(self, event: dict) -> None:
        saga = self.sagas[event["saga"]]
        saga.status, saga.progress = event["status"], self.now
        saga.why = event.get("why", saga.why)
        if saga.status in FINAL:
            saga.ended = round(self.now, 3)
            self.count(saga.status)
            self.audit_saga(saga)
            self.note_totals()

    @observe("step")
    def step_status(self, event: dict) -> None:
        saga, key = self.sagas[event["saga"]], (event["service"], event["do"])
        saga.progress = self.now
        step = next((s for s in reversed(saga.steps) if (s["service"], s["do"]) == key), None)
        if step is None:
            step = {"service": event["service"], "do": event["do"], "t": event["t"], "attempts": 0}
            saga.steps.append(step)
        step.update(status=event["status"], end=event["t"])
        if step["status"] == "running" and self.mode == "orchestration":
            step["attempts"] = event.get("attempt", 1)  # the orchestrator's sends (in choreography nobody counts)

    @observe("retry", "duplicate-ignored")
    def counted(self, event: dict) -> None:
        self.count("retries" if event["kind"] == "retry" else "duplicates_ignored")

    @observe("commit")
    def committed(self, fact: dict) -> None:
        """A service committed a local transaction: a step ran (once?) or was undone (in reverse order?)."""
        saga, service = self.sagas[fact["saga"]], fact["node"]
        saga.progress = self.now
        if fact["outcome"] == "created":
            if service not in saga.created:
                saga.created.append(service)
            rows = self.row_counts(saga.id)[service]
            if rows > 1:
                self.fail("no-duplicate-rows",
                          f"{service} holds {rows} rows for {saga.id}: a repeated message was applied twice")
            else:
                self.note("no-duplicate-rows", f"{self.metrics['duplicates_ignored']} repeats recognised and ignored")
        elif fact["outcome"] == "compensated":
            if service not in saga.undone:
                saga.undone.append(service)
            undone, ran = [s for s in saga.undone if s in saga.created], ", ".join(saga.created)
            if undone != list(reversed(saga.created))[:len(undone)]:
                self.fail("reverse-order", f"{saga.id}: undid {', '.join(undone)} but the steps ran {ran}")
            else:
                self.note("reverse-order", f"{saga.id}: undid {', '.join(undone) or 'nothing'} (ran {ran})")

    # -- choreography: nobody is in charge, so the lab follows each saga from the services' commits
    @observe("begin")
    def choreography_step_begins(self, fact: dict) -> None:
        if self.mode == "choreography":
            self.emit("step", saga=fact["saga"], service=fact["node"], do=fact["do"], status="running")

    @observe("commit")
    def choreography_progress(self, fact: dict) -> None:
        if self.mode != "choreography":
            return
        service, saga, do, outcome = fact["node"], fact["saga"], fact["do"], fact["outcome"]
        self.emit("step", saga=saga, service=service, do=do, status="failed" if outcome == "failed" else "done")
        if outcome == "failed" and service == STEPS[0]:
            self.settle(saga, "compensated", "product failed: nothing to undo")
        elif outcome == "failed":
            self.settle(saga, "compensating", f"{service} failed")
        elif do == "create" and service == STEPS[-1]:
            self.settle(saga, "completed")
        elif do == "compensate" and service == STEPS[0]:
            self.settle(saga, "compensated")

    def settle(self, saga: str, status: str, why: str = "") -> None:
        if self.sagas[saga].status not in FINAL:
            self.emit("saga", saga=saga, status=status, **({"why": why} if why else {}))

    # -- checks ----------------------------------------------------------------------------
    def row_counts(self, saga: str) -> dict[str, int]:
        return {s: sum(r["saga"] == saga for r in self.nodes[s].db.rows) for s in STEPS}

    def audit_saga(self, saga: Timeline) -> None:
        counts = self.row_counts(saga.id)
        # A failed saga with no row left is judged by the rows, not by the orchestrator's word: its
        # COMPENSATE did run, only the answers were lost, so nothing is left half done.
        if saga.status == "failed" and any(counts.values()):
            self.fail("completed-or-compensated", f"{saga.id} failed ({saga.why}): rows left {counts}")
        elif saga.status == "completed" and any(c != 1 for c in counts.values()):
            self.fail("completed-or-compensated", f"{saga.id} completed but rows are {counts} (want one each)")
        elif saga.status == "compensated" and any(counts.values()):
            left = ", ".join(s for s, c in counts.items() if c)
            self.fail("completed-or-compensated", f"{saga.id} compensated but {left} still holds a row")

    def audit(self) -> None:
        calm = all(n.status == "up" for n in self.nodes.values()) and not self.net.partition and not any(
            link.cut or link.loss for link in self.net.links.values())
        if not calm:
            self.calm_since = self.now  # a saga may wait as long as a node is away
        stuck_after = max(15_000, 8 * self.params["timeout"])
        for saga in self.sagas.values():
            if saga.status in FINAL:
                self.audit_saga(saga)
            elif self.now - max(saga.progress, self.calm_since) > stuck_after:
                self.fail("completed-or-compensated", f"{saga.id} stuck {saga.status} for {stuck_after / 1000:.0f}s "
                                                      f"with rows {self.row_counts(saga.id)}")
        self.note_totals()

    def note_totals(self) -> None:
        in_flight = sum(s.status not in FINAL for s in self.sagas.values())
        self.note("completed-or-compensated",
                  f"{self.metrics['completed']} completed, {self.metrics['compensated']} compensated, "
                  f"{in_flight} in flight"
                  + (f", {self.metrics['failed']} given up by the {self.hub.id} with no row left (its "
                     "compensation ran; the answers were lost)" if self.metrics["failed"] else ""))

    def after_fault(self, fault: str, node_id: str | None) -> None:
        if node_id != self.hub.id:
            return
        what = "sagas" if self.mode == "orchestration" else "deliveries"
        if fault == "crash":  # what it had in hand, and must pick up again from its log after a restart
            self.in_hand = list(self.hub.active if what == "sagas" else self.hub.unacked)
        elif fault == "restart":
            kept = set(self.hub.active) if what == "sagas" else {*self.hub.unacked, *self.hub.acked}
            lost = [k for k in self.in_hand if k not in kept]
            if lost:
                self.fail("resumes-from-log", f"restart forgot {what} {', '.join(lost)} (the log was in memory)")
            else:
                self.note("resumes-from-log", f"restart resumed {len(self.in_hand)} unfinished {what} from the log")

    # -- faults the learner injects into steps -------------------------------------------
    def step_fails(self, service: str) -> bool:
        """Does this attempt of the service's step fail (an injected failure)?"""
        how, n = self.step_faults.get(service, ("", 0))
        if how == "percent":
            return self.rng.random() * 100 < n
        if how == "next" and n > 1:
            self.step_faults[service] = ("next", n - 1)
        elif how == "next":
            del self.step_faults[service]  # that was the last one
        return how != ""

    # -- lab actions -------------------------------------------------------------------------
    @action("create-product", help="A merchant adds a product: a saga creates its product, price and metadata rows.")
    def do_create_product(self) -> None:
        entry = self.hub if self.mode == "orchestration" else self.nodes["product"]
        if entry.status != "up":
            raise SimError(f"{entry.id} is {entry.status}, so the request cannot be taken; restart or resume it first")
        n = len(self.sagas) + 1
        saga = f"s{n}"
        product = {"product": f"p{n}", "name": NAMES[(n - 1) % len(NAMES)],
                   "price": self.rng.randint(5, 99), "meta": COLOURS[self.rng.randrange(len(COLOURS))]}
        self.sagas[saga] = Timeline(saga, product["product"], started=round(self.now, 3), progress=self.now)
        self.count("sagas")
        self.emit("saga", saga=saga, status="running", product=product["product"])
        if self.mode == "orchestration":
            self.hub.start(saga, product)
        else:
            entry.handle("create", saga, product, None)

    @action("fail-step", Arg("service", "word", choices=STEPS), Arg("how", "text"),
            Arg("n", "int", optional=True, lo=1, hi=1000),
            help="Make a service's step fail: always, next N (the next N attempts), or a percent of attempts "
                 "(e.g. 30).")
    def do_fail_step(self, service: str, how: str, n: int | None) -> None:
        if how == "always" and n is None:
            fault = ("always", 0)
        elif how == "next":
            fault = ("next", n or 1)
        elif how.isdigit() and n is None and 0 <= int(how) <= 100:
            fault = ("percent", int(how))
        else:
            raise SimError("use fail-step <service> always | next N | <percent>, "
                           "e.g. fail-step price next 2 or fail-step price 30")
        self.step_faults[service] = fault
        self.emit("fail-step", service=service, fails=self.fault_text(service))

    @action("clear-faults",
            help="Stop every injected step failure (network and node faults stay: use heal, restart, slow 0).")
    def do_clear_faults(self) -> None:
        self.step_faults = {}
        self.emit("clear-faults")
