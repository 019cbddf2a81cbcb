"""Hinted handoff: a leaderless store keeps taking writes while a replica is down.

Six nodes n1..n6 sit on a hash ring (consistent hashing, as in Dynamo).  A
key is stored on N = 3 nodes: the first three met walking clockwise from the
key's position, its *preferred replicas*.  Any node can coordinate a request:

Write (coordinator):
  * send the value, with a version number, to the N preferred replicas;
  * a replica that does not answer within ACK_WAIT is suspected down;
  * sloppy quorum: instead of giving up on it, send the value to the next
    healthy node along the ring, a *stand-in*, with a HINT naming the replica
    it was meant for;
  * reply to the client once W nodes have stored it (stand-ins count).

Stand-in:
  * keeps the hinted value apart from its own data, on disk, with the time it
    arrived; a hint older than the hint TTL is thrown away;
  * hands the hint off: when the intended replica says HELLO after a restart
    (and on a timer, in case it missed that), it sends the value over and
    deletes the hint once the replica acknowledges.

Read (coordinator): ask the preferred replicas, answer with the newest of
the first R replies, then write the newest back to any replica that answered
with an older version (read repair).  An `anti-entropy` round compares every
replica's versions with the other replicas of the same keys and repairs them.

With `quorum=strict` there are no stand-ins and no hints: a write succeeds
only if W preferred replicas take it, and a replica that was down stays stale
until read repair or anti-entropy reaches it.
"""

from __future__ import annotations

import math
import zlib

from .kernel import Arg, Lab, Node, Param, SimError, action

N = 3  # replicas per key
RING = ("n1", "n2", "n3", "n4", "n5", "n6")
ACK_WAIT = 150  # ms a coordinator waits for a replica before suspecting it
CLIENT_WAIT = 800  # ms the client waits for a coordinator before trying the next node
HANDOFF_EVERY = 1000  # ms between a stand-in's attempts to hand its hints off
SETTLE = 1000  # ms the checks give a restarted replica (and a fresh write) before judging
KEYS = ("alice", "bob", "carol", "dave")  # the background traffic: bank balances


def token(node_id: str) -> int:
    """Where a node sits on the ring (degrees): n1 at 0, n2 at 60, ..."""
    return RING.index(node_id) * 360 // len(RING)


def position(key: str) -> int:
    """Where a key falls on the ring (degrees)."""
    return zlib.crc32(key.encode()) % 360


def walk(key: str) -> list[str]:
    """Every node, clockwise from the key's position: the first N are its preferred replicas."""
    pos = position(key)
    first = next((i for i, n in enumerate(RING) if token(n) >= pos), 0)
    return [RING[(first + i) % len(RING)] for i in range(len(RING))]


def preferred(key: str) -> list[str]:
    return walk(key)[:N]


