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

from .kernel import Arg, Lab, Node, Param, SimError, action

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


class Service(Node):
    """A service with its own database (`disk`): rows, what it did per saga,
    and an outbox of events still to publish (choreography)."""

    def boot(self) -> None:
        self.role = "service"
        self.disk.setdefault("rows", [])
        self.disk.setdefault("done", {})  # saga -> "created" | "failed" | "compensated"
        self.disk.setdefault("outbox", [])  # events written with the row, not yet on the bus
        self.disk.setdefault("accepted", {})  # merchant requests taken but not yet committed
        self.disk.setdefault("next_row", 1)
        self.disk.setdefault("next_event", 1)
        self.working: dict[str, bool] = {}  # "create:s1" -> True while the local transaction runs
        self.jobs = 0
        if self.disk["outbox"]:
            self.set_timer("outbox", 0)
        for saga in self.disk["accepted"]:  # a request we accepted before a crash: do it now
            self.set_timer(f"accepted:{saga}", 0, saga=saga)

    @property
    def rows(self) -> list[dict]:
        return self.disk["rows"]

    def view(self) -> dict:
        fault = self.lab.fault_text(self.id)
        label = f"{len(self.rows)} row{'s' if len(self.rows) != 1 else ''}" + (f" · fails {fault}" if fault else "")
        return {"rows": self.rows, "outbox": len(self.disk["outbox"]), "fault": fault, "label": label}

    # -- requests ----------------------------------------------------------------
    def on_message(self, msg) -> None:
        body = msg.body
        if msg.type in ("CREATE", "COMPENSATE"):  # from the orchestrator
            self.handle(msg.type.lower(), body["saga"], body, reply_to=msg.src)
        elif msg.type == "DELIVER":  # an event from the bus
            self.handle(reaction(body["event"]), body["saga"], body, reply_to=msg.src, eid=body["eid"])
        elif msg.type == "PUBLISHED":  # the bus has the event: drop it from the outbox
            self.disk["outbox"] = [e for e in self.disk["outbox"] if e["eid"] != body["eid"]]

    def handle(self, kind: str, saga: str, body: dict, reply_to: str | None, eid: str | None = None) -> None:
        key = f"{kind}:{saga}"
        if self.lab.idempotent:
            if key in self.working:  # the same request is already being processed: its answer will follow
                self.lab.duplicate_ignored(self.id, saga, kind)
                return
            if self.already(kind, saga):
                self.lab.duplicate_ignored(self.id, saga, kind)
                self.answer(kind, saga, self.disk["done"][saga], reply_to, eid)
                return
        # Start the local transaction; it commits after `work_ms`.
        if reply_to is None:  # the merchant's request is stored first: nobody would re-send it
            self.disk["accepted"][saga] = dict(body)
        self.working[key] = True
        self.jobs += 1
        self.lab.step_started(self.id, saga, kind)
        fields = {k: body[k] for k in ("product", "name", "price", "meta") if k in body}
        self.set_timer(f"work{self.jobs}", self.lab.params["work_ms"], kind=kind, saga=saga,
                       body=fields, reply_to=reply_to, eid=eid)

    def already(self, kind: str, saga: str) -> bool:
        """Idempotency: has this saga's request been decided here already?"""
        state = self.disk["done"].get(saga)
        return state is not None if kind == "create" else state == "compensated"

    def on_timer(self, name: str, data: dict) -> None:
        if name == "outbox":
            self.flush_outbox()
        elif name.startswith("accepted:"):
            if data["saga"] in self.disk["accepted"]:
                self.handle("create", data["saga"], self.disk["accepted"][data["saga"]], reply_to=None)
        elif name.startswith("work"):
            self.commit(**data)

    def commit(self, kind: str, saga: str, body: dict, reply_to: str | None, eid: str | None) -> None:
        """The local transaction: change the rows, record the outcome and
        queue the event to publish, all in one write to this service's disk."""
        self.working.pop(f"{kind}:{saga}", None)
        if reply_to is None:
            self.disk["accepted"].pop(saga, None)
        if self.lab.idempotent and self.already(kind, saga):
            self.lab.duplicate_ignored(self.id, saga, kind)
            self.answer(kind, saga, self.disk["done"][saga], reply_to, eid)
            return
        done = self.disk["done"]
        if kind == "create":
            if self.lab.step_should_fail(self.id):
                done[saga] = "failed"
                self.lab.emit("step-failed", node=self.id, saga=saga)
                self.publish(f"{self.id}-failed", saga, body)
            else:
                row = {"row": self.disk["next_row"], "saga": saga, "product": body.get("product"),
                       "value": self.value(body)}
                self.disk["next_row"] += 1
                self.rows.append(row)
                done[saga] = "created"
                self.lab.emit("row", node=self.id, op="insert", saga=saga, row=row["row"], value=row["value"])
                self.publish(f"{self.id}-created", saga, body)
            self.lab.committed(self.id, saga, "create", done[saga])
        else:
            if self.lab.idempotent:
                mine = [r for r in self.rows if r["saga"] == saga]  # delete every row of the saga
            else:
                mine = [r for r in self.rows if r["saga"] == saga][:1]  # a naive delete: one row
            for row in mine:
                self.rows.remove(row)
                self.lab.emit("row", node=self.id, op="delete", saga=saga, row=row["row"])
            if self.lab.idempotent or mine:
                done[saga] = "compensated"  # a tombstone: a late CREATE is now ignored
            self.publish(f"{self.id}-deleted", saga, body)
            self.lab.committed(self.id, saga, "compensate", "compensated" if (mine or self.lab.idempotent) else "nothing")
        self.answer(kind, saga, done.get(saga, "compensated"), reply_to, eid)

    def value(self, body: dict) -> str:
        if self.id == "product":
            return str(body.get("name", "?"))
        if self.id == "price":
            return f"${body.get('price', 0)}"
        return f"colour={body.get('meta', '?')}"

    def answer(self, kind: str, saga: str, outcome: str, reply_to: str | None, eid: str | None) -> None:
        if reply_to is None:
            return  # the merchant's own request (choreography): nobody waits on it
        if eid is not None:
            self.send(reply_to, "ACK", eid=eid)  # tell the bus the event is handled
        elif kind == "create":
            self.send(reply_to, "CREATED" if outcome == "created" else "FAILED", saga=saga)
        else:
            self.send(reply_to, "COMPENSATED", saga=saga)

    # -- choreography: the outbox -------------------------------------------------
    def publish(self, event: str, saga: str, body: dict) -> None:
        if self.lab.mode != "choreography":
            return
        eid = f"{self.id}.{self.disk['next_event']}"
        self.disk["next_event"] += 1
        self.disk["outbox"].append({"eid": eid, "event": event, "saga": saga, **body})
        self.flush_outbox()

    def flush_outbox(self) -> None:
        for event in self.disk["outbox"]:
            self.send("bus", "PUBLISH", **event)
        if self.disk["outbox"]:
            self.set_timer("outbox", self.lab.params["timeout"])


