"""Saga: one business transaction spread over services that each own a database.

A merchant adds a product.  Three services each keep their own table:
`product` (the product row), `price` (its price) and `metadata` (its
tags).  No database transaction can span all three, yet a product must
never end up without a price.  A saga (Garcia-Molina and Salem, 1987) runs
the work as a sequence of local transactions

    create product -> create price -> create metadata

and, when a step fails, undoes the steps already done with *compensating*
transactions, in reverse order:

    create product -> create price -> (metadata fails) -> delete price -> delete product

Two ways to drive the steps (param `mode`):

Orchestration
  * the `orchestrator` writes every decision to a durable saga log
    (begin, step done, compensate [plan], step undone, end) *before* acting;
  * it sends CREATE to each service in turn and waits for CREATED or FAILED;
  * no answer within `timeout`: it sends the same CREATE again (up to
    `retries` times), then treats the step as failed -- and, since the step
    may have run anyway, compensates it too;
  * FAILED or give-up: it sends COMPENSATE to the done steps, newest first,
    each one only after the previous is acknowledged, retrying until it is;
  * after a crash it rebuilds its state from the log and carries on.

Choreography
  * nobody is in charge: services react to events on a `bus`.  product
    publishes product-created, price reacts and publishes price-created,
    metadata reacts and publishes metadata-created (the saga is done);
  * a failed step publishes <service>-failed; the service before it reacts by
    deleting its row and publishing <service>-deleted, and so on back to the
    start: the chain of compensations walks backwards by itself;
  * the bus keeps events in a durable log and redelivers each one until the
    subscriber acknowledges it (at-least-once delivery), and services put the
    events they publish in an outbox stored with their rows, so an event is
    never lost between "row written" and "event published".

Both ways deliver some messages more than once (retries, redeliveries, a
duplicated packet).  That is safe only because every handler is idempotent
(param `idempotent`): a service remembers, per saga, what it already did
and answers a repeat with the same result instead of inserting another row,
and a compensation leaves a tombstone so that a late CREATE is ignored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import partial

from .kernel import Arg, Lab, Node, Param, SimError, action, observe, on

STEPS = ("product", "price", "metadata")  # the saga's steps, in order
COMP_ATTEMPTS = 8  # orchestrator: tries per compensation before the saga is "failed"
AUDIT_EVERY = 500  # ms between the checks' sweeps
FINAL = ("completed", "compensated", "failed")

# Choreography: who reacts to which event, and how.
SUBSCRIBERS = {
    "product-created": ["price"],
    "price-created": ["metadata"],
    "metadata-failed": ["price"],  # undo price ...
    "price-failed": ["product"],  # ... or undo product
    "price-deleted": ["product"],  # ... and after price, product
}

NAMES = ("desk lamp", "tea kettle", "bike bell", "wool scarf", "chess set", "yoga mat", "cast-iron pan", "backpack")
COLOURS = ("red", "blue", "green", "black", "white", "oak")


def reaction(event: str) -> str:
    """What a subscriber does with an event: failures and deletions ask it to undo."""
    return "compensate" if event.endswith(("-failed", "-deleted")) else "create"


# --------------------------------------------------------------------------
# Services: product, price, metadata
# --------------------------------------------------------------------------


@dataclass
class Database:
    """A service's own database: its rows, what it did per saga, and the
    events it still has to publish (written in the same transaction)."""

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
        for saga in self.db.accepted:  # a request accepted before a crash: do it now
            self.after(0, self.redo_accepted, saga, key=("accepted", saga))

    def view(self) -> dict:
        rows, fault = self.db.rows, self.lab.fault_text(self.id)
        label = f"{len(rows)} row{'s' if len(rows) != 1 else ''}" + (f" · fails {fault}" if fault else "")
        return {"rows": rows, "outbox": len(self.db.outbox), "fault": fault, "label": label}

    # -- requests ----------------------------------------------------------------
    @on("CREATE", "COMPENSATE")
    def command(self, msg) -> None:  # from the orchestrator
        self.handle(msg.type.lower(), msg.body["saga"], msg.body, reply_to=msg.src)

    @on("DELIVER")
    def delivered(self, msg) -> None:  # an event from the bus
        self.handle(reaction(msg.body["event"]), msg.body["saga"], msg.body, reply_to=msg.src, eid=msg.body["eid"])

    @on("PUBLISHED")
    def published(self, msg) -> None:  # the bus has the event: drop it from the outbox
        self.db.outbox = [e for e in self.db.outbox if e["eid"] != msg.body["eid"]]

    def redo_accepted(self, saga: str) -> None:
        if saga in self.db.accepted:
            self.handle("create", saga, self.db.accepted[saga], reply_to=None)

    def handle(self, do: str, saga: str, body: dict, reply_to: str | None, eid: str | None = None) -> None:
        if self.lab.idempotent:
            if (do, saga) in self.working:  # the same request is already being processed: its answer will follow
                return self.repeat_ignored(saga, do)
            if self.already(do, saga):
                self.repeat_ignored(saga, do)
                return self.answer(do, saga, self.db.done[saga], reply_to, eid)
        if reply_to is None:  # the merchant's request is stored first: nobody would re-send it
            self.db.accepted[saga] = dict(body)
        # Start the local transaction; it commits after `work_ms`.
        self.working.add((do, saga))
        self.lab.witness("begin", node=self.id, saga=saga, do=do)
        fields = {k: body[k] for k in ("product", "name", "price", "meta") if k in body}
        self.after(self.lab.params["work_ms"], self.commit, do, saga, fields, reply_to, eid)

    def already(self, do: str, saga: str) -> bool:
        """Idempotency: has this saga's request been decided here already?"""
        state = self.db.done.get(saga)
        return state is not None if do == "create" else state == "compensated"

    def repeat_ignored(self, saga: str, do: str) -> None:
        self.lab.emit("duplicate-ignored", node=self.id, saga=saga, do=do)

    def commit(self, do: str, saga: str, body: dict, reply_to: str | None, eid: str | None) -> None:
        """The local transaction: change the rows, record the outcome and
        queue the event to publish, all in one write to this service's disk."""
        db = self.db
        self.working.discard((do, saga))
        if reply_to is None:
            db.accepted.pop(saga, None)
        if self.lab.idempotent and self.already(do, saga):
            self.repeat_ignored(saga, do)
            return self.answer(do, saga, db.done[saga], reply_to, eid)
        if do == "create":
            if self.lab.step_fails(self.id):
                db.done[saga] = "failed"
                self.lab.emit("step-failed", node=self.id, saga=saga)
                self.publish(f"{self.id}-failed", saga, body)
            else:
                row = {"row": db.next_row, "saga": saga, "product": body.get("product"), "value": self.value(body)}
                db.next_row += 1
                db.rows.append(row)
                db.done[saga] = "created"
                self.lab.emit("row", node=self.id, op="insert", saga=saga, row=row["row"], value=row["value"])
                self.publish(f"{self.id}-created", saga, body)
            outcome = db.done[saga]
        else:
            mine = [r for r in db.rows if r["saga"] == saga]  # delete every row of the saga ...
            if not self.lab.idempotent:
                mine = mine[:1]  # ... where a naive delete takes one
            for row in mine:
                db.rows.remove(row)
                self.lab.emit("row", node=self.id, op="delete", saga=saga, row=row["row"])
            outcome = "compensated" if self.lab.idempotent or mine else "nothing"
            if outcome == "compensated":
                db.done[saga] = "compensated"  # a tombstone: a late CREATE is now ignored
            self.publish(f"{self.id}-deleted", saga, body)
        self.lab.witness("commit", node=self.id, saga=saga, do=do, outcome=outcome)
        self.answer(do, saga, db.done.get(saga, "compensated"), reply_to, eid)

    def value(self, body: dict) -> str:
        return {"product": str(body.get("name", "?")), "price": f"${body.get('price', 0)}"}.get(
            self.id, f"colour={body.get('meta', '?')}")

    def answer(self, do: str, saga: str, outcome: str, reply_to: str | None, eid: str | None) -> None:
        if reply_to is None:
            return  # the merchant's own request (choreography): nobody waits on it
        if eid is not None:
            self.send(reply_to, "ACK", eid=eid)  # tell the bus the event is handled
        elif do == "create":
            self.send(reply_to, "CREATED" if outcome == "created" else "FAILED", saga=saga)
        else:
            self.send(reply_to, "COMPENSATED", saga=saga)

    # -- choreography: the outbox -------------------------------------------------
    def publish(self, event: str, saga: str, body: dict) -> None:
        if self.lab.mode != "choreography":
            return
        eid = f"{self.id}.{self.db.next_event}"
        self.db.next_event += 1
        self.db.outbox.append({"eid": eid, "event": event, "saga": saga, **body})
        self.flush_outbox()

    def flush_outbox(self) -> None:
        """Send every event still in the outbox to the bus, until it confirms each."""
        for event in self.db.outbox:
            self.send("bus", "PUBLISH", **event)
        if self.db.outbox:
            self.after(self.lab.params["timeout"], self.flush_outbox, key="outbox")