class Replica(Node):
    """A storage node: its own data, the hints it keeps for others, and the
    coordinator role for the requests a client sends it."""

    def boot(self) -> None:
        self.disk.setdefault("data", {})  # key -> {"value", "version"}
        self.disk.setdefault("hints", [])  # [{"hint", "for", "key", "value", "version", "stored"}]
        self.data: dict = self.disk["data"]
        self.hints: list = self.disk["hints"]
        self.suspects: list[str] = []  # nodes this one believes are down
        self.ops: dict[int, dict] = {}  # requests this node coordinates
        self.next_op = 1
        self.up_since = self.now
        self.update_role()
        if self.lab.started:
            # Back from a crash: tell everyone, so stand-ins hand their hints over.
            for other in [*RING, "client"]:
                if other != self.id:
                    self.send(other, "HELLO")
        if self.hints:
            self.set_timer("handoff", HANDOFF_EVERY)

    def update_role(self) -> None:
        self.role = "stand-in" if self.hints else "replica"

    def suspect(self, node: str) -> None:
        if node not in self.suspects:
            self.suspects.append(node)
            self.lab.emit("suspect", node=self.id, peer=node)

    def trust(self, node: str) -> None:
        if node in self.suspects:
            self.suspects.remove(node)

    # -- storing ---------------------------------------------------------------------
    def store(self, key: str, value: str, version: int) -> bool:
        """Keep the newer version (last write wins by version number)."""
        have = self.data.get(key)
        if have and have["version"] >= version:
            return False
        self.data[key] = {"value": value, "version": version}
        return True

    def keep_hint(self, intended: str, key: str, value: str, version: int) -> None:
        self.lab.hint_counter += 1
        hint = {"hint": self.lab.hint_counter, "for": intended, "key": key, "value": value,
                "version": version, "stored": round(self.now, 3)}
        self.hints.append(hint)
        self.update_role()
        self.lab.count("hints_stored")
        self.lab.emit("hint-stored", node=self.id, intended=intended, key=key, version=version, hint=hint["hint"])
        if not self.has_timer("handoff"):
            self.set_timer("handoff", HANDOFF_EVERY)

    # -- messages ----------------------------------------------------------------------
    def on_message(self, msg) -> None:
        kind, body, src = msg.type, msg.body, msg.src
        self.trust(src)  # anyone who talks to us is up
        if kind == "HELLO":
            self.hand_off(only=src)
        elif kind == "PUT":
            self.coordinate_write(src, body)
        elif kind == "GET":
            self.coordinate_read(src, body)
        elif kind == "STORE":
            if body.get("intended"):
                self.keep_hint(body["intended"], body["key"], body["value"], body["version"])
            elif self.store(body["key"], body["value"], body["version"]):
                self.lab.emit("store", node=self.id, key=body["key"], version=body["version"])
            self.send(src, "STORED", op=body["op"])
        elif kind == "STORED":
            self.on_stored(src, body["op"])
        elif kind == "READ":
            have = self.data.get(body["key"]) or {"value": None, "version": 0}
            self.send(src, "VALUE", op=body["op"], key=body["key"], value=have["value"], version=have["version"])
        elif kind == "VALUE":
            self.on_value(src, body)
        elif kind in ("HINT", "REPAIR"):
            if self.store(body["key"], body["value"], body["version"]):
                self.lab.emit("repaired" if kind == "REPAIR" else "handed-off", node=self.id, key=body["key"],
                              version=body["version"], by=src)
            if kind == "HINT":
                self.send(src, "HINT-ACK", hint=body["hint"])
        elif kind == "HINT-ACK":
            self.hint_delivered(src, body["hint"])
        elif kind == "DIGEST":  # anti-entropy: compare versions key by key
            behind = []
            for key, version in body["versions"]:
                have = self.data.get(key)
                mine = have["version"] if have else 0
                if mine > version:
                    self.send(src, "REPAIR", key=key, value=have["value"], version=mine)
                elif mine < version:
                    behind.append(key)
            if behind:
                self.send(src, "WANT", keys=behind)
        elif kind == "WANT":
            for key in body["keys"]:
                have = self.data[key]
                self.send(src, "REPAIR", key=key, value=have["value"], version=have["version"])

    # -- coordinating a write ---------------------------------------------------------
    def coordinate_write(self, client: str, body: dict) -> None:
        op = {"op": self.next_op, "kind": "write", "client": client, "req": body["req"], "key": body["key"],
              "value": body["value"], "version": body["version"], "acks": [], "waiting": {}, "tried": [],
              "replied": False}
        self.next_op += 1
        self.ops[op["op"]] = op
        for node, intended in self.targets(body["key"]):
            self.store_at(op, node, intended)
        self.settle_write(op)

    def targets(self, key: str) -> list[tuple[str, str | None]]:
        """The N nodes to write to, each with the replica it stands in for (or None)."""
        wanted = preferred(key)
        if self.lab.quorum == "strict":
            return [(n, None) for n in wanted if n not in self.suspects]
        skipped = [n for n in wanted if n in self.suspects]
        chosen = []
        # Nodes I believe up first; if too few, suspects too (a suspicion may be wrong).
        order = [n for n in walk(key) if n not in self.suspects] + [n for n in walk(key) if n in self.suspects]
        for node in order:
            if len(chosen) == N:
                break
            if node in wanted:
                chosen.append((node, None))
                if node in skipped:  # tried in person after all
                    skipped.remove(node)
            elif skipped:
                chosen.append((node, skipped.pop(0)))
        # A suspect tried in person after all needs no stand-in: give its stand-in to a replica that
        # is still missing, so every preferred replica left out has a hint naming it.
        missing = [n for n in wanted if all(n != node for node, intended in chosen if intended is None)]
        stand_ins = [node for node, intended in chosen if intended is not None]
        return [(n, None) for n, intended in chosen if intended is None] + list(zip(stand_ins, missing))

    def store_at(self, op: dict, node: str, intended: str | None) -> None:
        op["tried"].append(node)
        if node == self.id:  # my own copy needs no message
            if intended:
                self.keep_hint(intended, op["key"], op["value"], op["version"])
            elif self.store(op["key"], op["value"], op["version"]):
                self.lab.emit("store", node=self.id, key=op["key"], version=op["version"])
            op["acks"].append(node)
            return
        op["waiting"][node] = intended
        self.send(node, "STORE", op=op["op"], key=op["key"], value=op["value"], version=op["version"],
                  intended=intended)
        self.set_timer(f"store:{op['op']}:{node}", ACK_WAIT, op=op["op"], node=node)

    def on_stored(self, node: str, op_id: int) -> None:
        op = self.ops.get(op_id)
        if op and node in op["waiting"]:
            del op["waiting"][node]
            self.cancel_timer(f"store:{op_id}:{node}")
            op["acks"].append(node)
            self.settle_write(op)

    def store_timed_out(self, op_id: int, node: str) -> None:
        op = self.ops.get(op_id)
        if not op or node not in op["waiting"]:
            return
        intended = op["waiting"].pop(node)
        self.suspect(node)
        if self.lab.quorum == "sloppy":
            # Sloppy quorum: the next healthy node along the ring takes the write, with a hint.
            left = [n for n in walk(op["key"]) if n not in op["tried"]]
            trusted = [n for n in left if n not in self.suspects]
            if trusted or left:  # a node believed up if any, else a suspect
                self.store_at(op, (trusted or left)[0], intended or node)
            elif (intended or node) != self.id:
                # Nobody is left to stand in: the coordinator keeps the hint itself (as Cassandra does).
                self.keep_hint(intended or node, op["key"], op["value"], op["version"])
        self.settle_write(op)

    def settle_write(self, op: dict) -> None:
        if not op["replied"] and len(op["acks"]) >= self.lab.w:
            op["replied"] = True
            self.send(op["client"], "PUT-OK", req=op["req"], acks=",".join(op["acks"]))
        if not op["waiting"]:
            if not op["replied"]:
                op["replied"] = True
                self.send(op["client"], "PUT-FAIL", req=op["req"], acks=len(op["acks"]))
            self.ops.pop(op["op"], None)

    # -- coordinating a read (with read repair) ---------------------------------------
    def coordinate_read(self, client: str, body: dict) -> None:
        key = body["key"]
        asked = [n for n in preferred(key) if n not in self.suspects]
        op = {"op": self.next_op, "kind": "read", "client": client, "req": body["req"], "key": key,
              "answers": {}, "waiting": list(asked), "replied": False}
        self.next_op += 1
        self.ops[op["op"]] = op
        for node in asked:
            if node == self.id:
                have = self.data.get(key) or {"value": None, "version": 0}
                self.on_value(node, {"op": op["op"], "value": have["value"], "version": have["version"]})
            else:
                self.send(node, "READ", op=op["op"], key=key)
        if op["op"] in self.ops:
            self.set_timer(f"read:{op['op']}", ACK_WAIT, op=op["op"])
            self.settle_read(op, timed_out=False)

    def on_value(self, node: str, body: dict) -> None:
        op = self.ops.get(body["op"])
        if not op or node not in op["waiting"]:
            return
        op["waiting"].remove(node)
        op["answers"][node] = {"value": body["value"], "version": body["version"]}
        self.settle_read(op, timed_out=False)

    def settle_read(self, op: dict, timed_out: bool) -> None:
        answers = op["answers"]
        if not op["replied"] and len(answers) >= self.lab.r:
            op["replied"] = True
            newest = max(answers.values(), key=lambda a: a["version"])
            self.send(op["client"], "GET-OK", req=op["req"], value=newest["value"], version=newest["version"],
                      replies=len(answers))
        if op["waiting"] and not timed_out:
            return
        for node in op["waiting"]:
            self.suspect(node)
        if not op["replied"]:
            op["replied"] = True
            self.send(op["client"], "GET-FAIL", req=op["req"], replies=len(answers))
        if answers:  # read repair: bring every replica that answered up to the newest version
            newest = max(answers.values(), key=lambda a: a["version"])
            for node, answer in answers.items():
                if answer["version"] < newest["version"]:
                    self.lab.count("read_repairs")
                    self.lab.emit("read-repair", coordinator=self.id, node=node, key=op["key"],
                                  have=answer["version"], version=newest["version"])
                    if node == self.id:
                        self.store(op["key"], newest["value"], newest["version"])
                    else:
                        self.send(node, "REPAIR", key=op["key"], value=newest["value"], version=newest["version"])
        self.cancel_timer(f"read:{op['op']}")
        self.ops.pop(op["op"], None)

    # -- handing hints off ----------------------------------------------------------------
    def hand_off(self, only: str | None = None) -> None:
        """Drop expired hints, then send the rest to their replicas.  A replica
        believed down gets only one hint, as a probe."""
        for hint in list(self.hints):
            if self.now - hint["stored"] > self.lab.hint_ttl:
                self.hints.remove(hint)
                self.lab.hint_gone(self, hint, "expired")
        probed: list[str] = []
        for hint in self.hints:
            target = hint["for"]
            if (only and target != only) or target in probed:
                continue
            if target in self.suspects:
                probed.append(target)
            self.send(target, "HINT", hint=hint["hint"], key=hint["key"], value=hint["value"], version=hint["version"])
            self.set_timer(f"hint-wait:{target}", ACK_WAIT, node=target)
        self.update_role()

    def hint_delivered(self, node: str, hint_id: int) -> None:
        self.cancel_timer(f"hint-wait:{node}")
        hint = next((h for h in self.hints if h["hint"] == hint_id), None)
        if hint:
            self.hints.remove(hint)
            self.lab.hint_gone(self, hint, "delivered")
            self.update_role()

    def on_timer(self, name: str, data: dict) -> None:
        if name.startswith("store:"):
            self.store_timed_out(data["op"], data["node"])
        elif name.startswith("read:"):
            op = self.ops.get(data["op"])
            if op:
                self.settle_read(op, timed_out=True)
        elif name.startswith("hint-wait:"):
            self.suspect(data["node"])
        elif name == "handoff":
            self.hand_off()
            if self.hints:
                self.set_timer("handoff", HANDOFF_EVERY)

    def view(self) -> dict:
        hints = f"{len(self.hints)} hint{'s' if len(self.hints) != 1 else ''}"
        if self.status == "down":
            return {"label": f"down · {hints} on disk" if self.hints else "down"}
        label = f"{len(self.data)} key{'s' if len(self.data) != 1 else ''}" + (f" · {hints}" if self.hints else "")
        return {"label": label, "hints": len(self.hints), "suspects": list(self.suspects)}