# --------------------------------------------------------------------------
# Orchestration: the orchestrator and its saga log
# --------------------------------------------------------------------------


class Orchestrator(Node):
    """Runs each saga step by step from a log it writes before every move."""

    def boot(self) -> None:
        self.role = "coordinator"
        if self.lab.params["log"] == "durable":
            self.log = self.disk.setdefault("log", [])
        else:
            self.log = []  # kept in memory only: a crash forgets every saga in flight
        self.active: dict[str, dict] = {}
        self.replay_log()
        if self.lab.started:
            for saga, st in self.active.items():
                self.lab.emit("saga-resumed", node=self.id, saga=saga, phase=st["phase"],
                              at=STEPS[st["step"]] if st["phase"] == "forward" else st["plan"][0])
                self.set_timer(f"go:{saga}", 0)

    def view(self) -> dict:
        active = list(self.active) if self.status != "down" else []
        return {"log": self.log[-8:], "log_size": len(self.log), "active": active,
                "label": f"log {len(self.log)} · {len(active)} active"}

    def replay_log(self) -> None:
        """Recovery: rebuild every unfinished saga from the log, record by record."""
        for rec in self.log:
            saga = rec["saga"]
            if rec["rec"] == "begin":
                self.active[saga] = {"product": rec["product"], "phase": "forward", "step": 0, "plan": [], "attempt": 0}
            elif rec["rec"] == "done":
                self.active[saga]["step"] += 1
            elif rec["rec"] == "compensate":
                self.active[saga].update(phase="compensating", plan=list(rec["plan"]))
            elif rec["rec"] == "undone":
                self.active[saga]["plan"].pop(0)
            elif rec["rec"] == "end":
                self.active.pop(saga, None)

    def write(self, saga: str, rec: str, **fields) -> None:
        """Append to the saga log (on disk when `log` is durable) before acting."""
        self.log.append({"saga": saga, "rec": rec, **fields})
        shown = {k: (list(v) if isinstance(v, list) else v) for k, v in fields.items() if k != "product"}
        self.lab.emit("log", node=self.id, saga=saga, rec=rec, **shown)

    # -- the saga -------------------------------------------------------------------
    def start(self, saga: str, product: dict) -> None:
        self.write(saga, "begin", product=product)
        self.active[saga] = {"product": product, "phase": "forward", "step": 0, "plan": [], "attempt": 0}
        self.act(saga)

    def act(self, saga: str) -> None:
        """Send the saga's current command and wait for its answer."""
        st = self.active[saga]
        timeout = self.lab.params["timeout"]
        if st["phase"] == "forward":
            service = STEPS[st["step"]]
            self.lab.mark(saga, service, "create", "running", attempts=st["attempt"] + 1)
            self.send(service, "CREATE", saga=saga, **st["product"])
            wait = timeout
        else:
            service = st["plan"][0]
            self.lab.mark(saga, service, "compensate", "running", attempts=st["attempt"] + 1)
            self.send(service, "COMPENSATE", saga=saga)
            wait = timeout * min(st["attempt"] + 1, 4)  # back off while a service stays away
        st["attempt"] += 1
        self.set_timer(f"wait:{saga}", wait)

    def on_timer(self, name: str, data: dict) -> None:
        kind, saga = name.split(":", 1)
        st = self.active.get(saga)
        if st is None:
            return
        if kind == "go":
            self.act(saga)
        elif st["phase"] == "forward":
            if st["attempt"] > self.lab.params["retries"]:
                # No answer after every retry: the step may or may not have run.
                service = STEPS[st["step"]]
                self.lab.mark(saga, service, "create", "timeout")
                self.compensate(saga, f"{service} did not answer", maybe=service)
            else:
                self.lab.retried(saga, STEPS[st["step"]])
                self.act(saga)
        elif st["attempt"] >= COMP_ATTEMPTS:
            service = st["plan"][0]
            self.lab.mark(saga, service, "compensate", "failed")
            self.write(saga, "end", status="failed")
            self.active.pop(saga)
            self.lab.set_status(saga, "failed", f"could not undo {service}")
        else:
            self.lab.retried(saga, st["plan"][0])
            self.act(saga)

    def on_message(self, msg) -> None:
        saga = msg.body.get("saga")
        st = self.active.get(saga)
        current = None
        if st is not None:
            current = STEPS[st["step"]] if st["phase"] == "forward" else st["plan"][0]
        expected = {"forward": ("CREATED", "FAILED"), "compensating": ("COMPENSATED",)}
        if st is None or msg.src != current or msg.type not in expected[st["phase"]]:
            self.lab.count("stale_replies")  # a late or repeated answer: already dealt with
            return
        self.cancel_timer(f"wait:{saga}")
        st["attempt"] = 0
        if msg.type == "CREATED":
            self.write(saga, "done", service=current)
            self.lab.mark(saga, current, "create", "done")
            st["step"] += 1
            if st["step"] == len(STEPS):
                self.write(saga, "end", status="completed")
                self.active.pop(saga)
                self.lab.set_status(saga, "completed")
            else:
                self.act(saga)
        elif msg.type == "FAILED":
            self.lab.mark(saga, current, "create", "failed")
            self.compensate(saga, f"{current} failed")
        else:
            self.write(saga, "undone", service=current)
            self.lab.mark(saga, current, "compensate", "done")
            st["plan"].pop(0)
            self.next_compensation(saga)

    def compensation_plan(self, executed: list[str]) -> list[str]:
        """Undo the executed steps newest first."""
        return list(reversed(executed))

    def compensate(self, saga: str, why: str, maybe: str | None = None) -> None:
        st = self.active[saga]
        executed = list(STEPS[:st["step"]]) + ([maybe] if maybe else [])
        plan = self.compensation_plan(executed)
        self.write(saga, "compensate", plan=list(plan))
        st.update(phase="compensating", plan=list(plan), attempt=0)
        self.lab.set_status(saga, "compensating", why)
        self.next_compensation(saga)

    def next_compensation(self, saga: str) -> None:
        if self.active[saga]["plan"]:
            self.act(saga)
        else:
            self.write(saga, "end", status="compensated")
            self.active.pop(saga)
            self.lab.set_status(saga, "compensated")


