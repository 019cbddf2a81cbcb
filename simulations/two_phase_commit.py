"""Two-phase commit: one coordinator, three participants, all or nothing.

An order touches three services: inventory (take one item from stock),
payment (charge 30 from the balance) and shipping (book a courier slot).
Each participant guards its resource with a lock; everyone keeps a durable
log (Gray 1978; Bernstein, Hadzilacos and Goodman 1987, chapter 7).

Phase 1, prepare (voting):
  * the coordinator logs BEGIN with the participant list and sends PREPARE
    to every participant at once (in parallel, not one after the other);
  * a participant takes the lock on its resource (waiting if another
    transaction holds it), checks it can do its part, logs PREPARED with the
    change it will make and votes YES; if it cannot, it votes NO and aborts
    on its own, which is allowed because it has promised nothing;
  * the coordinator waits for every vote, up to a timeout.

Phase 2, commit (completion):
  * all YES: the coordinator logs COMMIT (this write is the moment the
    transaction commits) and sends COMMIT to everyone;
  * a NO, or a vote still missing at the timeout: it logs and sends ABORT;
  * each participant applies or drops its change, logs the outcome, releases
    its lock and ACKs; the coordinator resends the decision until everyone
    has ACKed, then logs END.

A participant that voted YES is *in doubt*: it must not decide alone and
keeps its lock until it learns the decision, asking the coordinator every
second.  While the coordinator is down it waits, blocking every other
transaction that needs the same lock: 2PC's famous weakness.

Recovery from the logs: a restarted participant re-takes the locks of its
PREPARED transactions without an outcome and asks again; a restarted
coordinator resends every logged decision without END, and aborts every
transaction it began but never decided.

That is basic 2PC, "presumed nothing": BEGIN is logged, and an abort is
logged and acknowledged like a commit.  `presume=abort` runs presumed abort
(Mohan, Lindsay and Obermarck 1986), which most systems use: no BEGIN or
abort record, ABORT is sent once and never acknowledged, and the coordinator
forgets the transaction at once.  Asked about a transaction it has no record
of, it answers ABORT: no COMMIT record means abort.  Commits are handled as
before, so aborts cost fewer log writes and messages.

The `heuristic` mode shows why the rule "never decide alone" exists: an
in-doubt participant that waits too long aborts on its own (what XA calls a
heuristic decision), and if the coordinator decided COMMIT the transaction
is no longer atomic.  The `no-vote-timeout` mode shows why the coordinator
needs a vote timeout: without one, a participant that never answers blocks
the transaction, and the locks of the YES voters, for as long as it stays
away.

The checks observe the votes that reach the coordinator, the decisions it
logs or sends, and the participants' logs and locks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .kernel import Arg, Lab, Message, Node, Param, SimError, action, not_down, observe, on

PARTICIPANTS = ("inventory", "payment", "shipping")
RESOURCES = {  # name of the locked resource, initial value, change per order
    "inventory": ("stock", 20, -1),
    "payment": ("balance", 300, -30),
    "shipping": ("courier slots", 10, -1),
}
RETRY_EVERY = 1000  # ms between resends of a decision that is not yet ACKed
ASK_EVERY = 1000  # ms between an in-doubt participant's questions to the coordinator
RECOVER_WITHIN = 5000  # ms of a calm network after which a restarted coordinator must be done


@dataclass
class Tx:
    """A transaction as the coordinator knows it (rebuilt from its log after a crash)."""

    decision: str | None = None  # commit | abort, once logged (or, presumed abort, sent)
    votes: dict[str, str] = field(default_factory=dict)  # participant -> yes | no
    acks: list[str] = field(default_factory=list)
    done: bool = False  # END logged: every participant has the decision


class Coordinator(Node):
    def boot(self) -> None:
        self.role = "coordinator"
        self.disk.setdefault("log", [])
        self.txs: dict[str, Tx] = {}
        for rec in self.disk["log"]:  # rebuild every transaction from the log (presumed abort: no BEGIN record)
            tx = self.txs.setdefault(rec["tx"], Tx())
            if rec["rec"] in ("commit", "abort"):
                tx.decision = rec["rec"]
            elif rec["rec"] == "end":
                tx.done = True
        if self.restarted:
            self.after(0, self.recover, key="recover")  # first thing after the restart

    def view(self) -> dict:
        open_txs = [tx for tx, s in self.txs.items() if not s.done]
        state = "down" if self.status == "down" else f"open {','.join(open_txs[-2:])}" if open_txs else "idle"
        return {"label": f"{state} · log {len(self.disk['log'])}"}

    def log(self, tx: str, rec: str, **extra) -> None:
        """A forced write to the durable log: it survives a crash."""
        self.disk["log"].append({"tx": tx, "rec": rec, "t": round(self.now, 3), **extra})
        self.lab.emit("log", node=self.id, tx=tx, rec=rec)

    def recover(self) -> None:
        for tx, state in self.txs.items():
            if state.done:
                continue
            self.lab.emit("recover", node=self.id, tx=tx, found=state.decision or "no decision",
                          action="resend" if state.decision else "abort")
            if state.decision is None:  # began but never decided: presumed abort
                self.decide(tx, "abort", "coordinator restarted without a decision (presumed abort)")
            else:
                self.lab.emit("phase", tx=tx, phase="committing" if state.decision == "commit" else "aborting")
                self.send_decision(tx)

    # -- phase 1: prepare ---------------------------------------------------------
    @on("BEGIN")
    def begin(self, msg: Message) -> None:
        tx = msg.body["tx"]
        self.txs[tx] = Tx()
        if self.lab.params["presume"] == "nothing":
            self.log(tx, "begin", parts=list(PARTICIPANTS))  # presumed abort needs no BEGIN record
        self.lab.witness("prepare", tx=tx)
        for p in PARTICIPANTS:  # all participants at once
            self.send(p, "PREPARE", tx=tx)
        if self.lab.params["mode"] != "no-vote-timeout":
            self.after(self.lab.params["vote_timeout"], self.votes_late, tx, key=("votes", tx))
        self.lab.emit("phase", tx=tx, phase="preparing")
        self.lab.armed_crash(self, "after-prepare")

    @on("VOTE")
    def on_vote(self, msg: Message) -> None:
        tx, vote = msg.body["tx"], msg.body["vote"]
        state = self.txs.get(tx)
        if state is None or state.decision is not None:
            return  # a late vote: the transaction is already decided
        state.votes[msg.src] = vote
        self.lab.emit("vote", tx=tx, node=msg.src, vote=vote)
        if vote == "no":
            self.decide(tx, "abort", f"{msg.src} voted NO")
        elif len(state.votes) == len(PARTICIPANTS):
            self.decide(tx, "commit", "every participant voted YES")

    def votes_late(self, tx: str) -> None:  # (deciding cancels this timer)
        missing = [p for p in PARTICIPANTS if p not in self.txs[tx].votes]
        self.decide(tx, "abort", f"timeout: no vote from {', '.join(missing)}")

    # -- phase 2: commit or abort ---------------------------------------------------
    def decide(self, tx: str, decision: str, why: str) -> None:
        self.cancel(("votes", tx))
        self.txs[tx].decision = decision
        presumed_abort = decision == "abort" and self.lab.params["presume"] == "abort"
        if not presumed_abort:
            self.log(tx, decision)  # the commit point
        self.lab.witness("decided", tx=tx, decision=decision, why=why)
        self.lab.emit("phase", tx=tx, phase="committing" if decision == "commit" else "aborting")
        if self.lab.armed_crash(self, "after-decision"):
            return
        if presumed_abort:
            # Presumed abort: tell everyone once, expect no ACK, forget the transaction.
            del self.txs[tx]
            for p in PARTICIPANTS:
                self.send(p, "ABORT", tx=tx)
            self.lab.witness("ended", tx=tx)
            return
        self.send_decision(tx)

    def send_decision(self, tx: str) -> None:
        """Send the decision to every participant that has not ACKed it; again every RETRY_EVERY, until the last ACK."""
        state = self.txs[tx]
        for p in PARTICIPANTS:
            if p in state.acks:
                continue
            self.send(p, state.decision.upper(), tx=tx)
            if self.lab.armed_crash(self, "mid-commit"):
                return  # crashed after the first decision left
        self.after(RETRY_EVERY, self.send_decision, tx, key=("retry", tx))

    @on("ACK")
    def on_ack(self, msg: Message) -> None:
        tx = msg.body["tx"]
        state = self.txs.get(tx)
        if state is None or state.done or msg.src in state.acks:
            return
        state.acks.append(msg.src)
        if len(state.acks) == len(PARTICIPANTS):
            state.done = True
            self.cancel(("retry", tx))
            self.log(tx, "end")
            self.lab.witness("ended", tx=tx)

    @on("STATUS?")
    def status_asked(self, msg: Message) -> None:
        # An in-doubt participant asks.  Unknown transaction: presumed abort.
        state = self.txs.get(msg.body["tx"])
        decision = "abort" if state is None else state.decision
        if decision:
            self.send(msg.src, decision.upper(), tx=msg.body["tx"])


class Participant(Node):
    def boot(self) -> None:
        self.role = "participant"
        self.disk.setdefault("value", RESOURCES[self.id][1])
        self.disk.setdefault("log", [])
        self.state = {rec["tx"]: rec["rec"] for rec in self.disk["log"]}  # tx -> prepared / committed / aborted
        self.lock: str | None = None
        self.waiting: list[str] = []  # transactions whose PREPARE waits for the lock
        self.doubt_since: dict[str, float] = {}
        # Recovery: a PREPARED transaction without an outcome is still in doubt: take its lock again, first thing.
        for tx, st in self.state.items():
            if st == "prepared":
                self.lab.emit("in-doubt", node=self.id, tx=tx, why="recovered from the log")
                self.wait_for_decision(tx)

    def view(self) -> dict:
        doubt = list(self.doubt_since)
        state = f"{doubt[0]} in doubt" if doubt else f"lock {self.lock}" if self.lock else "free"
        return {"label": "down" if self.status == "down" else f"{state} · {self.disk['value']}"}

    def log(self, tx: str, rec: str, **extra) -> None:
        self.disk["log"].append({"tx": tx, "rec": rec, "t": round(self.now, 3), **extra})
        self.state[tx] = rec
        self.lab.emit("log", node=self.id, tx=tx, rec=rec)

    # -- phase 1: prepare and vote --------------------------------------------------
    @on("PREPARE")
    def on_prepare(self, msg: Message) -> None:
        tx = msg.body["tx"]
        st = self.state.get(tx)
        if st is not None:  # a repeated PREPARE: repeat the answer
            self.send("coordinator", "VOTE", tx=tx, vote="no" if st == "aborted" else "yes")
            return
        if tx in self.waiting or self.lab.armed_crash(self, "before-vote"):
            return  # already queued for the lock, or crashed where the learner armed it
        if self.lock is not None:
            self.waiting.append(tx)  # the lock is taken: this transaction is blocked
            self.lab.emit("blocked", node=self.id, tx=tx, behind=self.lock)
            return
        self.vote(tx)

    def vote(self, tx: str) -> None:
        new = self.disk["value"] + RESOURCES[self.id][2]
        if self.lab.vote_no_armed(self.id) or new < 0:
            # Nothing promised yet, so a NO voter may abort on its own.
            self.log(tx, "aborted", how="voted no")
            self.send("coordinator", "VOTE", tx=tx, vote="no")
            self.next_waiting()
            return
        self.log(tx, "prepared", new=new)  # on disk before the YES leaves: a promise
        self.send("coordinator", "VOTE", tx=tx, vote="yes")
        self.wait_for_decision(tx)
        self.lab.armed_crash(self, "after-vote")

    def wait_for_decision(self, tx: str) -> None:
        """In doubt: keep the lock, and ask the coordinator until the decision comes."""
        self.lock = tx
        self.doubt_since[tx] = self.now
        self.after(ASK_EVERY, self.ask, key="ask")
        if self.lab.params["mode"] == "heuristic" and not self.pending("heuristic"):
            self.after(self.lab.params["heuristic_after"], self.decide_alone, key="heuristic")

    def next_waiting(self) -> None:
        while self.lock is None and self.waiting:
            self.vote(self.waiting.pop(0))

    # -- phase 2: learn the decision ----------------------------------------------------
    @on("COMMIT", "ABORT")
    def decision(self, msg: Message) -> None:
        self.on_decision(msg.body["tx"], msg.type.lower())

    def on_decision(self, tx: str, decision: str, how: str = "coordinator") -> None:
        st = self.state.get(tx)
        if st not in ("committed", "aborted"):  # (a repeated decision is only acknowledged again)
            if tx in self.waiting:
                self.waiting.remove(tx)
            if decision == "commit" and st == "prepared":  # apply the change PREPARED logged
                self.disk["value"] = next(r["new"] for r in self.disk["log"] if r["tx"] == tx and r["rec"] == st)
                self.log(tx, "committed", how=how)
            else:
                self.log(tx, "aborted", how=how)
            self.doubt_since.pop(tx, None)
            if self.lock == tx:
                self.lock = None
            if not self.doubt_since:
                self.cancel("ask")
                self.cancel("heuristic")
        # Presumed abort: an ABORT is never acknowledged (the coordinator has forgotten it).
        if how == "coordinator" and (decision == "commit" or self.lab.params["presume"] == "nothing"):
            self.send("coordinator", "ACK", tx=tx)
        self.next_waiting()

    def ask(self) -> None:
        """In doubt: ask the coordinator for the decision, again and again (until the last doubt ends)."""
        for tx in self.doubt_since:
            self.send("coordinator", "STATUS?", tx=tx)
        self.after(ASK_EVERY, self.ask, key="ask")

    def decide_alone(self) -> None:
        # heuristic mode only: give up waiting and abort alone.  Unsafe!
        for tx in list(self.doubt_since):
            self.lab.emit("heuristic", node=self.id, tx=tx, decision="abort")
            self.on_decision(tx, "abort", how="alone")


@dataclass
class Record:
    """A transaction as the page shows it, pieced together from the run's events."""

    id: str
    start: float
    phase: str = "new"
    votes: dict[str, str] = field(default_factory=dict)  # the votes the coordinator heard
    voted_yes: set[str] = field(default_factory=set)  # the participants that promised (logged PREPARED)
    decision: str | None = None
    why: str = ""
    outcomes: dict[str, str] = field(default_factory=dict)  # participant -> committed | aborted
    blocked: dict[str, str] = field(default_factory=dict)  # participant -> the transaction holding its lock
    end: float | None = None