class Client(Node):
    """Sends writes and reads to a coordinator: the key's first preferred
    replica, or the next node along the ring if that one does not answer, and
    so on around the whole ring (any live node may coordinate)."""

    def boot(self) -> None:
        self.role = "client"
        self.next_req = 1
        self.versions: dict[str, int] = {}
        self.suspects: list[str] = []
        self.requests: dict[int, dict] = {}

    def request(self, kind: str, key: str, value: str | None = None) -> None:
        req = self.next_req
        self.next_req += 1
        body = {"key": key}
        if kind == "PUT":
            self.versions[key] = self.versions.get(key, 0) + 1
            body.update(value=value, version=self.versions[key])
        self.requests[req] = {"kind": kind, "body": body, "tried": [], "t": self.now}
        self.lab.count("writes" if kind == "PUT" else "reads")
        self.try_next(req)

    def try_next(self, req: int) -> None:
        request = self.requests[req]
        body = request["body"]
        order = [n for n in walk(body["key"]) if n not in self.suspects] + \
                [n for n in walk(body["key"]) if n in self.suspects]
        left = [n for n in order if n not in request["tried"]]
        if not left:  # any node can coordinate: give up only when every one has been tried
            return self.finish(req, ok=False, why="no coordinator answered")
        coordinator = left[0]
        request["tried"].append(coordinator)
        self.send(coordinator, request["kind"], req=req, **body)
        self.set_timer(f"wait:{req}", CLIENT_WAIT, req=req, node=coordinator)

    def on_timer(self, name: str, data: dict) -> None:
        if name == "tick":
            key = KEYS[self.lab.sim.rng.randrange(len(KEYS))]
            self.request("PUT", key, str(self.lab.sim.rng.randrange(10, 500)))
            self.set_timer("tick", 1000 / self.lab.params["rate"])
        elif name.startswith("wait:") and data["req"] in self.requests:
            if data["node"] not in self.suspects:
                self.suspects.append(data["node"])
            self.try_next(data["req"])

    def on_message(self, msg) -> None:
        if msg.src in self.suspects:
            self.suspects.remove(msg.src)
        if msg.type == "HELLO":
            return
        req = msg.body["req"]
        if req not in self.requests:
            return
        self.cancel_timer(f"wait:{req}")
        if msg.type in ("PUT-OK", "GET-OK"):
            self.finish(req, ok=True, coordinator=msg.src, answer=msg.body)
        else:
            self.finish(req, ok=False, why=f"{msg.src}: {msg.type}", coordinator=msg.src)

    def finish(self, req: int, ok: bool, why: str = "", coordinator: str = "", answer: dict | None = None) -> None:
        request = self.requests.pop(req)
        self.lab.request_done(request, ok, why, coordinator, answer or {})


