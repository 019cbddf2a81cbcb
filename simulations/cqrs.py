"""CQRS: commands change a write model; queries read separate read models.

The article's bank example: accounts `alice`, `bob` and `carol` take deposits
and withdrawals (commands) and answer balance inquiries (queries).

Command side (`write`)
  * validates each command against its own, always current, write model (a
    withdrawal larger than the balance is rejected);
  * appends an accepted command's event to the event log (Deposited /
    Withdrew, with a sequence number), in the same write to disk as the new
    balance;
  * answers the client and nudges the projector ("the log grew").

Projector
  * tails the event log: FETCH events after the slowest read model's position,
    then send each read model the events it lacks (UPDATE);
  * remembers each read model's position (its checkpoint) from their ACKs and
    polls every `poll_ms` anyway, so lost messages are made up for.

Read models (`read1`, `read2`, ...: replicas of a query database)
  * apply events strictly in sequence order and skip any they already have
    (param `idempotent`), so a repeated UPDATE changes nothing;
  * answer queries at once from their own copy: fast, but *eventually*
    consistent -- a read is stale while the projector lags behind;
  * can be rebuilt by replaying the whole event log, with an identical result:
    a read model is nothing but a projection (a fold) of the log.

Mode `dual-write` shows the shortcut CQRS avoids: the command handler updates
the read models itself, at once and before it has validated the command.
There is no projector and no replay: a rejected overdraft still lands on the
read side, and a lost update is never made up for.
"""

from __future__ import annotations

from .kernel import Arg, Lab, Node, Param, SimError, action, observe, on

ACCOUNTS = ("alice", "bob", "carol")
OPENING = 100  # each account opens with this balance (events 1-3 of the log)
BATCH = 20  # events per FETCH / UPDATE
AUDIT_EVERY = 250
MAX_REPLICAS = 5
RECENT = 8  # commands and reads kept for the page


def apply_event(model: dict, event: dict) -> None:
    """The projection: fold one event into a read model (balance and count per account)."""
    row = model.setdefault(event["account"], {"balance": 0, "tx": 0})
    row["balance"] += event["delta"]
    row["tx"] += 1


def project(events: list[dict]) -> dict:
    model: dict = {}
    for event in events:
        apply_event(model, event)
    return model


class WriteSide(Node):
    """The command side: the event log, and the balances it implies (the write model)."""

    def boot(self) -> None:
        self.role = "write"
        if "log" not in self.disk:
            self.disk["log"] = [{"seq": i + 1, "type": "Opened", "account": a, "delta": OPENING, "cmd": f"open-{a}"}
                                for i, a in enumerate(ACCOUNTS)]
            self.disk["balances"] = {a: OPENING for a in ACCOUNTS}

    @property
    def log(self) -> list[dict]:
        return self.disk["log"]

    def view(self) -> dict:
        return {"log_size": len(self.log), "balances": self.disk["balances"], "label": f"log {len(self.log)} events"}

    @on("FETCH")
    def fetch(self, msg) -> None:  # the projector reads the log from a position on
        self.send(msg.src, "EVENTS", events=self.log[msg.body["after"]:][:BATCH], end=len(self.log))

    @on("COMMAND")
    def handle_command(self, msg) -> None:
        name, account, amount = msg.body["cmd"], msg.body["account"], msg.body["amount"]
        delta = amount if msg.body["op"] == "deposit" else -amount
        if self.lab.mode == "dual-write":
            # The shortcut: push the change to every read model first, validate afterwards.
            for replica in self.lab.read_models:
                self.send(replica, "DIRECT", cmd=name, account=account, delta=delta)
        balance = self.disk["balances"][account]
        if balance + delta < 0:
            self.lab.emit("rejected-command", cmd=name, why=f"{account} has {balance}, cannot withdraw {amount}")
            self.send(msg.src, "REJECTED", cmd=name, reason="insufficient funds")
            return
        event = {"seq": len(self.log) + 1, "type": "Deposited" if delta > 0 else "Withdrew",
                 "account": account, "delta": delta, "cmd": name}
        self.log.append(event)  # event and balance are written together
        self.disk["balances"][account] += delta
        self.lab.emit("appended", pos=event["seq"], type=event["type"], account=account, delta=delta,
                      balance=balance + delta)
        self.send(msg.src, "ACCEPTED", cmd=name, pos=event["seq"])
        if self.lab.mode == "projector":
            self.send("projector", "NEW", end=len(self.log))