class TwoPhaseCommit(Lab):
    slug = "two-phase-commit"
    title = "Two-phase commit"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    INVARIANTS = {
        "atomicity": ("standard",),
        "yes-voter-waits": ("standard",),
        "coordinator-recovers": ("*",),
        "timeout-aborts": ("standard", "heuristic"),  # no-vote-timeout exists to break it
    }
    PARAMS = (
        Param("mode", "standard", "standard: an in-doubt participant waits for the coordinator however long it "
              "takes; heuristic: it aborts alone after a while (unsafe, for comparison); no-vote-timeout: the "
              "coordinator waits for missing votes forever (a flaw, for comparison).",
              choices=("standard", "heuristic", "no-vote-timeout")),
        Param("presume", "nothing", "nothing: basic 2PC, aborts are logged and acknowledged like commits; abort: "
              "presumed abort, no BEGIN or abort record, ABORT is not acknowledged, no record means abort.",
              choices=("nothing", "abort")),
        Param("vote_timeout", 1500, "How long (ms) the coordinator waits for the votes before it aborts.",
              lo=200, hi=10_000),
        Param("heuristic_after", 3000, "heuristic mode: how long (ms) a participant stays in doubt before it "
              "aborts alone.", lo=500, hi=20_000),
    )

    def setup(self) -> None:
        self.add_node(Coordinator(self, "coordinator"))
        for p in PARTICIPANTS:
            self.add_node(Participant(self, p))
        self.txs: dict[str, Record] = {}
        self.armed: dict[str, str] = {}  # node -> crash point armed for its next transaction
        self.vote_no: dict[str, str] = {}  # participant -> "next" or "always"
        self.recovering: dict[str, bool] = {}  # transactions a restarted coordinator must finish
        self.calm_since = 0.0
        self.metrics.update({"transactions": 0, "committed": 0, "aborted": 0, "in_doubt_now": 0,
                             "longest_doubt_ms": 0, "log_writes": 0})
        # timeout-aborts: the first decision the coordinator logged or sent, and when it last was crashed or paused.
        self.seen_decision: dict[str, str] = {}
        self.coordinator_faulted_at = -1.0
        self.add_check("atomicity", "Every transaction is all or nothing: no participant commits while another aborts.")
        self.add_check("yes-voter-waits", "A participant that voted YES never decides alone and keeps its lock until "
                       "it learns the decision (it blocks while the coordinator is down).")
        self.add_check("coordinator-recovers", "A restarted coordinator finishes every transaction that was open "
                       "(resends logged decisions; undecided ones end in abort, logged or presumed).")
        self.add_check("timeout-aborts", "The coordinator commits only with a YES from every participant; a vote "
                       "that has not arrived when the vote timeout ends aborts the transaction.")
        self.every(250, self.audit)

    # -- transactions as the page shows them: watched, not reported -----------------------
    @observe("phase")
    def phase_changed(self, event: dict) -> None:
        self.txs[event["tx"]].phase = event["phase"]

    @observe("vote")
    def vote_heard(self, event: dict) -> None:  # by the coordinator
        self.txs[event["tx"]].votes[event["node"]] = event["vote"]

    @observe("blocked")
    def lock_taken(self, event: dict) -> None:
        self.txs[event["tx"]].blocked[event["node"]] = event["behind"]

    @observe("log")
    def logged(self, event: dict) -> None:
        tx, node, rec = event["tx"], event["node"], event["rec"]
        if node == "coordinator":
            self.count("log_writes")
        elif rec == "prepared":
            self.txs[tx].voted_yes.add(node)  # the participant's side: it promised
        elif rec in ("committed", "aborted"):  # the participant's outcome, and how it learned it
            t = self.txs[tx]
            t.outcomes[node] = rec
            if self.nodes[node].disk["log"][-1]["how"] == "alone" and node in t.voted_yes:
                self.fail("yes-voter-waits", f"{node} voted YES on {tx} and then aborted alone, without the "
                          "coordinator's decision")
            if set(t.outcomes.values()) == {"committed", "aborted"}:
                split = ", ".join(f"{p} {r}" for p, r in t.outcomes.items())
                self.fail("atomicity", f"{tx} is half done: {split}")

    @observe("send")
    def decision_sent(self, event: dict) -> None:  # (an ABORT for a transaction it has no record of is a decision too)
        if event["src"] == "coordinator" and event["type"] in ("COMMIT", "ABORT"):
            self.decision_seen(event["tx"], event["type"].lower())

    @observe("decided")
    def decided(self, fact: dict) -> None:
        t = self.txs[fact["tx"]]
        t.decision, t.why = fact["decision"], fact["why"]
        self.decision_seen(t.id, t.decision)  # right after the write to its log (presumed abort: no write)
        if t.why.startswith("timeout"):
            self.note("timeout-aborts", f"{t.id}: {t.why} → aborted")

    @observe("ended")
    def ended(self, fact: dict) -> None:
        t = self.txs[fact["tx"]]
        t.end = round(self.now, 3)
        outcome = "committed" if t.decision == "commit" else "aborted"
        mixed = set(t.outcomes.values()) == {"committed", "aborted"}
        self.emit("phase", tx=t.id, phase="half-done" if mixed else outcome)
        self.count(outcome)

    # -- armed faults -------------------------------------------------------------------
    def armed_crash(self, node: Node, point: str) -> bool:
        """Crash `node` here if the learner armed this crash point for it."""
        if self.armed.get(node.id) != point:
            return False
        del self.armed[node.id]
        self.emit("armed-crash", node=node.id, point=point)
        self.do_crash(node.id)
        return True

    def vote_no_armed(self, participant: str) -> bool:
        how = self.vote_no.get(participant)
        if how == "next":
            del self.vote_no[participant]
        return how is not None

    # -- checks ---------------------------------------------------------------------------
    @observe("prepare")
    def vote_timeout_starts(self, fact: dict) -> None:
        """The coordinator sends PREPARE: its vote timeout starts now."""
        self.sim.after(self.params["vote_timeout"] + 1, self.judge_vote_timeout, fact["tx"], self.now)

    def decision_seen(self, tx: str, decision: str) -> None:
        if tx in self.seen_decision:
            return
        self.seen_decision[tx] = decision
        missing = [p for p in PARTICIPANTS if self.txs[tx].votes.get(p) != "yes"]
        if decision == "commit" and missing:
            self.fail("timeout-aborts", f"{tx} committed without a YES from {', '.join(missing)}")

    def judge_vote_timeout(self, tx: str, began: float) -> None:
        """One vote timeout after PREPARE: a transaction still short of a vote must be aborted by now
        (unless the coordinator was crashed or paused meanwhile: its clock stopped)."""
        votes = self.txs[tx].votes
        if tx in self.seen_decision or len(votes) == len(PARTICIPANTS) or self.coordinator_faulted_at >= began:
            return
        missing = ", ".join(p for p in PARTICIPANTS if p not in votes)
        self.fail("timeout-aborts", f"{tx}: no vote from {missing} {self.params['vote_timeout']} ms after "
                                    "PREPARE, and the coordinator has not aborted (it waits, and the YES voters "
                                    "keep their locks)")

    def finished(self, tx: str) -> bool:
        """Nobody waits on tx: the coordinator has no open record of it, no running participant is in doubt."""
        state = self.nodes["coordinator"].txs.get(tx)
        if state is not None and not state.done:
            return False
        return not any(tx in self.nodes[p].doubt_since for p in PARTICIPANTS if self.nodes[p].status != "down")

    def after_fault(self, fault: str, node_id: str | None) -> None:
        self.calm_since = self.now
        if node_id == "coordinator" and fault in ("crash", "pause", "resume", "restart", "slow"):
            self.coordinator_faulted_at = self.now
        if fault == "restart" and node_id == "coordinator":
            for tx, t in self.txs.items():
                if not self.finished(tx) or (t.end is None and t.decision is None):
                    self.recovering[tx] = True

    def audit(self) -> None:
        running = [self.nodes[p] for p in PARTICIPANTS if self.nodes[p].status != "down"]  # (a crashed one forgot)
        doubts = [(node, tx, since) for node in running for tx, since in node.doubt_since.items()]
        self.metrics["in_doubt_now"] = len(doubts)
        for node, tx, since in doubts:
            self.metrics["longest_doubt_ms"] = max(self.metrics["longest_doubt_ms"], round(self.now - since))
            if node.lock != tx:
                self.fail("yes-voter-waits", f"{node.id} is in doubt on {tx} but does not hold its lock")
        for tx in [tx for tx in self.recovering if self.finished(tx)]:
            del self.recovering[tx]
            self.holds("coordinator-recovers", f"the restarted coordinator finished {tx} "
                       f"({self.seen_decision.get(tx, 'abort, presumed')})")
        calm = (all(n.status == "up" for n in self.nodes.values()) and not self.net.partition
                and not any(link.cut or link.loss or link.delay for link in self.net.links.values()))
        if not calm:
            self.calm_since = self.now
        elif self.recovering and self.now - self.calm_since > RECOVER_WITHIN:
            stuck = ", ".join(self.recovering)
            self.fail("coordinator-recovers", f"{stuck} still unfinished {RECOVER_WITHIN / 1000:.0f}s after the "
                      "restarted coordinator could reach everyone")

    # -- actions ----------------------------------------------------------------------------
    @action("begin", group="request", help="The coordinator starts a new order transaction (prepare all three).")
    def do_begin(self) -> None:
        coord = self.nodes["coordinator"]
        if coord.status != "up":
            raise SimError(f"the coordinator is {coord.status}; "
                           f"{'restart' if coord.status == 'down' else 'resume'} it first")
        tx = f"T{len(self.txs) + 1}"
        self.count("transactions")
        self.txs[tx] = Record(tx, round(self.now, 3))
        self.emit("begin", tx=tx)
        coord.receive(Message(0, "client", "coordinator", "BEGIN", {"tx": tx}, self.now, self.now))

    @action("vote-no", Arg("participant"), Arg("when", "word", choices=("next", "always", "off")),
            nodes=PARTICIPANTS, not_for="only a participant votes ({listed}); got '{node}'",
            help="Make a participant vote NO on its next transaction, on every one, or stop doing so.")
    def do_vote_no(self, participant: str, when: str) -> None:
        if when == "off":
            self.vote_no.pop(participant, None)
        else:
            self.vote_no[participant] = when
        self.emit("vote-no", node=participant, when=when)

    @action("crash-participant", Arg("participant"), Arg("when", "word", choices=("before-vote", "after-vote")),
            nodes=PARTICIPANTS, not_for="pick a participant ({listed}); got '{node}'",
            when=not_down, refuse="{node} is already down",
            help="Arm a crash for the participant's next PREPARE: before it votes, or right after it voted YES.")
    def do_crash_participant(self, participant: str, when: str) -> None:
        self.armed[participant] = when
        self.emit("armed", node=participant, point=when)

    @action("crash-coordinator", Arg("when", "word", choices=("after-prepare", "after-decision", "mid-commit")),
            help="Arm a coordinator crash for the next transaction: right after sending PREPARE, right after "
                 "logging the decision, or after the decision reached only the first participant.")
    def do_crash_coordinator(self, when: str) -> None:
        if self.nodes["coordinator"].status == "down":
            raise SimError("the coordinator is already down")
        self.armed["coordinator"] = when
        self.emit("armed", node="coordinator", point=when)

    # -- the page -----------------------------------------------------------------------------
    def part_state(self, t: Record, p: str) -> str:
        node = self.nodes[p]
        if p in t.outcomes or node.status == "down":
            return t.outcomes.get(p, "down")
        return "in doubt" if t.id in node.doubt_since else "waiting" if t.id in node.waiting else "—"

    def view(self) -> dict:
        coord, participants = self.nodes["coordinator"], [self.nodes[p] for p in PARTICIPANTS]
        txs = []
        for t in list(self.txs.values())[-5:]:
            blocked = [f"{p} waits for lock held by {b}" for p, b in t.blocked.items() if t.id in self.nodes[p].waiting]
            if coord.status == "down" and t.end is None and any(t.id in n.doubt_since for n in participants):
                blocked.insert(0, "coordinator down, participants in doubt")
            txs.append({"id": t.id, "phase": t.phase, "decision": t.decision, "why": t.why, "start": t.start,
                        "end": t.end, "blocked": blocked,
                        "parts": [{"p": p, "vote": t.votes.get(p) or ("yes" if p in t.voted_yes else None),
                                   "heard": p in t.votes, "state": self.part_state(t, p)} for p in PARTICIPANTS]})
        parts = []
        for node in participants:
            p, up = node.id, node.status != "down"  # a crashed participant's memory is gone: only its disk counts
            parts.append({"id": p, "status": node.status, "resource": RESOURCES[p][0], "value": node.disk["value"],
                          "lock": node.lock if up else None, "in_doubt": list(node.doubt_since) if up else [],
                          "waiting": list(node.waiting) if up else [],
                          "armed": self.armed.get(p) or (f"vote NO {self.vote_no[p]}" if p in self.vote_no else ""),
                          "log": node.disk["log"][-4:]})
        return {"mode": self.params["mode"], "messages_sent": self.net.sent, "transactions": txs, "participants": parts,
                "coordinator_log": coord.disk["log"][-6:], "coordinator_armed": self.armed.get("coordinator", ""),
                "edges": [["coordinator", p] for p in PARTICIPANTS]}