class HintedHandoff(Lab):
    slug = "hinted-handoff"
    title = "Hinted handoff"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    # strict keeps no hints, so a replica that missed a write stays stale: replicas-converge is no invariant there
    INVARIANTS = {"replicas-converge": ("sloppy",), "writes-available": ("sloppy",)}
    PARAMS = (
        Param("quorum", "sloppy", "sloppy: stand-ins take writes for down replicas and keep hints; "
                                  "strict: only the preferred replicas, no hints.", choices=("sloppy", "strict")),
        Param("w", 2, "Write quorum W: acknowledgements needed before a write succeeds.", lo=1, hi=3),
        Param("r", 2, "Read quorum R: replies needed before a read answers.", lo=1, hi=3),
        Param("hint_ttl", 10_000, "How long (ms) a stand-in keeps a hint before discarding it.", lo=500, hi=600_000),
        Param("rate", 1, "Background writes per second (random keys alice, bob, carol, dave).", lo=0, hi=10),
    )
    FAULTS = ("crash", "restart", "pause", "resume", "partition", "cut", "heal", "delay", "loss", "slow",
              "drop-next", "duplicate-next")
    UNFAULTABLE = ("client",)

    def setup(self) -> None:
        self.started = False
        self.quorum, self.w, self.r = self.params["quorum"], self.params["w"], self.params["r"]
        self.hint_ttl = self.params["hint_ttl"]
        self.hint_counter = 0
        self.disturbed_at = -1.0  # when a fault was last applied or removed
        self.latest: dict[str, dict] = {}  # key -> the latest acknowledged write {"value", "version", "at"}
        self.expired: dict[tuple[str, str], int] = {}  # (replica, key) -> newest version whose hint expired
        self.left_for_repair: set[tuple] = set()
        self.handoffs: list[dict] = []  # recent hints delivered or expired
        self.last_read: dict | None = None
        self.metrics.update({"writes": 0, "writes_failed": 0, "reads": 0, "stale_reads": 0, "hints_stored": 0,
                             "hints_delivered": 0, "hints_expired": 0, "read_repairs": 0,
                             "stale_after_expiry": 0})
        for node_id in RING:
            self.add_node(Replica(self, node_id))
        self.client = self.add_node(Client(self, "client"))
        self.started = True
        self.add_check("replicas-converge", "Once a replica is back and its hints are handed off, it holds the "
                                            "latest acknowledged value of every key it replicates. A replica whose "
                                            "hint expired stays stale until read repair or anti-entropy (counted, "
                                            "not red); a strict quorum keeps no hints, so there a replica that "
                                            "missed a write stays stale and the check goes red.")
        self.add_check("writes-available", "While at least W nodes are up and the network is whole (no fault came "
                                           "or went during the write), every write is acknowledged.")
        if self.params["rate"]:
            self.client.set_timer("tick", 1000 / self.params["rate"])
        self.sim.after(250, self.audit)

    def apply(self, name: str, tokens: list[str]) -> None:
        super().apply(name, tokens)
        if self.ACTIONS[name].group == "fault":
            self.disturbed_at = self.now

    # -- what the client saw -----------------------------------------------------------
    def request_done(self, request: dict, ok: bool, why: str, coordinator: str, answer: dict) -> None:
        body = request["body"]
        key = body["key"]
        ms = round(self.now - request["t"], 3)
        if request["kind"] == "PUT":
            if ok:
                self.latest[key] = {"value": body["value"], "version": body["version"], "at": self.now}
                self.emit("write-ok", key=key, value=body["value"], version=body["version"], coordinator=coordinator,
                          acks=answer.get("acks", ""), ms=ms)
                return
            self.count("writes_failed")
            self.emit("write-failed", key=key, version=body["version"], why=why, ms=ms)
            up = [n for n in RING if self.nodes[n].status == "up"]
            whole = not self.net.partition and not any(not link.clean() for link in self.net.links.values()) \
                and not any(self.nodes[n].slow_ms for n in RING)
            calm = self.disturbed_at < request["t"]  # no fault came or went while it was under way
            if len(up) >= self.w and whole and calm:
                self.fail("writes-available", f"write {key} v{body['version']} failed with {len(up)} nodes up "
                                              f"(W={self.w}, quorum={self.quorum})")
            return
        latest = self.latest.get(key, {"version": 0, "value": None})
        stale = ok and answer["version"] < latest["version"]
        self.count("stale_reads", 1 if stale else 0)
        self.last_read = {"key": key, "ok": ok, "value": answer.get("value"), "version": answer.get("version", 0),
                          "latest": latest["version"], "stale": stale, "coordinator": coordinator}
        self.emit("read", key=key, ok=ok, value=answer.get("value"), version=answer.get("version", 0),
                  latest=latest["version"], stale=stale, ms=ms)

    def hint_gone(self, holder: Replica, hint: dict, how: str) -> None:
        self.count(f"hints_{how}")
        if how == "expired":  # the replica stays stale for this version: read repair's job now
            slot = (hint["for"], hint["key"])
            self.expired[slot] = max(self.expired.get(slot, 0), hint["version"])
        self.handoffs = (self.handoffs + [{"holder": holder.id, "intended": hint["for"], "key": hint["key"],
                                           "version": hint["version"], "how": how, "at": round(self.now, 3)}])[-6:]
        self.emit(f"hint-{how}", node=holder.id, intended=hint["for"], key=hint["key"], version=hint["version"],
                  hint=hint["hint"])

    # -- the live check ------------------------------------------------------------------
    def pending_hints_for(self, node_id: str) -> int:
        return sum(1 for n in RING for h in self.nodes[n].hints if h["for"] == node_id)

    def stale_replicas(self) -> list[tuple[str, str, int, int]]:
        """(key, replica, its version, latest) for every settled replica that is behind."""
        stale = []
        for key, latest in self.latest.items():
            if self.now - latest["at"] < SETTLE:
                continue
            for node_id in preferred(key):
                node = self.nodes[node_id]
                if node.status != "up" or self.now - node.up_since < SETTLE or self.pending_hints_for(node_id):
                    continue
                have = node.data.get(key, {}).get("version", 0)
                if have < latest["version"] <= self.expired.get((node_id, key), 0):
                    self.count_once(node_id, key, have, latest["version"])
                elif have < latest["version"]:
                    stale.append((key, node_id, have, latest["version"]))
        return stale

    def count_once(self, node_id: str, key: str, have: int, latest: int) -> None:
        """A settled replica is behind because its hint expired: expected, and shown, not red."""
        if (node_id, key, latest) not in self.left_for_repair:
            self.left_for_repair.add((node_id, key, latest))
            self.count("stale_after_expiry")
            self.emit("left-for-repair", node=node_id, key=key, version=have, latest=latest)

    def audit(self) -> None:
        self.sim.after(250, self.audit)
        stale = self.stale_replicas()
        if stale:
            key, node, have, want = stale[0]
            self.fail("replicas-converge", f"{node} holds {key} v{have}, the latest is v{want}"
                                           + (f" (+{len(stale) - 1} more)" if len(stale) > 1 else ""))
        else:
            expired = self.metrics["stale_after_expiry"]
            self.holds("replicas-converge", f"{len(self.latest)} keys, every settled replica up to date"
                       + (f" ({expired} left stale by an expired hint, for read repair or anti-entropy)"
                          if expired else ""))

    # -- actions ---------------------------------------------------------------------------
    @action("write", Arg("key", "text"), Arg("value", "text"), group="request",
            help="Client: write key = value (a new version) through a coordinator.")
    def do_write(self, key: str, value: str) -> None:
        self.client.request("PUT", key, value)

    @action("read", Arg("key", "text"), group="request", help="Client: read a key (R replies, then read repair).")
    def do_read(self, key: str) -> None:
        self.client.request("GET", key)

    @action("hint-ttl", Arg("ms", "ms", lo=100, hi=600_000), help="Set how long stand-ins keep hints.")
    def do_hint_ttl(self, ms: float) -> None:
        self.hint_ttl = ms
        self.emit("hint-ttl", ms=ms)

    @action("anti-entropy", help="Every live replica compares versions with the other replicas of its keys "
                                 "and repairs the older copies.")
    def do_anti_entropy(self) -> None:
        live = [n for n in RING if self.nodes[n].status == "up"]
        if len(live) < 2:
            raise SimError("anti-entropy needs at least two live replicas")
        self.count("anti_entropy_rounds")
        self.emit("anti-entropy", nodes=live)
        for node_id in live:
            node = self.nodes[node_id]
            peers: dict[str, list] = {}
            for key in sorted(node.data):
                for peer in preferred(key):
                    if peer != node_id:
                        peers.setdefault(peer, []).append([key, node.data[key]["version"]])
            for peer in RING:
                if peer in peers:
                    node.send(peer, "DIGEST", versions=peers[peer])

    # -- the page ----------------------------------------------------------------------------
    def view(self) -> dict:
        keys = []
        for key in sorted(self.latest)[:8]:
            latest = self.latest[key]
            replicas = []
            for node_id in preferred(key):
                node = self.nodes[node_id]
                have = node.data.get(key, {"value": None, "version": 0})
                replicas.append({"node": node_id, "value": have["value"], "version": have["version"],
                                 "stale": have["version"] < latest["version"], "status": node.status,
                                 "hinted": self.pending_hints_for_key(node_id, key)})
            keys.append({"key": key, "pos": position(key), "value": latest["value"], "version": latest["version"],
                         "replicas": replicas})
        hints = [{"holder": n, "intended": h["for"], "key": h["key"], "version": h["version"], "hint": h["hint"],
                  "expires_in": max(0, round(h["stored"] + self.hint_ttl - self.now))}
                 for n in RING for h in self.nodes[n].hints][:12]
        layout = {n: [round(58 + 30 * math.sin(math.radians(token(n))), 1),
                      round(50 - 32 * math.cos(math.radians(token(n))), 1)] for n in RING}
        layout["client"] = [8, 50]
        return {
            "layout": layout,
            "edges": [[RING[i], RING[(i + 1) % len(RING)]] for i in range(len(RING))],
            "handoff": {"quorum": self.quorum, "n": N, "w": self.w, "r": self.r, "hint_ttl": self.hint_ttl,
                        "keys": keys, "hints": hints, "recent": self.handoffs, "last_read": self.last_read},
        }

    def pending_hints_for_key(self, node_id: str, key: str) -> bool:
        return any(h["for"] == node_id and h["key"] == key for n in RING for h in self.nodes[n].hints)