class Projector(Node):
    """Tails the event log and feeds every read model the events it lacks."""

    def boot(self) -> None:
        self.role = "projector"
        self.disk.setdefault("cursors", {})  # replica -> last position it acknowledged (the checkpoint)
        self.sent: dict[str, int] = {}  # replica -> last event sent to it, not yet acknowledged
        self.sent_at: dict[str, float] = {}
        self.fetching = False
        self.after(0, self.poll, key="poll")

    @property
    def cursors(self) -> dict:
        return self.disk["cursors"]

    def view(self) -> dict:
        behind = max((len(self.lab.write.log) - c for c in self.cursors.values()), default=0)
        return {"cursors": self.cursors, "label": f"max lag {behind}"}

    def poll(self) -> None:
        # Anything sent long ago and still unacknowledged is sent again (at-least-once).
        for replica, last in list(self.sent.items()):
            if self.cursors.get(replica, 0) < last and self.now - self.sent_at[replica] >= self.lab.params["poll_ms"]:
                del self.sent[replica]
        self.fetching = False  # a FETCH still unanswered is given up
        self.fetch()
        self.after(self.lab.params["poll_ms"], self.poll, key="poll")

    def position_of(self, replica: str) -> int:
        return max(self.cursors[replica], self.sent.get(replica, 0))

    def fetch(self) -> None:
        if self.fetching or not self.cursors:
            return
        self.fetching = True
        self.send("write", "FETCH", after=min(self.position_of(r) for r in self.cursors))

    @on("NEW")
    def log_grew(self, msg) -> None:
        self.fetch()

    @on("EVENTS")
    def feed(self, msg) -> None:
        self.fetching = False
        for replica in self.cursors:
            position = self.position_of(replica)
            missing = [e for e in msg.body["events"] if e["seq"] > position]
            if missing and missing[0]["seq"] == position + 1:  # only what follows on from its position
                self.send(replica, "UPDATE", events=missing, first=missing[0]["seq"], last=missing[-1]["seq"])
                self.sent[replica], self.sent_at[replica] = missing[-1]["seq"], self.now
        if any(self.position_of(r) < msg.body["end"] for r in self.cursors):
            self.fetch()  # more to read

    @on("ACK")
    def checkpoint(self, msg) -> None:
        if msg.body.get("reset"):  # the read model restarted or is rebuilding: go on from its word
            self.cursors[msg.src] = msg.body["position"]
            self.sent.pop(msg.src, None)
            self.fetch()
        else:
            self.cursors[msg.src] = max(self.cursors.get(msg.src, 0), msg.body["position"])


class ReadModel(Node):
    """A read model (the query side): balances per account, and the log position they reflect."""

    def boot(self) -> None:
        self.role = "replica"
        if not self.disk:  # the model, its log position, the commands it reflects; while rebuilding {"old", "at"}
            self.disk.update(model={}, position=0, applied={}, rebuild=None)
        if self.lab.mode == "projector":
            self.announce()

    def announce(self, say: bool = True) -> None:
        """Tell the projector where I am ("here I am, at this position").  While a rebuild lasts, look
        again every poll_ms and, if it made no progress, say it again (the first word may have been lost)."""
        if say:
            self.send("projector", "ACK", position=self.position, reset=True)
        self.announced = self.position
        if self.disk["rebuild"]:
            self.after(self.lab.params["poll_ms"], self.still_rebuilding, key="announce")

    def still_rebuilding(self) -> None:
        if self.disk["rebuild"]:
            self.announce(say=self.position == self.announced)

    @property
    def position(self) -> int:
        return self.disk["position"]

    @property
    def model(self) -> dict:
        return self.disk["model"]

    def view(self) -> dict:
        behind, rebuilding = self.lab.behind(self), bool(self.disk["rebuild"])
        label = f"{self.position} updates" if self.lab.mode == "dual-write" else f"at {self.position}"
        label += (f" · {behind} behind" if behind else "") + (" · rebuilding" if rebuilding else "")
        return {"position": self.position, "behind": behind, "model": self.model, "rebuilding": rebuilding,
                "label": label}

    @on("UPDATE")
    def update(self, msg) -> None:
        gap = False
        for event in msg.body["events"]:
            if self.lab.params["idempotent"] and event["seq"] != self.position + 1:
                gap = gap or event["seq"] > self.position + 1
                continue  # already applied, or too new: events must be applied in order
            self.apply(event, event["seq"])
        # A gap means an earlier UPDATE was lost: ask the projector to go on from my position.
        self.send(msg.src, "ACK", position=self.position, **({"reset": True} if gap else {}))

    @on("DIRECT")
    def direct(self, msg) -> None:  # dual-write: a change straight from the command handler
        self.apply(msg.body, self.position + 1)

    @on("QUERY")
    def query(self, msg) -> None:  # answered at once from my own copy, however far behind it is
        row = self.model.get(msg.body["account"], {"balance": 0})
        self.send(msg.src, "ANSWER", q=msg.body["q"], account=msg.body["account"], balance=row["balance"],
                  position=self.position)

    def apply(self, event: dict, position: int) -> None:
        apply_event(self.model, event)
        self.disk["position"] = max(self.position, position) if self.lab.params["idempotent"] else position
        self.disk["applied"][event["cmd"]] = True
        self.lab.witness("applied", node=self.id, cmd=event["cmd"])
        rebuild = self.disk["rebuild"]
        if rebuild and self.position >= rebuild["at"]:
            self.disk["rebuild"] = None
            self.lab.witness("rebuild-done", node=self.id, old=rebuild["old"], at=rebuild["at"])

    def start_rebuild(self) -> None:
        """Throw the read model away and replay the event log from the start."""
        if self.position:
            self.disk["rebuild"] = {"old": self.model, "at": self.position}
        self.disk.update(model={}, position=0, applied={})
        self.announce()