# --------------------------------------------------------------------------
# Orchestration: the orchestrator and its saga log
# --------------------------------------------------------------------------


@dataclass
class Saga:
    """A saga in flight, as the orchestrator knows it (rebuilt from its log after a crash)."""

    id: str
    product: dict
    phase: str = "forward"  # forward, then compensating if a step fails
    step: int = 0  # forward: the step being run (index in STEPS)
    plan: list[str] = field(default_factory=list)  # compensating: the steps still to undo, next first
    attempt: int = 0  # sends of the current command so far

    @property
    def current(self) -> str:
        """The service whose answer the orchestrator waits for."""
        return STEPS[self.step] if self.phase == "forward" else self.plan[0]


class Orchestrator(Node):
    """Runs each saga step by step, writing every decision to its saga log before acting on it."""

    def boot(self) -> None:
        self.role = "coordinator"
        # The saga log: on disk, or (log=memory) in memory, so that a crash forgets every saga in flight.
        self.log = self.disk.setdefault("log", []) if self.lab.params["log"] == "durable" else []
        self.active: dict[str, Saga] = {}
        self.replay_log()
        if self.restarted:
            for saga in self.active.values():
                self.lab.emit("saga-resumed", node=self.id, saga=saga.id, phase=saga.phase, at=saga.current)
                self.after(0, self.go_on, saga.id, key=("go", saga.id))

    def view(self) -> dict:
        active = list(self.active) if self.status != "down" else []
        return {"log": self.log[-8:], "log_size": len(self.log), "active": active,
                "label": f"log {len(self.log)} · {len(active)} active"}

    def replay_log(self) -> None:
        """Recovery: rebuild every unfinished saga from the log, record by record."""
        for rec in self.log:
            saga = self.active.get(rec["saga"])
            if rec["rec"] == "begin":
                self.active[rec["saga"]] = Saga(rec["saga"], rec["product"])
            elif rec["rec"] == "done":
                saga.step += 1
            elif rec["rec"] == "compensate":
                saga.phase, saga.plan = "compensating", list(rec["plan"])
            elif rec["rec"] == "undone":
                saga.plan.pop(0)
            elif rec["rec"] == "end":
                self.active.pop(rec["saga"], None)

    def write(self, saga: Saga, rec: str, **fields) -> None:
        """Append to the saga log (on disk when `log` is durable) before acting."""
        self.log.append({"saga": saga.id, "rec": rec, **fields})
        shown = {k: (list(v) if isinstance(v, list) else v) for k, v in fields.items() if k != "product"}
        self.lab.emit("log", node=self.id, saga=saga.id, rec=rec, **shown)

    # -- what the orchestrator tells the world -----------------------------------------
    def progress(self, saga: Saga, do: str, status: str, attempt: int = 0) -> None:
        self.lab.emit("step", saga=saga.id, service=saga.current, do=do, status=status,
                      **({"attempt": attempt} if attempt > 1 else {}))

    def announce(self, saga: Saga, status: str, why: str = "") -> None:
        self.lab.emit("saga", saga=saga.id, status=status, **({"why": why} if why else {}))

    # -- the saga ----------------------------------------------------------------------------
    def start(self, saga_id: str, product: dict) -> None:
        saga = Saga(saga_id, product)
        self.write(saga, "begin", product=product)
        self.active[saga_id] = saga
        self.act(saga)

    def go_on(self, saga_id: str) -> None:
        if saga_id in self.active:
            self.act(self.active[saga_id])

    def act(self, saga: Saga) -> None:
        """Send the saga's current command and wait for its answer."""
        saga.attempt += 1
        timeout, wait = self.lab.params["timeout"], ("wait", saga.id)
        if saga.phase == "forward":
            self.progress(saga, "create", "running", saga.attempt)
            self.request(saga.current, "CREATE", awaiting=wait, timeout=timeout,
                         on_timeout=partial(self.no_answer, saga), saga=saga.id, **saga.product)
        else:
            self.progress(saga, "compensate", "running", saga.attempt)
            self.request(saga.current, "COMPENSATE", awaiting=wait, timeout=timeout * min(saga.attempt, 4),  # back off
                         on_timeout=partial(self.no_answer, saga), saga=saga.id)

    def no_answer(self, saga: Saga) -> None:
        service = saga.current
        if saga.phase == "forward" and saga.attempt > self.lab.params["retries"]:
            # No answer after every retry: the step may or may not have run, so it is undone too.
            self.progress(saga, "create", "timeout")
            self.compensate(saga, f"{service} did not answer", maybe=service)
        elif saga.phase == "compensating" and saga.attempt >= COMP_ATTEMPTS:
            self.progress(saga, "compensate", "failed")
            self.finish(saga, "failed", f"could not undo {service}")  # for a human to repair
        else:
            self.lab.emit("retry", saga=saga.id, service=service)
            self.act(saga)

    def awaited(self, msg, phase: str) -> Saga | None:
        """The saga this answer is for, if it is the answer awaited now (else it is
        a late or repeated one, already dealt with)."""
        saga = self.active.get(msg.body["saga"])
        if saga is None or saga.phase != phase or msg.src != saga.current:
            self.lab.count("stale_replies")
            return None
        self.answered(("wait", saga.id))
        saga.attempt = 0
        return saga

    @on("CREATED")
    def step_done(self, msg) -> None:
        if saga := self.awaited(msg, "forward"):
            self.write(saga, "done", service=saga.current)
            self.progress(saga, "create", "done")
            saga.step += 1
            if saga.step == len(STEPS):
                self.finish(saga, "completed")
            else:
                self.act(saga)

    @on("FAILED")
    def step_failed(self, msg) -> None:
        if saga := self.awaited(msg, "forward"):
            self.progress(saga, "create", "failed")
            self.compensate(saga, f"{saga.current} failed")

    @on("COMPENSATED")
    def step_undone(self, msg) -> None:
        if saga := self.awaited(msg, "compensating"):
            self.write(saga, "undone", service=saga.current)
            self.progress(saga, "compensate", "done")
            saga.plan.pop(0)
            self.next_compensation(saga)

    def compensation_plan(self, executed: list[str]) -> list[str]:
        """Undo the executed steps newest first."""
        return list(reversed(executed))

    def compensate(self, saga: Saga, why: str, maybe: str | None = None) -> None:
        plan = self.compensation_plan(list(STEPS[:saga.step]) + ([maybe] if maybe else []))
        self.write(saga, "compensate", plan=list(plan))
        saga.phase, saga.plan, saga.attempt = "compensating", list(plan), 0
        self.announce(saga, "compensating", why)
        self.next_compensation(saga)

    def next_compensation(self, saga: Saga) -> None:
        if saga.plan:
            self.act(saga)
        else:
            self.finish(saga, "compensated")

    def finish(self, saga: Saga, status: str, why: str = "") -> None:
        self.write(saga, "end", status=status)
        self.active.pop(saga.id)
        self.announce(saga, status, why)