# --------------------------------------------------------------------------
# Choreography: the event bus
# --------------------------------------------------------------------------


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
        self.pending: dict[str, dict] = {}  # "<eid>><subscriber>" -> delivery in progress
        for event in self.log:  # recovery: redeliver whatever was not acknowledged
            self.fan_out(event)

    def view(self) -> dict:
        pending = list(self.pending) if self.status != "down" else []
        return {"log": [{k: e[k] for k in ("eid", "event", "saga")} for e in self.log[-8:]],
                "log_size": len(self.log), "pending": pending,
                "label": f"log {len(self.log)} · {len(pending)} unacked"}

    def on_message(self, msg) -> None:
        body = msg.body
        if msg.type == "PUBLISH":
            if body["eid"] not in self.known:  # a re-sent publish is stored once
                event = dict(body)
                self.log.append(event)
                self.known[event["eid"]] = True
                self.lab.emit("event", eid=event["eid"], event=event["event"], saga=event["saga"], src=msg.src)
                self.fan_out(event)
            self.send(msg.src, "PUBLISHED", eid=body["eid"])
        elif msg.type == "ACK":
            key = f"{body['eid']}>{msg.src}"
            if key in self.pending:
                self.acked[key] = True
                self.pending.pop(key)
                self.cancel_timer(f"deliver:{key}")

    def fan_out(self, event: dict) -> None:
        for sub in self.lab.subscribers.get(event["event"], []):
            key = f"{event['eid']}>{sub}"
            if key not in self.acked and key not in self.pending:
                self.pending[key] = {"event": event, "to": sub, "attempt": 0}
                self.set_timer(f"deliver:{key}", 0)

    def on_timer(self, name: str, data: dict) -> None:
        key = name.split(":", 1)[1]
        delivery = self.pending.get(key)
        if delivery is None:
            return
        if delivery["attempt"]:
            self.lab.count("redeliveries")
        delivery["attempt"] += 1
        self.send(delivery["to"], "DELIVER", **delivery["event"])
        self.set_timer(name, self.lab.params["timeout"] * min(delivery["attempt"], 4))