class Client(Node):
    def boot(self) -> None:
        self.role = "client"
        self.next_replica = 0
        self.commands = self.queries = 0  # sent so far (they number the commands and the queries)
        self.at_rate(self.lab.params["commands"], self.random_command, key="command")
        self.at_rate(self.lab.params["queries"], self.random_query, key="query")

    def random_command(self) -> None:
        account = self.rng.choice(ACCOUNTS)
        kind = "deposit" if self.rng.random() < 0.5 else "withdraw"
        self.command(kind, account, self.rng.randint(1, 8) * 10)
        self.at_rate(self.lab.params["commands"], self.random_command, key="command")

    def random_query(self) -> None:
        self.query(self.rng.choice(ACCOUNTS), None)
        self.at_rate(self.lab.params["queries"], self.random_query, key="query")

    def command(self, kind: str, account: str, amount: int) -> None:
        self.commands += 1
        cmd = {"cmd": f"c{self.commands}", "op": kind, "account": account, "amount": amount}
        self.lab.emit("command", **cmd)
        self.send("write", "COMMAND", **cmd)

    def query(self, account: str, replica: str | None) -> None:
        if replica is None:  # a simple balancer: the next read model that is not down
            live = [r.id for r in self.lab.read_models.values() if r.status != "down"]
            if not live:
                return
            replica = live[self.next_replica % len(live)]
            self.next_replica += 1
        self.queries += 1
        q = f"q{self.queries}"
        self.lab.witness("query", q=q, account=account, replica=replica)
        self.send(replica, "QUERY", q=q, account=account)

    @on("ACCEPTED", "REJECTED")
    def command_answered(self, msg) -> None:
        reason = msg.body.get("reason", "")
        self.lab.emit("answer", cmd=msg.body["cmd"], status=msg.type.lower(), **({"reason": reason} if reason else {}))