# --------------------------------------------------------------------------
# Choreography: the event bus
# --------------------------------------------------------------------------


@dataclass
class Delivery:  # an event on its way to one subscriber
    event: dict
    to: str
    attempt: int = 0


class Bus(Node):
    """A message broker: stores each published event in its log and delivers
    it to every subscriber until that subscriber acknowledges it."""

    def boot(self) -> None:
        self.role = "bus"
        if self.lab.params["log"] == "durable":
            self.log = self.disk.setdefault("log", [])
            self.acked = self.disk.setdefault("acked", {})
        else:
            self.log, self.acked = [], {}  # memory only: a crash loses undelivered events
        self.known = {e["eid"]: True for e in self.log}
        self.unacked: dict[str, Delivery] = {}  # "<eid>><subscriber>" -> delivery in progress
        for event in self.log:  # recovery: redeliver whatever was not acknowledged
            self.fan_out(event)

    def view(self) -> dict:
        pending = list(self.unacked) if self.status != "down" else []
        return {"log": [{k: e[k] for k in ("eid", "event", "saga")} for e in self.log[-8:]],
                "log_size": len(self.log), "pending": pending,
                "label": f"log {len(self.log)} · {len(pending)} unacked"}

    @on("PUBLISH")
    def store(self, msg) -> None:
        if msg.body["eid"] not in self.known:  # a re-sent publish is stored once
            event = dict(msg.body)
            self.log.append(event)
            self.known[event["eid"]] = True
            self.lab.emit("event", eid=event["eid"], event=event["event"], saga=event["saga"], src=msg.src)
            self.fan_out(event)
        self.send(msg.src, "PUBLISHED", eid=msg.body["eid"])

    def fan_out(self, event: dict) -> None:
        for sub in self.lab.subscribers.get(event["event"], []):
            key = f"{event['eid']}>{sub}"
            if key not in self.acked and key not in self.unacked:
                self.unacked[key] = Delivery(event, sub)
                self.after(0, self.deliver, key, key=("deliver", key))

    def deliver(self, key: str) -> None:
        """At least once: send the event again until the subscriber acknowledges it."""
        delivery = self.unacked[key]
        if delivery.attempt:
            self.lab.count("redeliveries")
        delivery.attempt += 1
        self.request(delivery.to, "DELIVER", awaiting=("deliver", key), timeout=self.lab.params["timeout"] * min(delivery.attempt, 4),
                     on_timeout=partial(self.deliver, key), **delivery.event)

    @on("ACK")
    def acknowledged(self, msg) -> None:
        key = f"{msg.body['eid']}>{msg.src}"
        if key in self.unacked:
            self.acked[key] = True
            self.unacked.pop(key)
            self.answered(("deliver", key))