# --------------------------------------------------------------------------
# The lab
# --------------------------------------------------------------------------


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
        self.started = False
        self.mode = self.params["mode"]
        self.idempotent = self.params["idempotent"]
        self.subscribers = {event: list(subs) for event, subs in SUBSCRIBERS.items()}
        self.sagas: list[dict] = []
        self.by_id: dict[str, dict] = {}
        self.step_faults: dict[str, dict] = {}  # service -> {"how": always|next|percent, "n": int}
        self.bus_outstanding: list[str] = []
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
        self.started = True
        self.sim.after(AUDIT_EVERY, self.audit)

    # -- what the page shows ----------------------------------------------------------
    def view(self) -> dict:
        hub = self.hub.id
        return {
            "mode": self.mode,
            "sagas": [self.saga_view(s) for s in self.sagas[-12:]],
            "step_faults": {s: self.fault_text(s) for s in STEPS if self.fault_text(s)},
            "subscriptions": self.subscribers if self.mode == "choreography" else {},
            "layout": {hub: [50, 18], "product": [16, 74], "price": [50, 74], "metadata": [84, 74]},
            "edges": [[hub, s] for s in STEPS],
        }

    @staticmethod
    def saga_view(rec: dict) -> dict:
        return {k: rec[k] for k in ("id", "product", "status", "steps", "started", "ended", "why", "created", "undone")}

    def fault_text(self, service: str) -> str:
        fault = self.step_faults.get(service)
        if not fault:
            return ""
        return {"always": "always", "next": f"next {fault['n']}", "percent": f"{fault['n']}%"}[fault["how"]]

    # -- the saga record (what an observer sees) ----------------------------------------
    def mark(self, saga: str, service: str, do: str, status: str, attempts: int | None = None) -> None:
        """Update the timeline entry of one step (or compensation) of a saga."""
        rec = self.by_id[saga]
        rec["progress"] = self.now
        entry = next((e for e in reversed(rec["steps"]) if e["service"] == service and e["do"] == do), None)
        if entry is None:
            entry = {"service": service, "do": do, "status": status, "t": round(self.now, 3), "attempts": 0}
            rec["steps"].append(entry)
        entry["status"] = status
        entry["end"] = round(self.now, 3)
        if attempts is not None:
            entry["attempts"] = attempts
        self.emit("step", saga=saga, service=service, do=do, status=status,
                  **({"attempt": attempts} if attempts and attempts > 1 else {}))

    def set_status(self, saga: str, status: str, why: str = "") -> None:
        rec = self.by_id[saga]
        if rec["status"] in FINAL:
            return
        rec["status"], rec["progress"] = status, self.now
        if why:
            rec["why"] = why
        self.emit("saga", saga=saga, status=status, **({"why": why} if why else {}))
        if status in FINAL:
            rec["ended"] = round(self.now, 3)
            self.count(status)
            self.audit_saga(rec)
            self.note_totals()

    def retried(self, saga: str, service: str) -> None:
        self.count("retries")
        self.emit("retry", saga=saga, service=service)

    def duplicate_ignored(self, service: str, saga: str, kind: str) -> None:
        self.count("duplicates_ignored")
        self.emit("duplicate-ignored", node=service, saga=saga, do=kind)

    def step_started(self, service: str, saga: str, kind: str) -> None:
        if self.mode == "choreography" and saga in self.by_id:
            self.mark(saga, service, kind, "running")

    def committed(self, service: str, saga: str, kind: str, outcome: str) -> None:
        """A service committed a local transaction: feed the checks (and, in
        choreography, where the saga stands)."""
        rec = self.by_id.get(saga)
        if rec is None:
            return
        rec["progress"] = self.now
        if kind == "create" and outcome == "created":
            if service not in rec["created"]:
                rec["created"].append(service)
            count = len(self.rows_of(service, saga))
            if count > 1:
                self.fail("no-duplicate-rows", f"{service} holds {count} rows for {saga}: a repeated message was applied twice")
            else:
                self.note("no-duplicate-rows", f"{self.metrics['duplicates_ignored']} repeats recognised and ignored")
        if kind == "compensate" and outcome == "compensated":
            if service not in rec["undone"]:
                rec["undone"].append(service)
            undone = [s for s in rec["undone"] if s in rec["created"]]
            expected = list(reversed(rec["created"]))
            if undone != expected[:len(undone)]:
                self.fail("reverse-order", f"{saga}: undid {', '.join(undone)} but the steps ran {', '.join(rec['created'])}")
            else:
                self.note("reverse-order", f"{saga}: undid {', '.join(undone) or 'nothing'} (ran {', '.join(rec['created'])})")
        if self.mode == "choreography":
            self.choreography_progress(service, saga, kind, outcome)

    def choreography_progress(self, service: str, saga: str, kind: str, outcome: str) -> None:
        self.mark(saga, service, kind, {"created": "done", "failed": "failed"}.get(outcome, "done"))
        if kind == "create" and outcome == "failed":
            if service == STEPS[0]:
                self.set_status(saga, "compensated", "product failed: nothing to undo")
            else:
                self.set_status(saga, "compensating", f"{service} failed")
        elif kind == "create" and service == STEPS[-1]:
            self.set_status(saga, "completed")
        elif kind == "compensate" and service == STEPS[0]:
            self.set_status(saga, "compensated")

    def rows_of(self, service: str, saga: str) -> list[dict]:
        return [r for r in self.nodes[service].rows if r["saga"] == saga]

    # -- faults the learner injects into steps -------------------------------------------
    def step_should_fail(self, service: str) -> bool:
        fault = self.step_faults.get(service)
        if not fault:
            return False
        if fault["how"] == "always":
            return True
        if fault["how"] == "next":
            fault["n"] -= 1
            if fault["n"] <= 0:
                del self.step_faults[service]
            return True
        return self.sim.rng.random() * 100 < fault["n"]

    # -- checks ----------------------------------------------------------------------------
    def note(self, check: str, detail: str) -> None:
        """Update the detail of a check that still holds (a broken one keeps its breach)."""
        if self.checks[check].ok:
            self.checks[check].detail = detail

    def audit_saga(self, rec: dict) -> None:
        counts = {s: len(self.rows_of(s, rec["id"])) for s in STEPS}
        status = rec["status"]
        # A failed saga with no row left is judged by the rows, not by the orchestrator's word: its
        # COMPENSATE did run, only the answers were lost, so nothing is left half done.
        if status == "failed" and any(counts.values()):
            self.fail("completed-or-compensated", f"{rec['id']} failed ({rec.get('why', '')}): rows left {counts}")
        elif status == "completed" and any(c != 1 for c in counts.values()):
            self.fail("completed-or-compensated", f"{rec['id']} completed but rows are {counts} (want one each)")
        elif status == "compensated" and any(counts.values()):
            left = ", ".join(s for s, c in counts.items() if c)
            self.fail("completed-or-compensated", f"{rec['id']} compensated but {left} still holds a row")

    def audit(self) -> None:
        self.sim.after(AUDIT_EVERY, self.audit)
        calm = all(n.status == "up" for n in self.nodes.values()) and not self.net.partition and not any(
            link.cut or link.loss for link in self.net.links.values())
        if not calm:
            self.calm_since = self.now  # a saga may wait as long as a node is away
        stuck_after = max(15_000, 8 * self.params["timeout"])
        for rec in self.sagas:
            if rec["status"] in FINAL:
                self.audit_saga(rec)
            elif self.now - max(rec["progress"], self.calm_since) > stuck_after:
                counts = {s: len(self.rows_of(s, rec["id"])) for s in STEPS}
                self.fail("completed-or-compensated",
                          f"{rec['id']} stuck {rec['status']} for {stuck_after / 1000:.0f}s with rows {counts}")
        self.note_totals()

    def note_totals(self) -> None:
        done = [r for r in self.sagas if r["status"] in FINAL]
        self.note("completed-or-compensated",
                  f"{self.metrics['completed']} completed, {self.metrics['compensated']} compensated, "
                  f"{len(self.sagas) - len(done)} in flight"
                  + (f", {self.metrics['failed']} given up by the {self.hub.id} with no row left (its "
                     "compensation ran; the answers were lost)" if self.metrics["failed"] else ""))

    def after_fault(self, fault: str, node_id: str | None) -> None:
        if node_id != self.hub.id:
            return
        if fault == "crash" and self.mode == "choreography":
            self.bus_outstanding = list(self.hub.pending)
        if fault != "restart":
            return
        if self.mode == "orchestration":
            unfinished = [r["id"] for r in self.sagas if r["status"] not in FINAL]
            lost = [s for s in unfinished if s not in self.hub.active]
            what = "sagas"
        else:
            unfinished = self.bus_outstanding
            lost = [k for k in unfinished if k not in self.hub.pending and k not in self.hub.acked]
            what = "deliveries"
        if lost:
            self.fail("resumes-from-log", f"restart forgot {what} {', '.join(lost)} (the log was in memory)")
        else:
            self.note("resumes-from-log", f"restart resumed {len(unfinished)} unfinished {what} from the log")

    # -- lab actions -------------------------------------------------------------------------
    @action("create-product", help="A merchant adds a product: a saga creates its product, price and metadata rows.")
    def do_create_product(self) -> None:
        entry = self.hub if self.mode == "orchestration" else self.nodes["product"]
        if entry.status != "up":
            raise SimError(f"{entry.id} is {entry.status}, so the request cannot be taken; restart or resume it first")
        n = len(self.sagas) + 1
        saga = f"s{n}"
        product = {"product": f"p{n}", "name": NAMES[(n - 1) % len(NAMES)],
                   "price": self.sim.rng.randint(5, 99), "meta": COLOURS[self.sim.rng.randrange(len(COLOURS))]}
        rec = {"id": saga, "product": product["product"], "status": "running", "steps": [],
               "started": round(self.now, 3), "ended": None, "why": "", "created": [], "undone": [],
               "progress": self.now}
        self.sagas.append(rec)
        self.by_id[saga] = rec
        self.count("sagas")
        self.emit("saga", saga=saga, status="running", product=product["product"])
        if self.mode == "orchestration":
            self.hub.start(saga, product)
        else:
            entry.handle("create", saga, product, reply_to=None)

    @action("fail-step", Arg("service", "word", choices=STEPS), Arg("how", "text"), Arg("n", "int", optional=True, lo=1, hi=1000),
            help="Make a service's step fail: always, next N (the next N attempts), or a percent of attempts (e.g. 30).")
    def do_fail_step(self, service: str, how: str, n: int | None) -> None:
        usage = "use fail-step <service> always | next N | <percent>, e.g. fail-step price next 2 or fail-step price 30"
        if how == "always" and n is None:
            fault = {"how": "always", "n": 0}
        elif how == "next":
            fault = {"how": "next", "n": n or 1}
        elif how.isdigit() and n is None and 0 <= int(how) <= 100:
            fault = {"how": "percent", "n": int(how)}
        else:
            raise SimError(usage)
        self.step_faults[service] = fault
        self.emit("fail-step", service=service, fails=self.fault_text(service))

    @action("clear-faults", help="Stop every injected step failure (network and node faults stay: use heal, restart, slow 0).")
    def do_clear_faults(self) -> None:
        self.step_faults = {}
        self.emit("clear-faults")