class Cqrs(Lab):
    slug = "cqrs"
    title = "CQRS"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    INVARIANTS = {"read-models-converge": ("projector+idempotent=on",), "rebuild-identical": ("*",),
                  "rejected-never-read": ("projector",)}
    PARAMS = (
        Param("mode", "projector", "How read models learn about changes: a projector tailing the event log, or the "
              "command handler writing them directly before it validates (dual write).",
              choices=("projector", "dual-write")),
        Param("replicas", 2, "Read models at the start (read1..).", lo=1, hi=MAX_REPLICAS),
        Param("commands", 1, "Random deposits and withdrawals per second sent by the client (0 = only yours).",
              lo=0, hi=10),
        Param("queries", 2, "Random balance queries per second (0 = only yours).", lo=0, hi=20),
        Param("poll_ms", 1000, "How often (ms) the projector polls the log besides being nudged.", lo=100, hi=10_000),
        Param("idempotent", True, "Read models skip events they already applied (by sequence number)."),
    )
    UNFAULTABLE = ("client",)
    LATENCY = (15.0, 40.0)

    def setup(self) -> None:
        self.mode = self.params["mode"]
        self.commands: dict[str, dict] = {}
        self.reads: dict[str, dict] = {}
        self.rejected_cmds: set[str] = set()
        self.read_models: dict[str, ReadModel] = {}
        self.metrics.update({"commands": 0, "accepted": 0, "rejected": 0, "reads": 0, "stale_reads": 0, "rebuilds": 0})
        self.client = self.add_node(Client(self, "client"))
        self.write = self.add_node(WriteSide(self, "write"))
        if self.mode == "projector":
            self.add_node(Projector(self, "projector"))
        for _ in range(self.params["replicas"]):
            self.add_replica()
        self.add_check("read-models-converge",
                       "Once a read model has caught up, it equals the projection of the write side's event log.")
        self.add_check("rebuild-identical", "Rebuilding a read model by replaying the event log gives the identical "
                                            "read model: the projection of the events it replayed (a read model that "
                                            "had gone wrong comes back repaired).")
        self.add_check("rejected-never-read",
                       "A command the write side rejects (an overdraft) never shows up on the read side.")
        self.checks["read-models-converge"].detail = "no read model has caught up yet"
        self.checks["rebuild-identical"].detail = "no rebuild yet"
        self.checks["rejected-never-read"].detail = "no command rejected yet"
        self.every(AUDIT_EVERY, self.audit)

    def add_replica(self) -> ReadModel:
        node = self.add_node(ReadModel(self, f"read{len(self.read_models) + 1}"))
        self.read_models[node.id] = node
        if self.mode == "dual-write":  # a read model that starts now can only be seeded from the write side
            node.disk.update(model=project(self.write.log), position=len(self.write.log))
        else:  # the projector feeds it from its first poll on
            self.nodes["projector"].cursors.setdefault(node.id, 0)
        return node

    def behind(self, replica: ReadModel) -> int:
        return max(len(self.write.log) - replica.position, 0) if self.mode == "projector" else 0

    # -- what the page shows -------------------------------------------------------
    def view(self) -> dict:
        projection = project(self.write.log)
        replicas = [{"id": n.id, "status": n.status, "matches": n.model == projection,
                     **{k: v for k, v in n.view().items() if k != "label"}} for n in self.read_models.values()]
        source = "projector" if self.mode == "projector" else "write"
        edges = [["client", "write"]] + ([["write", "projector"]] if self.mode == "projector" else [])
        edges += [[source, r] for r in self.read_models] + [["client", r] for r in self.read_models]
        return {
            "mode": self.mode,
            "accounts": self.write.disk["balances"],
            "log": self.write.log[-10:],
            "log_size": len(self.write.log),
            "lag": {r["id"]: r["behind"] for r in replicas},
            "replicas": replicas,
            "commands": list(self.commands.values())[-RECENT:],
            "reads": list(self.reads.values())[-RECENT:],
            "edges": edges,
        }

    # -- commands and queries as the page shows them: watched, not reported ----------------
    @observe("command")
    def command_sent(self, event: dict) -> None:
        self.count("commands")
        command = {k: event[k] for k in ("cmd", "op", "account", "amount")}
        self.remember(self.commands, event["cmd"], command | {"status": "sent"})

    @observe("answer")
    def command_answered(self, event: dict) -> None:
        self.count(event["status"])
        if event["cmd"] in self.commands:
            self.commands[event["cmd"]]["status"] = event["status"]

    @observe("query")
    def query_sent(self, fact: dict) -> None:
        self.count("reads")
        self.remember(self.reads, fact["q"], {**fact, "balance": None, "truth": None, "stale": None})

    def handled(self, node: Node, msg) -> None:
        """The client got a query's answer: was it stale (the write side already knew better)?"""
        read = self.reads.get(msg.body.get("q")) if node.id == "client" and msg.type == "ANSWER" else None
        if read is None:
            return
        balance, truth = msg.body["balance"], self.write.disk["balances"][read["account"]]
        read.update(balance=balance, truth=truth, stale=balance != truth)
        if read["stale"]:
            self.count("stale_reads")
        self.emit("read", q=read["q"], replica=read["replica"], account=read["account"], balance=balance,
                  stale=read["stale"], **({"truth": truth} if read["stale"] else {}))

    @staticmethod
    def remember(recent: dict, key: str, item: dict) -> None:
        recent[key] = item
        while len(recent) > 40:  # the latest are kept: an answer may still come for them
            del recent[next(iter(recent))]

    @observe("rejected-command")
    def rejected(self, event: dict) -> None:
        cmd, why = event["cmd"], event["why"]
        self.rejected_cmds.add(cmd)
        seen = [r.id for r in self.read_models.values() if cmd in r.disk["applied"]]
        if seen:
            self.fail("rejected-never-read", f"{cmd} was rejected ({why}) but {', '.join(seen)} already applied it")
        else:
            self.note("rejected-never-read", f"{len(self.rejected_cmds)} rejected, none visible on the read side")

    @observe("applied")
    def applied(self, fact: dict) -> None:
        if fact["cmd"] in self.rejected_cmds:
            self.fail("rejected-never-read", f"{fact['node']} applied {fact['cmd']}, which the write side rejected")

    @observe("rebuild-done")
    def rebuilt(self, fact: dict) -> None:
        """A rebuild replayed the log up to `at`.  It must give exactly the projection of those events: the
        read model as it should have been.  If the old model differed from that, the old model was wrong (a
        double-applied event, say) and the rebuild repaired it; that is what rebuilds are for, not a fault."""
        node, old, at = fact["node"], fact["old"], fact["at"]
        model, expected = self.read_models[node].model, project(self.write.log[:at])
        self.emit("rebuilt", node=node, position=at, identical=model == old, correct=model == expected)
        if model != expected:
            diff = [a for a in ACCOUNTS if expected.get(a) != model.get(a)]
            self.fail("rebuild-identical", f"{node} replayed {at} events but differs from their projection "
                                           f"on {', '.join(diff)}")
        elif model == old:
            self.note("rebuild-identical", f"{node} replayed {at} events: identical read model")
        else:
            diff = [a for a in ACCOUNTS if old.get(a) != model.get(a)]
            self.note("rebuild-identical", f"{node} replayed {at} events: the projection of the log, which "
                                           f"repaired the old model on {', '.join(diff)}")

    # -- checks ------------------------------------------------------------------------
    def audit(self) -> None:
        projection = project(self.write.log)
        caught_up = []
        for r, node in self.read_models.items():
            if node.status == "down" or node.disk["rebuild"]:
                continue
            if self.mode == "projector":
                done = node.position == len(self.write.log)
            else:  # dual write: nothing on its way to this read model
                done = node.status == "up" and not any(
                    m.dst == r and m.type == "DIRECT" for m in self.net.inflight.values()) and not node._held
            if not done:
                continue
            caught_up.append(r)
            if node.model != projection:
                diff = [a for a in ACCOUNTS if node.model.get(a) != projection.get(a)]
                got = ", ".join(f"{a}={node.model.get(a, {}).get('balance')}" for a in diff)
                want = ", ".join(f"{a}={projection.get(a, {}).get('balance')}" for a in diff)
                self.fail("read-models-converge", f"{r} caught up but reads {got}; the log says {want}")
        lagging = [f"{r} {self.behind(node)} behind" for r, node in self.read_models.items() if r not in caught_up]
        self.note("read-models-converge", ", ".join(
            ([f"{', '.join(caught_up)} caught up and equal to the log's projection"] if caught_up else []) + lagging))

    # -- lab actions ---------------------------------------------------------------------
    @action("deposit", Arg("account", "word", choices=ACCOUNTS), Arg("amount", "int", lo=1, hi=10_000),
            group="request", help="Command: put money into an account.")
    def do_deposit(self, account: str, amount: int) -> None:
        self.client.command("deposit", account, amount)

    @action("withdraw", Arg("account", "word", choices=ACCOUNTS), Arg("amount", "int", lo=1, hi=10_000),
            group="request", help="Command: take money out; the write side rejects an overdraft.")
    def do_withdraw(self, account: str, amount: int) -> None:
        self.client.command("withdraw", account, amount)

    @action("query", Arg("account", "word", choices=ACCOUNTS), Arg("replica", "text", optional=True),
            group="request", help="Query: ask a read model for a balance (the next one, or the one you name).")
    def do_query(self, account: str, replica: str | None) -> None:
        if replica is not None and replica not in self.read_models:
            raise SimError(f"no read model '{replica}' (read models: {', '.join(self.read_models)})")
        self.client.query(account, replica)

    @action("add-replica",
            help="Add a read model; it fills up from the event log (dual write: seeded once, then direct writes).")
    def do_add_replica(self) -> None:
        if len(self.read_models) >= MAX_REPLICAS:
            raise SimError(f"at most {MAX_REPLICAS} read models")
        node = self.add_replica()
        self.emit("replica-added", node=node.id, position=node.position)

    @action("rebuild", Arg("replica", "text"),
            help="Throw a read model away and rebuild it by replaying the event log.")
    def do_rebuild(self, replica: str) -> None:
        if replica not in self.read_models:
            raise SimError(f"no read model '{replica}' (read models: {', '.join(self.read_models)})")
        node = self.read_models[replica]
        if self.mode != "projector":
            raise SimError("dual write has no projector to replay the log: rebuilds need mode=projector")
        if node.status != "up":
            raise SimError(f"{replica} is {node.status}; restart or resume it first")
        if node.disk["rebuild"]:
            raise SimError(f"{replica} is already rebuilding")
        self.count("rebuilds")
        self.emit("rebuild", node=replica, position=node.position)
        node.start_rebuild()