# --------------------------------------------------------------------------
# The lab: each saga as an observer sees it, and the checks
# --------------------------------------------------------------------------


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
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    # completed-or-compensated is none: a compensation whose service stays away longer than its retries
    # ends the saga failed, for a human to repair (by design), and the check shows that.
    INVARIANTS = {
        "reverse-order": ("*",),
        "resumes-from-log": ("durable",),
        "no-duplicate-rows": ("idempotent=on",),
    }
    PARAMS = (
        Param("mode", "orchestration", "Who drives the steps: an orchestrator with a saga log, or services reacting to events on a bus.",
              choices=("orchestration", "choreography")),
        Param("idempotent", True, "Handlers recognise a repeated request and do not insert a second row (off: every delivery inserts)."),
        Param("log", "durable", "Where the orchestrator's saga log (or the bus's event log) lives.", choices=("durable", "memory")),
        Param("timeout", 1000, "How long (ms) the orchestrator or the bus waits for an answer before sending again.", lo=100, hi=10_000),
        Param("retries", 2, "Orchestration: how many times a step is re-sent before it counts as failed.", lo=0, hi=10),
        Param("work_ms", 300, "How long (ms) each service's local transaction takes.", lo=0, hi=5000),
    )
    LATENCY = (20.0, 50.0)

    def setup(self) -> None:
        self.mode = self.params["mode"]
        self.idempotent = self.params["idempotent"]
        self.subscribers = {event: list(subs) for event, subs in SUBSCRIBERS.items()}
        self.sagas: list[Timeline] = []
        self.by_id: dict[str, Timeline] = {}
        self.step_faults: dict[str, dict] = {}  # service -> {"how": always|next|percent, "n": int}
        self.bus_outstanding: list[str] = []  # the bus's unacknowledged deliveries when it crashed
        self.calm_since = 0.0  # the last time a node was away or the network was cut
        self.hub = self.add_node(Orchestrator(self, "orchestrator") if self.mode == "orchestration" else Bus(self, "bus"))
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
        self.add_check("no-duplicate-rows", "A repeated or duplicated message creates no second row (idempotent handlers).")
        self.checks["reverse-order"].detail = "no compensation yet"
        self.checks["resumes-from-log"].detail = f"no restart of the {self.hub.id} yet"
        self.checks["no-duplicate-rows"].detail = "no repeated message yet"
        self.every(AUDIT_EVERY, self.audit)

    # -- what the page shows ----------------------------------------------------------
    def view(self) -> dict:
        return {
            "mode": self.mode,
            "sagas": [s.view() for s in self.sagas[-12:]],
            "step_faults": {s: self.fault_text(s) for s in STEPS if s in self.step_faults},
            "subscriptions": self.subscribers if self.mode == "choreography" else {},
            "edges": [[self.hub.id, s] for s in STEPS],
        }

    def fault_text(self, service: str) -> str:
        fault = self.step_faults.get(service)
        return {"always": "always", "next": f"next {fault['n']}", "percent": f"{fault['n']}%"}[fault["how"]] if fault else ""

    # -- the timelines, from the run's events ---------------------------------------------
    @observe("saga")
    def saga_status(self, event: dict) -> None:
        saga = self.by_id[event["saga"]]
        saga.status, saga.progress = event["status"], self.now
        saga.why = event.get("why", saga.why)
        if saga.status in FINAL:
            saga.ended = round(self.now, 3)
            self.count(saga.status)
            self.audit_saga(saga)
            self.note_totals()

    @observe("step")
    def step_status(self, event: dict) -> None:
        saga = self.by_id[event["saga"]]
        saga.progress = self.now
        step = next((s for s in reversed(saga.steps) if s["service"] == event["service"] and s["do"] == event["do"]), None)
        if step is None:
            step = {"service": event["service"], "do": event["do"], "status": event["status"], "t": event["t"], "attempts": 0}
            saga.steps.append(step)
        step.update(status=event["status"], end=event["t"])
        if step["status"] == "running" and self.mode == "orchestration":
            step["attempts"] = event.get("attempt", 1)  # the orchestrator's sends (in choreography nobody counts)

    @observe("retry", "duplicate-ignored")
    def counted(self, event: dict) -> None:
        self.count("retries" if event["kind"] == "retry" else "duplicates_ignored")

    @observe("commit")
    def committed(self, fact: dict) -> None:
        """A service committed a local transaction: what ran, and what was undone, in order."""
        saga = self.by_id[fact["saga"]]
        saga.progress = self.now
        if fact["outcome"] == "created" and fact["node"] not in saga.created:
            saga.created.append(fact["node"])
        if fact["outcome"] == "compensated" and fact["node"] not in saga.undone:
            saga.undone.append(fact["node"])

    # -- checks ----------------------------------------------------------------------------
    def rows_of(self, service: str, saga: str) -> list[dict]:
        return [r for r in self.nodes[service].db.rows if r["saga"] == saga]

    @observe("commit")
    def one_row_per_step(self, fact: dict) -> None:
        if fact["outcome"] == "created":
            service, saga = fact["node"], fact["saga"]
            count = len(self.rows_of(service, saga))
            if count > 1:
                self.fail("no-duplicate-rows", f"{service} holds {count} rows for {saga}: a repeated message was applied twice")
            else:
                self.note("no-duplicate-rows", f"{self.metrics['duplicates_ignored']} repeats recognised and ignored")

    @observe("commit")
    def undone_in_reverse(self, fact: dict) -> None:
        if fact["outcome"] == "compensated":
            saga = self.by_id[fact["saga"]]
            undone = [s for s in saga.undone if s in saga.created]
            ran = ", ".join(saga.created)
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
        if do == "create" and outcome == "failed":
            if service == STEPS[0]:
                self.settle(saga, "compensated", "product failed: nothing to undo")
            else:
                self.settle(saga, "compensating", f"{service} failed")
        elif do == "create" and service == STEPS[-1]:
            self.settle(saga, "completed")
        elif do == "compensate" and service == STEPS[0]:
            self.settle(saga, "compensated")

    def settle(self, saga: str, status: str, why: str = "") -> None:
        if self.by_id[saga].status not in FINAL:
            self.emit("saga", saga=saga, status=status, **({"why": why} if why else {}))

    def audit_saga(self, saga: Timeline) -> None:
        counts = {s: len(self.rows_of(s, saga.id)) for s in STEPS}
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
        for saga in self.sagas:
            if saga.status in FINAL:
                self.audit_saga(saga)
            elif self.now - max(saga.progress, self.calm_since) > stuck_after:
                counts = {s: len(self.rows_of(s, saga.id)) for s in STEPS}
                self.fail("completed-or-compensated",
                          f"{saga.id} stuck {saga.status} for {stuck_after / 1000:.0f}s with rows {counts}")
        self.note_totals()

    def note_totals(self) -> None:
        done = [s for s in self.sagas if s.status in FINAL]
        self.note("completed-or-compensated",
                  f"{self.metrics['completed']} completed, {self.metrics['compensated']} compensated, "
                  f"{len(self.sagas) - len(done)} in flight"
                  + (f", {self.metrics['failed']} given up by the {self.hub.id} with no row left (its "
                     "compensation ran; the answers were lost)" if self.metrics["failed"] else ""))

    def after_fault(self, fault: str, node_id: str | None) -> None:
        if node_id != self.hub.id:
            return
        if fault == "crash" and self.mode == "choreography":
            self.bus_outstanding = list(self.hub.unacked)
        if fault != "restart":
            return
        if self.mode == "orchestration":
            unfinished = [s.id for s in self.sagas if s.status not in FINAL]
            lost = [s for s in unfinished if s not in self.hub.active]
            what = "sagas"
        else:
            unfinished = self.bus_outstanding
            lost = [k for k in unfinished if k not in self.hub.unacked and k not in self.hub.acked]
            what = "deliveries"
        if lost:
            self.fail("resumes-from-log", f"restart forgot {what} {', '.join(lost)} (the log was in memory)")
        else:
            self.note("resumes-from-log", f"restart resumed {len(unfinished)} unfinished {what} from the log")

    # -- faults the learner injects into steps -------------------------------------------
    def step_fails(self, service: str) -> bool:
        """Does this attempt of the service's step fail (an injected failure)?"""
        fault = self.step_faults.get(service)
        if not fault:
            return False
        if fault["how"] == "percent":
            return self.rng.random() * 100 < fault["n"]
        if fault["how"] == "next":
            fault["n"] -= 1
            if fault["n"] <= 0:
                del self.step_faults[service]
        return True

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
        self.sagas.append(Timeline(saga, product["product"], started=round(self.now, 3), progress=self.now))
        self.by_id[saga] = self.sagas[-1]
        self.count("sagas")
        self.emit("saga", saga=saga, status="running", product=product["product"])
        if self.mode == "orchestration":
            self.hub.start(saga, product)
        else:
            entry.handle("create", saga, product, reply_to=None)

    @action("fail-step", Arg("service", "word", choices=STEPS), Arg("how", "text"), Arg("n", "int", optional=True, lo=1, hi=1000),
            help="Make a service's step fail: always, next N (the next N attempts), or a percent of attempts (e.g. 30).")
    def do_fail_step(self, service: str, how: str, n: int | None) -> None:
        if how == "always" and n is None:
            fault = {"how": "always", "n": 0}
        elif how == "next":
            fault = {"how": "next", "n": n or 1}
        elif how.isdigit() and n is None and 0 <= int(how) <= 100:
            fault = {"how": "percent", "n": int(how)}
        else:
            raise SimError("use fail-step <service> always | next N | <percent>, e.g. fail-step price next 2 or fail-step price 30")
        self.step_faults[service] = fault
        self.emit("fail-step", service=service, fails=self.fault_text(service))

    @action("clear-faults", help="Stop every injected step failure (network and node faults stay: use heal, restart, slow 0).")
    def do_clear_faults(self) -> None:
        self.step_faults = {}
        self.emit("clear-faults")
