"""The simulation kernel shared by every lab.

A lab is a small cluster of nodes that exchange messages over a simulated
network.  Nothing here reads the wall clock or the global random generator:

* time is virtual, in milliseconds, and only moves when `run_until` is called;
* every random draw comes from one `random.Random(seed)` owned by the run;
* pending work sits in a heap ordered by `(time, sequence number)`, so two
  things due at the same millisecond always happen in the order they were
  scheduled.

A run is therefore fully defined by `(lab, params, seed, command log)`:
replaying the same inputs gives the same events, byte for byte.
"""

from __future__ import annotations

import heapq
import math
import random
import re
import types
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class SimError(ValueError):
    """A command or parameter the learner got wrong.  The message is shown to
    them as it is, so it must say what was wrong and what is accepted."""


# --------------------------------------------------------------------------
# Parsing helpers (times, numbers, node groups)
# --------------------------------------------------------------------------

_TIME = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")


def parse_time(text: str | int | float) -> float:
    """'1500', '1500ms', '1.5s' and '2m' all become milliseconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0 or not math.isfinite(text):
            raise SimError(f"time must be a non-negative number, got {text!r}")
        return float(text)
    match = _TIME.match(str(text).strip())
    if not match:
        raise SimError(f"'{text}' is not a time: use milliseconds (1500) or a unit (1.5s, 200ms, 2m)")
    value, unit = float(match.group(1)), match.group(2) or "ms"
    return value * {"ms": 1, "s": 1000, "m": 60_000}[unit]


def fmt_ms(t: float) -> str:
    """A time for people: 1500 -> '1.50s', 80 -> '80ms'."""
    return f"{t / 1000:.2f}s" if t >= 1000 else f"{t:.0f}ms"


# --------------------------------------------------------------------------
# Declarations: params, action arguments, actions, checks
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """A knob fixed when the run starts (shown on the page, set in the URL)."""

    name: str
    default: Any
    help: str = ""
    choices: tuple = ()
    lo: float | None = None
    hi: float | None = None

    @property
    def kind(self) -> str:
        if self.choices:
            return "choice"
        if isinstance(self.default, bool):
            return "bool"
        return "int" if isinstance(self.default, int) else "float"

    def parse(self, raw: Any) -> Any:
        text = str(raw).strip()
        if self.kind == "choice":
            if text not in self.choices:
                raise SimError(f"{self.name} must be one of {', '.join(self.choices)}; got '{text}'")
            return text
        if self.kind == "bool":
            if text.lower() in ("1", "true", "on", "yes"):
                return True
            if text.lower() in ("0", "false", "off", "no"):
                return False
            raise SimError(f"{self.name} must be on or off; got '{text}'")
        try:
            value = int(text) if self.kind == "int" else float(text)
        except ValueError:
            raise SimError(f"{self.name} must be a{'n integer' if self.kind == 'int' else ' number'}; got '{text}'") from None
        if not math.isfinite(value):
            raise SimError(f"{self.name} must be a finite number")
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise SimError(f"{self.name} must be between {_num(self.lo)} and {_num(self.hi)}; got {_num(value)}")
        return value

    def describe(self) -> dict:
        out = {"name": self.name, "default": self.default, "kind": self.kind, "help": self.help}
        if self.choices:
            out["choices"] = list(self.choices)
        if self.lo is not None:
            out["min"], out["max"] = self.lo, self.hi
        return out


def _num(x: float | None) -> str:
    return "?" if x is None else (str(int(x)) if float(x).is_integer() else str(x))


@dataclass(frozen=True)
class Arg:
    """One argument of an action.

    kind: node (an existing node id), int, ms (a duration), percent, word
    (one of `choices`), text (free text), groups (`n1,n2|n3,n4`)."""

    name: str
    kind: str = "node"
    optional: bool = False
    default: Any = None
    choices: tuple = ()
    lo: float | None = None
    hi: float | None = None

    def parse(self, text: str, lab: Lab) -> Any:
        text = str(text).strip()
        if self.kind == "node":
            if text not in lab.nodes:
                raise SimError(f"no node '{text}' in this cluster (nodes: {', '.join(lab.nodes)})")
            return text
        if self.kind == "word":
            if text not in self.choices:
                raise SimError(f"{self.name} must be one of {', '.join(self.choices)}; got '{text}'")
            return text
        if self.kind == "text":
            if not text or len(text) > 40 or not re.match(r"^[\w.:@+-]+$", text):
                raise SimError(f"{self.name} must be 1 to 40 letters, digits or . : @ + - _; got '{text[:40]}'")
            return text
        if self.kind == "groups":
            return parse_groups(text, lab)
        if self.kind == "ms":
            value = parse_time(text)
        else:
            try:
                value = int(text)
            except ValueError:
                raise SimError(f"{self.name} must be a whole number; got '{text[:20]}'") from None
        lo = 0 if self.lo is None and self.kind in ("percent", "ms") else self.lo
        hi = 100 if self.hi is None and self.kind == "percent" else self.hi
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise SimError(f"{self.name} must be between {_num(lo)} and {_num(hi)}; got {_num(value)}")
        return value

    def describe(self) -> str:
        inner = self.name if self.kind not in ("word",) else "|".join(self.choices)
        return f"[{inner}]" if self.optional else f"<{inner}>"

    @property
    def pattern(self) -> str | None:
        """What a well-formed value looks like before any run exists (the web
        form's `pattern`, the server's first check), or None: the run decides."""
        return SHAPES.get(self.kind)

    def check_shape(self, text: str) -> None:
        """Refuse a value that cannot be right in any run (a node id with a
        space, a partition without a bar); values that depend on the run (does
        node n7 exist?) are judged by `parse` against it."""
        text = str(text).strip()
        if self.kind in SHAPES:
            if not re.fullmatch(SHAPES[self.kind], text):
                raise SimError(SHAPE_ERRORS[self.kind].format(name=self.name, got=text[:24]))
        else:
            self.parse(text, None)


# What a value of each kind looks like (node ids are letters first, then letters,
# digits, '.', '>' or '-': n1, B->C, lb2; a partition is ids joined by ',' and '|').
SHAPES = {"node": r"[A-Za-z][\w.>\-]{0,23}", "groups": r"[\w,\|.\-]{1,200}"}
SHAPE_ERRORS = {"node": "{name} must be a node id like n1; got '{got}'",
                "groups": "a partition looks like n1,n2|n3,n4"}


def parse_groups(text: str, lab: Lab) -> list[list[str]]:
    """'n1,n2|n3,n4,n5' -> [['n1','n2'], ['n3','n4','n5']]; every id must exist
    and appear once.  A node named on no side (a client, say) is on no side:
    it still reaches every side, and every side reaches it."""
    sides = [[part.strip() for part in side.split(",") if part.strip()] for side in text.split("|")]
    if len(sides) < 2 or any(not side for side in sides):
        raise SimError("a partition needs at least two sides, like n1,n2|n3,n4")
    seen: list[str] = []
    for side in sides:
        for node in side:
            if node not in lab.nodes:
                raise SimError(f"no node '{node}' in this cluster (nodes: {', '.join(lab.nodes)})")
            if node in seen:
                raise SimError(f"node '{node}' appears on two sides of the partition")
            seen.append(node)
    return sides


# The states a node may be in for an action (ActionSpec.when).
def any_state(node: Node) -> bool:
    return True


def not_down(node: Node) -> bool:
    return node.status != "down"


def is_up(node: Node) -> bool:
    return node.status == "up"


def is_down(node: Node) -> bool:
    return node.status == "down"


def is_paused(node: Node) -> bool:
    return node.status == "paused"


@dataclass(frozen=True)
class ActionSpec:
    """Everything about one action, in one place: its arguments, the nodes it
    is for, the state a node must be in, and whether the page shows it as a
    button on each node.  The kernel refuses a command against this
    declaration, the page draws its buttons and forms from it, and the web
    server checks a command's shape with it."""

    name: str
    args: tuple[Arg, ...]
    help: str
    group: str  # "fault", "request" or "lab"
    method: str
    # For an action on a node (its first argument): the nodes it is for (ids, or a
    # function of the lab giving them; None = every node the palette may touch) ...
    nodes: tuple[str, ...] | Callable[[Lab], list[str]] | None = None
    # ... the state the node must be in (a test on the node) ...
    when: Callable[[Node], bool] | None = None
    # What the learner is told when the node is not one of `nodes`, or not in the
    # state `when` wants ({node} and {status} filled in).  Without a message the
    # kernel leaves that judgement to the action itself.
    not_for: str = ""
    refuse: str = ""
    # Shown as a button on each node it applies to (default: it takes just a node).
    button: bool | None = None

    @property
    def targets_node(self) -> bool:
        return bool(self.args) and self.args[0].kind == "node"

    @property
    def is_button(self) -> bool:
        if self.button is not None:
            return self.button
        return self.targets_node and len(self.args) == 1 and not self.args[0].optional

    def listed(self, lab: Lab) -> list[str]:
        """The nodes this action is for, whatever their state."""
        if callable(self.nodes):
            return list(self.nodes(lab))
        if self.nodes is not None:
            return list(self.nodes)
        return [n for n in lab.nodes if n not in lab.UNFAULTABLE]

    def fits(self, node: Node) -> bool:
        """The node is in a state this action applies to."""
        when = self.when or (any_state if self.group == "fault" else not_down)
        return when(node)

    @property
    def usage(self) -> str:
        return " ".join([self.name, *(a.describe() for a in self.args)])

    def check_count(self, tokens: list[str]) -> None:
        required = [a for a in self.args if not a.optional]
        if len(tokens) < len(required) or len(tokens) > len(self.args):
            raise SimError(f"usage: {self.usage}")

    def parse(self, tokens: list[str], lab: Lab) -> list:
        self.check_count(tokens)
        values = [arg.parse(tok, lab) for arg, tok in zip(self.args, tokens)]
        values += [arg.default for arg in self.args[len(tokens):]]
        return values


def action(name: str, *args: Arg, help: str = "", group: str = "lab", nodes=None, not_for: str = "",
           when: Callable[[Node], bool] | None = None, refuse: str = "", button: bool | None = None) -> Callable:
    """Declare a method as an action the learner can take (page button, CLI --do).

    For an action whose first argument is a node: `nodes` are the nodes it is
    for, `when` the state the node must be in (the kernel refuses the command
    with `refuse` otherwise, before the method runs), `button` whether the
    page shows it on each node's row."""

    def mark(fn: Callable) -> Callable:
        fn._action = ActionSpec(name, tuple(args), help, group, fn.__name__,
                                tuple(nodes) if isinstance(nodes, (list, tuple)) else nodes,
                                when, not_for, refuse, button)
        return fn

    return mark


@dataclass
class Check:
    """An invariant evaluated live.  `seq` names the event that broke it."""

    name: str
    help: str
    ok: bool = True
    detail: str = ""
    seq: int | None = None

    def view(self) -> dict:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "help": self.help, "seq": self.seq}


# --------------------------------------------------------------------------
# Virtual time
# --------------------------------------------------------------------------


class Sim:
    """A clock and a heap of things to do: `(time, seq, callback, args)`."""

    def __init__(self, seed: int):
        self.now = 0.0
        self.rng = random.Random(seed)
        self._heap: list = []
        self._counter = 0
        self._cancelled: set[int] = set()

    def at(self, t: float, fn: Callable, *args) -> int:
        self._counter += 1
        heapq.heappush(self._heap, (max(t, self.now), self._counter, fn, args))
        return self._counter

    def after(self, delay: float, fn: Callable, *args) -> int:
        self._counter += 1
        heapq.heappush(self._heap, (self.now + (delay if delay > 0 else 0), self._counter, fn, args))
        return self._counter

    def cancel(self, handle: int | None) -> None:
        if handle is not None:
            self._cancelled.add(handle)

    def next_time(self) -> float | None:
        while self._heap and self._heap[0][1] in self._cancelled:
            self._cancelled.discard(heapq.heappop(self._heap)[1])
        return self._heap[0][0] if self._heap else None

    def run_until(self, t: float) -> None:
        """Do everything due at or before `t`, in (time, order scheduled)
        order, then set the clock to `t`."""
        heap, cancelled, pop = self._heap, self._cancelled, heapq.heappop
        while heap and heap[0][0] <= t:
            when, handle, fn, args = pop(heap)
            if cancelled and handle in cancelled:
                cancelled.discard(handle)
                continue
            self.now = when
            fn(*args)
        if t > self.now:
            self.now = t

    def step(self) -> bool:
        """Do only the next thing due, whenever it is, and set the clock to
        its time (single-stepping a frozen run).  False if nothing is left."""
        if self.next_time() is None:
            return False
        when, _, fn, args = heapq.heappop(self._heap)
        self.now = when
        fn(*args)
        return True


# --------------------------------------------------------------------------
# Messages and the network
# --------------------------------------------------------------------------


@dataclass(slots=True)
class Message:
    id: int
    src: str
    dst: str
    type: str
    body: dict
    sent: float
    arrive: float = 0.0

    def view(self) -> dict:
        return {"id": self.id, "src": self.src, "dst": self.dst, "type": self.type,
                "sent": round(self.sent, 3), "arrive": round(self.arrive, 3)}


@dataclass
class Link:
    """Faults on the one-way link src -> dst."""

    delay: float = 0.0
    loss: int = 0  # percent
    cut: bool = False
    drop_next: int = 0
    duplicate_next: int = 0

    def clean(self) -> bool:
        return not (self.delay or self.loss or self.cut or self.drop_next or self.duplicate_next)


class Network:
    """Delivers messages between nodes with a latency drawn from the run's
    random generator, and applies the learner's faults: partitions, one-way
    cuts, extra delay, loss, and dropping or duplicating the next message.

    A partition or a cut is checked twice: when a message is sent, and again
    when it arrives, so a message already on the wire when the network splits
    does not cross the split (it is dropped on arrival).  A node that a
    partition names on no side stays connected to every side."""

    def __init__(self, lab: Lab, latency: tuple[float, float] = (4.0, 12.0)):
        self.lab = lab
        self.latency = latency
        self.links: dict[tuple[str, str], Link] = {}
        self._partition: list[list[str]] = []
        self._side: dict[str, int] = {}
        self.inflight: dict[int, Message] = {}
        self.next_id = 0
        self.sent = 0
        self.sent_by_type: dict[str, int] = {}  # messages sent, by type (lost ones too)
        self.dropped = 0  # lost to a fault (partition, cut, drop-next, loss)
        self.duplicated = 0  # extra copies made by duplicate-next
        # A lab that models its own link latencies overrides transit_time.
        self._plain_latency = type(self).transit_time is Network.transit_time

    @property
    def partition(self) -> list[list[str]]:
        """The named sides of the current partition ([] when there is none)."""
        return self._partition

    @partition.setter
    def partition(self, sides: list[list[str]]) -> None:
        self._partition = [list(side) for side in sides]
        self._side = {node: i for i, side in enumerate(self._partition) for node in side}

    def unnamed(self) -> list[str]:
        """Nodes the partition puts on no side: they reach every side."""
        return [n for n in self.lab.nodes if n not in self._side] if self._partition else []

    def link(self, src: str, dst: str) -> Link:
        return self.links.setdefault((src, dst), Link())

    def side_of(self, node: str) -> int | None:
        return self._side.get(node)

    def blocked(self, src: str, dst: str) -> str | None:
        """Why nothing gets from src to dst right now: 'partition', 'cut' or None."""
        if src == dst:
            return None
        if self._partition:
            a, b = self._side.get(src), self._side.get(dst)
            if a is not None and b is not None and a != b:
                return "partition"
        link = self.links.get((src, dst))
        return "cut" if link and link.cut else None

    def reachable(self, src: str, dst: str) -> bool:
        return self.blocked(src, dst) is None

    def send(self, src: str, dst: str, type: str, body: dict | None = None) -> None:
        lab, sim = self.lab, self.lab.sim
        self.next_id += 1
        self.sent += 1
        self.sent_by_type[type] = self.sent_by_type.get(type, 0) + 1
        msg = Message(self.next_id, src, dst, type, dict(body) if body else {}, sim.now)
        if self._partition or self.links or not self._plain_latency:
            self._send_with_faults(msg)
            return
        # The common case: a healthy network, one copy, a random latency.
        lo, hi = self.latency
        msg.arrive = arrive = round(sim.now + lo + (hi - lo) * sim.rng.random(), 3)
        self.inflight[msg.id] = msg
        lab.emit("send", id=msg.id, src=src, dst=dst, type=type, arrive=arrive,
                 **(_summary(msg.body) if msg.body else {}))
        sim.at(arrive, self._deliver, msg)

    def _send_with_faults(self, msg: Message) -> None:
        lab, sim = self.lab, self.lab.sim
        src, dst, type = msg.src, msg.dst, msg.type
        link = self.links.get((src, dst))
        reason = self.blocked(src, dst)
        if reason is None and link and link.drop_next:
            link.drop_next -= 1
            reason = "dropped"
        elif reason is None and link and link.loss and sim.rng.random() * 100 < link.loss:
            reason = "lost"
        copies = 1
        if reason is None and link and link.duplicate_next:
            link.duplicate_next -= 1
            self.duplicated += 1
            copies = 2
        if reason:
            self.dropped += 1
            lab.emit("drop", id=msg.id, src=src, dst=dst, type=type, reason=reason)
            return
        for copy in range(copies):
            m = msg if copy == 0 else Message(msg.id, src, dst, type, dict(msg.body), sim.now)
            m.arrive = round(sim.now + self.transit_time(src, dst) + copy, 3)
            if copy == 0:
                self.inflight[m.id] = m
            lab.emit("send", id=m.id, src=src, dst=dst, type=type, arrive=m.arrive,
                     **({"copy": True} if copy else {}), **_summary(m.body))
            sim.at(m.arrive, self._deliver, m)

    def transit_time(self, src: str, dst: str) -> float:
        lo, hi = self.latency
        base = lo + (hi - lo) * self.lab.sim.rng.random()
        link = self.links.get((src, dst))
        return round(base + (link.delay if link else 0.0), 3)

    def _deliver(self, msg: Message) -> None:
        self.inflight.pop(msg.id, None)
        if self._partition or self.links:
            # The network split (or the link was cut) while this message was on the wire.
            reason = self.blocked(msg.src, msg.dst)
            if reason:
                self.dropped += 1
                self.lab.emit("drop", id=msg.id, src=msg.src, dst=msg.dst, type=msg.type, reason=reason)
                return
        node = self.lab.nodes.get(msg.dst)
        if node is None or node.status == "down":
            self.lab.emit("drop", id=msg.id, src=msg.src, dst=msg.dst, type=msg.type, reason="node down")
            return
        node.receive(msg)

    def heal(self) -> None:
        self.partition = []
        self.links = {}

    def view(self) -> dict:
        faults = [
            {"src": a, "dst": b, **{k: v for k, v in vars(link).items() if v}}
            for (a, b), link in self.links.items() if not link.clean()
        ]
        return {"partition": self.partition, "unnamed": self.unnamed(), "links": faults,
                "inflight": [m.view() for m in self.inflight.values()]}


RESERVED = ("seq", "t", "kind")
_SEND_FIELDS = (*RESERVED, "id", "src", "dst", "type", "arrive", "copy")


def _summary(body: dict) -> dict:
    """Small, JSON-safe fields of a message body, copied into its event (a
    body field named like an event field gets a trailing underscore)."""
    return {(k + "_" if k in _SEND_FIELDS else k): v for k, v in body.items()
            if isinstance(v, (str, int, float, bool)) or v is None}


# --------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------


# What a node gets from the kernel and a protocol must not redefine.
KERNEL_NAMES = ("send", "after", "every", "at_rate", "cancel", "pending", "request", "answered", "rng",
                "restarted", "up", "now")


def _copyable(fn: Callable) -> None:
    """A run is copied (time travel keeps copies of it): what a timer will call
    must be a method, or functools.partial of one, never a lambda or a nested
    function, which would go on acting on the original run."""
    if isinstance(fn, types.FunctionType) and fn.__closure__:
        raise TypeError(f"a timer must call a method (or functools.partial of one), not {fn.__qualname__}")


@dataclass(slots=True, eq=False)
class Pending:
    """A node's timer, or the message a slow node is busy with: when it is
    due, or, while the node is paused, how much of its time is left."""

    due: float
    handle: int | None = None
    left: float = 0.0
    fn: Callable | None = None  # what to call when it fires
    args: tuple = ()
    every: float = 0.0  # a periodic task: fire again this long after each run


def on(*types: str) -> Callable:
    """Declare a node method as the handler of messages of these types:

        @on("HEARTBEAT")
        def heartbeat(self, msg): ...
    """

    def mark(fn: Callable) -> Callable:
        fn._handles = types
        return fn

    return mark


def observe(*kinds: str) -> Callable:
    """Declare a lab method as an observer of events of these kinds: it is
    called with each such event as it is emitted (checks watch the run this
    way instead of being told by the protocol)."""

    def mark(fn: Callable) -> Callable:
        fn._observes = kinds
        return fn

    return mark


class Node:
    """A process in the cluster: a state machine reacting to messages and
    timers.  What it keeps in `disk` survives a crash; everything else is
    memory, rebuilt by `boot()` when the node starts or restarts.

    The kernel keeps three promises about a node's work:

    * a slow node (`slow <node> <ms>`) serves its messages one at a time, in
      arrival order, each taking `slow_ms`; the others wait in its inbox;
    * a paused node does nothing: messages wait in its inbox, and its timers
      and the message it was busy with stop, then go on with the time they had
      left when it resumes (like a process frozen by a long GC pause);
    * a crash ends an incarnation: timers, the inbox and the message in
      service are gone, and nothing of them reaches the restarted node."""

    role: str | None = None
    HANDLERS: dict[str, Callable] = {}  # message type -> handler, from the @on methods

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        for name in KERNEL_NAMES:
            if name in vars(cls):
                raise TypeError(f"{cls.__name__}.{name} would hide the kernel's Node.{name}; choose another name")
        found: dict[str, Callable] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                for type in getattr(attr, "_handles", ()):
                    found[type] = attr
        cls.HANDLERS = found

    def __init__(self, lab: Lab, id: str):
        self.lab = lab
        self.id = id
        self.status = "up"
        self.disk: dict = {}
        self.slow_ms = 0.0
        self.incarnation = 1
        # The node's own random stream, from the run's seed and its id: what one
        # node draws does not shift what the others draw, so a fault on one node
        # changes the rest of the cluster only through the messages it changes.
        self._rng = random.Random(f"{lab.seed}/{id}")
        self._timers: dict[object, Pending] = {}
        self._anon = 0
        self._inbox: deque[Message] = deque()  # messages waiting (paused, or behind a slow one)
        self._work: Pending | None = None  # the message a slow node is busy with
        self.boot()

    # -- to override ------------------------------------------------------
    def boot(self) -> None:
        """(Re)build memory from disk.  Called at start and on restart."""

    def on_message(self, msg: Message) -> None:
        """React to a message: by default, its type's @on handler (a message
        of a type nobody handles is ignored)."""
        handler = self.HANDLERS.get(msg.type)
        if handler is not None:
            handler(self, msg)

    def view(self) -> dict:
        """Extra JSON-safe fields shown for this node in the snapshot."""
        return {}

    # -- helpers for protocols --------------------------------------------
    @property
    def now(self) -> float:
        return self.lab.sim.now

    @property
    def up(self) -> bool:
        return self.status == "up"

    @property
    def _held(self) -> deque[Message]:
        """Messages that arrived and are not handled yet."""
        return self._inbox

    @property
    def rng(self) -> random.Random:
        """This node's random stream (jitter, coin flips), its own for the whole
        run: it survives restarts, like the machine's entropy would."""
        return self._rng

    @property
    def restarted(self) -> bool:
        """True in `boot()` when the node comes back from a crash (False the first time)."""
        return self.incarnation > 1

    def send(self, dst: str, type: str, **body) -> None:
        if self.status != "down":
            self.lab.net.send(self.id, dst, type, body)

    def after(self, delay: float, fn: Callable, *args, key=None):
        """Call `fn(*args)` in `delay` ms, as this node: the call dies with the
        node (crash), waits while it is paused (it starts on resume), and
        replaces an earlier one with the same `key`.  Returns the key (to
        `cancel` it).  A crashed node sets nothing."""
        _copyable(fn)
        if key is None:
            self._anon += 1
            key = ("after", self._anon)
        self.cancel(key)
        if self.status == "down":
            return key
        delay = delay if delay > 0 else 0.0
        timer = Pending(self.now + delay, fn=fn, args=args)
        if self.status == "paused":
            timer.left = delay
        else:
            timer.handle = self.lab.sim.after(delay, self._fire, key, timer)
        self._timers[key] = timer
        return key

    def every(self, period: float, fn: Callable, *args, key, first: float | None = None):
        """Call `fn(*args)` every `period` ms (the first time after `first`, by
        default one period) until cancelled or the node crashes."""
        self.after(period if first is None else first, fn, *args, key=key)
        if key in self._timers:
            self._timers[key].every = period
        return key

    def at_rate(self, rate: float, fn: Callable, *args, key, first: float = 0.0):
        """Call `fn(*args)` once, in about 1/rate s (half to one and a half times
        that, drawn from the node's stream), `first` ms later still: a client's
        next request when it sends `rate` per second.  At rate 0, nothing (and
        an earlier call of that key is cancelled)."""
        if rate <= 0:
            return self.cancel(key)
        return self.after(first + 1000 / rate * (0.5 + self.rng.random()), fn, *args, key=key)

    def cancel(self, key) -> None:
        """Forget a pending call, a periodic task, or a request's timeout."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            self.lab.sim.cancel(timer.handle)

    def pending(self, key) -> bool:
        return key in self._timers

    def request(self, dst: str, type: str, *, awaiting, timeout: float, on_timeout: Callable, **body):
        """Send a message that expects an answer: unless `answered(awaiting)`
        is called within `timeout` ms, `on_timeout()` runs.  `awaiting` names
        the answer (for example ("hop", 3)); the rest is the message's body."""
        self.send(dst, type, **body)
        return self.after(timeout, on_timeout, key=awaiting)

    def answered(self, awaiting) -> bool:
        """The answer named `awaiting` arrived: stop its timeout.  False if it
        was not awaited any more (a late or duplicate answer)."""
        if awaiting not in self._timers:
            return False
        self.cancel(awaiting)
        return True

    # -- plumbing -----------------------------------------------------------
    def receive(self, msg: Message) -> None:
        if self.status == "up" and not self.slow_ms and self._work is None and not self._inbox:
            self.on_message(msg)  # the common case: handled at once
            self.lab.handled(self, msg)
            return
        if self.status == "down":
            return
        self._inbox.append(msg)
        if self.status == "up" and self._work is None:
            self._serve()

    def _serve(self) -> None:
        """Handle the inbox in arrival order; a slow node takes slow_ms for each."""
        while self._inbox and self.status == "up" and self._work is None:
            if self.slow_ms:
                work = Pending(self.now + self.slow_ms)
                work.handle = self.lab.sim.after(self.slow_ms, self._served, work)
                self._work = work
                return
            self._handle(self._inbox.popleft())

    def _served(self, work: Pending) -> None:
        if self._work is not work:
            return
        self._work = None
        self._handle(self._inbox.popleft())
        self._serve()

    def _handle(self, msg: Message) -> None:
        self.on_message(msg)
        self.lab.handled(self, msg)

    def _fire(self, key, timer: Pending) -> None:
        if self._timers.get(key) is not timer:
            return
        if timer.every:  # a periodic task: the next run is booked before this one
            timer.due = self.now + timer.every
            timer.handle = self.lab.sim.after(timer.every, self._fire, key, timer)
        else:
            del self._timers[key]
        timer.fn(*timer.args)

    def set_slow(self, ms: float) -> None:
        """Take `ms` for each message from now on; the message in service takes no longer than that."""
        self.slow_ms = ms
        work = self._work
        if work is None:
            return
        if work.handle is None:  # paused: it goes on with what is left, at most `ms`
            work.left = min(work.left, ms)
        elif work.due > self.now + ms:
            self.lab.sim.cancel(work.handle)
            work.due = self.now + ms
            work.handle = self.lab.sim.after(ms, self._served, work)

    def pause(self) -> None:
        """Freeze: every timer and the message in service keep the time they have left."""
        self.status = "paused"
        sim, now = self.lab.sim, self.now
        for item in (*self._timers.values(), self._work):
            if item is not None and item.handle is not None:
                sim.cancel(item.handle)
                item.handle, item.left = None, max(item.due - now, 0.0)

    def resume(self) -> None:
        self.status = "up"
        sim, now = self.lab.sim, self.now
        # Timers go on in the order they were due (ties: the order they were set).
        for name, timer in sorted(self._timers.items(), key=lambda item: item[1].left):
            timer.due = now + timer.left
            timer.handle = sim.after(timer.left, self._fire, name, timer)
        work = self._work
        if work is not None:
            work.due = now + work.left
            work.handle = sim.after(work.left, self._served, work)
        else:
            self._serve()

    def crash(self) -> None:
        sim = self.lab.sim
        for timer in self._timers.values():
            sim.cancel(timer.handle)
        if self._work is not None:
            sim.cancel(self._work.handle)
        self._timers.clear()
        self._inbox.clear()
        self._work = None
        self.status = "down"
        self.role = None

    def restart(self) -> None:
        self.incarnation += 1
        self.status = "up"
        self.slow_ms = 0.0
        self.boot()


# --------------------------------------------------------------------------
# Labs
# --------------------------------------------------------------------------

FAULTS = ("crash", "restart", "pause", "resume", "partition", "cut", "heal", "delay",
          "loss", "slow", "drop-next", "duplicate-next")


class Lab:
    """Base of every lab: holds the clock, the network, the nodes, the event
    stream and the checks, and implements the common fault palette."""

    slug = ""
    title = ""
    PARAMS: tuple[Param, ...] = ()
    # Which of the common faults make sense for this lab (all by default).
    FAULTS: tuple[str, ...] = FAULTS
    # Nodes the fault palette may not touch (e.g. a client that only drives traffic).
    UNFAULTABLE: tuple[str, ...] = ()
    LATENCY: tuple[float, float] = (4.0, 12.0)
    ACTIONS: dict[str, ActionSpec] = {}
    OBSERVERS: dict[str, list[Callable]] = {}  # event kind -> the @observe methods
    # The checks that must hold whatever the faults, and in which modes: check name -> conditions,
    # any of which makes it an invariant.  A condition is "*" (every mode), a value of one of the
    # lab's choice params ("quorum"), "param=value" (bools as on/off), or several joined by "+"
    # ("log-shipper+dedupe=on").  A check left out demonstrates a failure: some mode or fault is
    # meant to turn it red.  The fault fuzzer (tests/unit/test_fuzz.py) holds the lab to this.
    INVARIANTS: dict[str, tuple[str, ...]] = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        found: dict[str, ActionSpec] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                spec = getattr(attr, "_action", None)
                if spec:
                    found[spec.name] = spec
        cls.ACTIONS = {name: spec for name, spec in found.items()
                       if spec.group != "fault" or name in cls.FAULTS}
        observers: dict[str, list[Callable]] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                for kind in getattr(attr, "_observes", ()):
                    observers.setdefault(kind, []).append(attr)
        cls.OBSERVERS = observers

    def __init__(self, params: dict | None = None, seed: int = 0):
        self.params = self.parse_params(params or {})
        self.seed = int(seed)
        self.sim = Sim(self.seed)
        self.net = Network(self, self.LATENCY)
        self.nodes: dict[str, Node] = {}
        self.seq = 0
        self.pending: list[dict] = []  # events not yet handed out (see drain)
        self.metrics: dict[str, Any] = {}
        self.checks: dict[str, Check] = {}
        self.setup()

    # -- to override ------------------------------------------------------
    def setup(self) -> None:
        """Create nodes, checks and the initial state."""

    def view(self) -> dict:
        """The lab's own objects for the snapshot (breakers, sagas, keys...)."""
        return {}

    def invariants(self) -> list[str]:
        """The checks that must hold in this run's mode (see INVARIANTS)."""
        return [name for name, conditions in self.INVARIANTS.items()
                if name in self.checks and any(self.in_mode(c) for c in conditions)]

    def in_mode(self, condition: str) -> bool:
        choices = {self.params[p.name] for p in self.PARAMS if p.choices}
        for part in condition.split("+"):
            if part == "*":
                continue
            if "=" in part:
                name, want = part.split("=", 1)
                value = self.params.get(name)
                if isinstance(value, bool):
                    value = "on" if value else "off"
                if str(value) != want:
                    return False
            elif part not in choices:
                return False
        return True

    # -- params -----------------------------------------------------------
    @classmethod
    def parse_params(cls, raw: dict) -> dict:
        known = {p.name: p for p in cls.PARAMS}
        for name in raw:
            if name not in known:
                listed = ", ".join(known) or "none"
                raise SimError(f"'{cls.slug}' has no param '{name}' (params: {listed})")
        return {p.name: (p.parse(raw[p.name]) if p.name in raw else p.default) for p in cls.PARAMS}

    @classmethod
    def describe(cls) -> dict:
        return {
            "lab": cls.slug,
            "title": cls.title,
            "params": [p.describe() for p in cls.PARAMS],
            "actions": [{"name": s.name, "usage": s.usage, "help": s.help, "group": s.group}
                        for s in cls.ACTIONS.values()],
        }

    # -- building blocks for labs ------------------------------------------
    def add_node(self, node: Node) -> Node:
        self.nodes[node.id] = node
        return node

    def add_check(self, name: str, help: str) -> Check:
        self.checks[name] = Check(name, help)
        return self.checks[name]

    def emit(self, kind: str, **fields) -> dict:
        """Record a state change.  Every event gets the next sequence number."""
        if "seq" in fields or "t" in fields or "kind" in fields:
            raise ValueError(f"event fields may not be named {', '.join(RESERVED)}")
        self.seq += 1
        event = {"seq": self.seq, "t": round(self.sim.now, 3), "kind": kind}
        event.update(fields)
        self.pending.append(event)
        watchers = self.OBSERVERS.get(kind)
        if watchers:
            for watcher in watchers:
                watcher(self, event)
        return event

    def fail(self, name: str, detail: str) -> None:
        """Mark a check violated by the latest event (once: the first breach is kept)."""
        check = self.checks[name]
        if check.ok:
            check.ok, check.detail = False, detail
            self.emit("check", name=name, ok=False, detail=detail)
            check.seq = self.seq

    def holds(self, name: str, detail: str = "") -> None:
        """Mark a check true again (for invariants that can recover)."""
        check = self.checks[name]
        if not check.ok:
            check.ok, check.detail, check.seq = True, detail, None
            self.emit("check", name=name, ok=True, detail=detail)
        elif detail:
            check.detail = detail

    def witness(self, kind: str, **fact) -> None:
        """Tell the @observe methods of `kind` about a fact that is not an event
        of the run (nothing in the log, no sequence number): a step inside a
        node that only the lab's bookkeeping or checks care about."""
        for watcher in self.OBSERVERS.get(kind, ()):
            watcher(self, fact)

    def note(self, name: str, detail: str) -> None:
        """Say how a check that still holds is doing (a broken one keeps its breach)."""
        check = self.checks[name]
        if check.ok:
            check.detail = detail

    def every(self, period: float, fn: Callable, first: float | None = None) -> None:
        """Run `fn()` every `period` ms for the whole run (the lab's own
        periodic work: audits, samples, a client's traffic)."""

        self.sim.after(period if first is None else first, self._tick, period, fn)

    def _tick(self, period: float, fn: Callable) -> None:
        self.sim.after(period, self._tick, period, fn)
        fn()

    def count(self, metric: str, by: float = 1) -> None:
        self.metrics[metric] = self.metrics.get(metric, 0) + by

    # -- running --------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.sim.now

    @property
    def rng(self) -> random.Random:
        """The run's random stream, for the lab's own draws (traffic, keys)."""
        return self.sim.rng

    def run_until(self, t: float) -> None:
        self.sim.run_until(t)

    def next_event_time(self) -> float | None:
        return self.sim.next_time()

    def step(self) -> bool:
        return self.sim.step()

    def drain(self) -> list[dict]:
        events, self.pending = self.pending, []
        return events

    @classmethod
    def spec(cls, name: str) -> ActionSpec:
        spec = cls.ACTIONS.get(name)
        if spec is None:
            raise SimError(f"'{cls.slug}' has no action '{name[:40]}' (actions: {', '.join(cls.ACTIONS)})")
        return spec

    def parse_command(self, name: str, tokens: list[str]) -> list:
        spec = self.spec(name)
        if len(tokens) > 8 or any(len(str(t)) > 200 for t in tokens):
            raise SimError(f"usage: {spec.usage}")
        values = spec.parse([str(t) for t in tokens], self)
        if spec.group == "fault" and spec.targets_node and values[0] in self.UNFAULTABLE:
            raise SimError(f"'{values[0]}' is not part of the experiment; faults apply to the other nodes")
        return values

    def apply(self, name: str, tokens: list[str]) -> None:
        """Validate and carry out one command at the current time.  Raises
        SimError, having changed nothing, when the command is not valid."""
        values = self.parse_command(name, tokens)
        spec = self.ACTIONS[name]
        if spec.targets_node and values[0] is not None:
            node = self.nodes[values[0]]
            if spec.not_for and node.id not in spec.listed(self):
                raise SimError(spec.not_for.format(node=node.id, status=node.status,
                                                   listed=", ".join(spec.listed(self))))
            if spec.refuse and not spec.fits(node):
                raise SimError(spec.refuse.format(node=node.id, status=node.status))
        getattr(self, spec.method)(*values)

    def command(self, name: str, tokens: list[str]) -> str | None:
        """Apply a logged command; a rejected one becomes a `rejected` event
        (so live runs and replays agree) and its message is returned."""
        try:
            self.apply(name, tokens)
        except SimError as err:
            self.emit("rejected", action=name, args=[str(t) for t in tokens], error=str(err))
            return str(err)
        return None

    def targets(self, name: str) -> list[str]:
        """The nodes a one-node action applies to right now (the page shows its
        button on those nodes' rows): from the action's declaration."""
        spec = self.ACTIONS[name]
        nodes = self.nodes
        return [i for i in spec.listed(self) if i in nodes and spec.fits(nodes[i])]

    @classmethod
    def buttons(cls) -> list[ActionSpec]:
        """The actions shown as a button on each node's row."""
        return [spec for spec in cls.ACTIONS.values() if spec.is_button]

    def snapshot(self) -> dict:
        self.update_metrics()
        return {
            "lab": self.slug,
            "t": round(self.sim.now, 3),
            "seq": self.seq,
            "params": self.params,
            "nodes": [{"id": n.id, "status": n.status, "role": n.role, **n.view()}
                      for n in self.nodes.values()],
            "checks": [c.view() for c in self.checks.values()],
            "metrics": self.metrics,
            "network": self.net.view(),
            **self.view(),
        }

    # -- the common fault palette ------------------------------------------
    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]

    @action("crash", Arg("node"), group="fault", when=not_down, refuse="{node} is already down",
            help="Crash a node: memory is lost, disk is kept.")
    def do_crash(self, node_id: str) -> None:
        node = self.node(node_id)
        node.crash()
        self.emit("crash", node=node_id)
        self.after_fault("crash", node_id)

    @action("restart", Arg("node"), group="fault", when=is_down, refuse="{node} is not down (it is {status})",
            help="Start a crashed node again; it recovers from its disk.")
    def do_restart(self, node_id: str) -> None:
        node = self.node(node_id)
        node.restart()
        self.emit("restart", node=node_id)
        self.after_fault("restart", node_id)

    @action("pause", Arg("node"), group="fault", when=is_up,
            refuse="{node} is {status}; only a running node can be paused",
            help="Freeze a node (a long GC pause): it keeps its memory, its timers and work stop, messages wait.")
    def do_pause(self, node_id: str) -> None:
        node = self.node(node_id)
        node.pause()
        self.emit("pause", node=node_id)
        self.after_fault("pause", node_id)

    @action("resume", Arg("node"), group="fault", when=is_paused, refuse="{node} is not paused",
            help="Unfreeze a paused node: it handles what queued up meanwhile; its timers go on with the time they had left.")
    def do_resume(self, node_id: str) -> None:
        node = self.node(node_id)
        self.emit("resume", node=node_id)
        node.resume()
        self.after_fault("resume", node_id)

    @action("partition", Arg("sides", "groups"), group="fault",
            help="Split the network, e.g. n1,n2|n3,n4,n5: messages between sides are lost, also those "
                 "already on their way. A node named on no side stays connected to every side.")
    def do_partition(self, sides: list[list[str]]) -> None:
        self.net.partition = sides
        unnamed = self.net.unnamed()
        extra = {}
        if unnamed:
            extra = {"unnamed": unnamed,
                     "note": f"{', '.join(unnamed)} named on no side: still connected to every side"}
        self.emit("partition", sides=sides, **extra)
        self.after_fault("partition", None)

    @action("cut", Arg("from"), Arg("to"), group="fault", help="Cut one direction of a link: from -> to loses every message.")
    def do_cut(self, src: str, dst: str) -> None:
        self._distinct(src, dst)
        self.net.link(src, dst).cut = True
        self.emit("cut", src=src, dst=dst)
        self.after_fault("cut", None)

    @action("heal", group="fault", help="Remove every network fault (partitions, cuts, delays, loss).")
    def do_heal(self) -> None:
        self.net.heal()
        self.emit("heal")
        self.after_fault("heal", None)

    @action("delay", Arg("from"), Arg("to"), Arg("ms", "ms", hi=10_000), group="fault",
            help="Add latency to the link from -> to.")
    def do_delay(self, src: str, dst: str, ms: float) -> None:
        self._distinct(src, dst)
        self.net.link(src, dst).delay = ms
        self.emit("delay", src=src, dst=dst, ms=ms)
        self.after_fault("delay", None)

    @action("loss", Arg("from"), Arg("to"), Arg("percent", "percent"), group="fault",
            help="Lose this share of the messages on the link from -> to.")
    def do_loss(self, src: str, dst: str, percent: int) -> None:
        self._distinct(src, dst)
        self.net.link(src, dst).loss = percent
        self.emit("loss", src=src, dst=dst, percent=percent)
        self.after_fault("loss", None)

    @action("slow", Arg("node"), Arg("ms", "ms", hi=10_000), group="fault",
            help="Make a node take this long to handle each message; it serves them one at a time (0 = normal).")
    def do_slow(self, node_id: str, ms: float) -> None:
        self.node(node_id).set_slow(ms)
        self.emit("slow", node=node_id, ms=ms)
        self.after_fault("slow", node_id)

    @action("drop-next", Arg("from"), Arg("to"), group="fault", help="Lose the next message on the link from -> to.")
    def do_drop_next(self, src: str, dst: str) -> None:
        self._distinct(src, dst)
        self.net.link(src, dst).drop_next += 1
        self.emit("drop-next", src=src, dst=dst)
        self.after_fault("drop-next", None)

    @action("duplicate-next", Arg("from"), Arg("to"), group="fault",
            help="Deliver the next message on the link from -> to twice.")
    def do_duplicate_next(self, src: str, dst: str) -> None:
        self._distinct(src, dst)
        self.net.link(src, dst).duplicate_next += 1
        self.emit("duplicate-next", src=src, dst=dst)
        self.after_fault("duplicate-next", None)

    def after_fault(self, fault: str, node_id: str | None) -> None:
        """Hook for labs that react to a fault beyond the node itself."""

    def handled(self, node: Node, msg: Message) -> None:
        """Hook: `node` has just handled `msg` (a lab watching the protocol's
        progress looks here, so the nodes need not report to it)."""

    def update_metrics(self) -> None:
        """Hook: bring derived metrics up to date before a snapshot."""

    @staticmethod
    def _distinct(src: str, dst: str) -> None:
        if src == dst:
            raise SimError("a link joins two different nodes")


def replay(lab_cls: type[Lab], params: dict, seed: int, commands, until: float | None = None) -> Lab:
    """Rebuild a run: apply each `(t, action, args)` at its time, in order."""
    lab = lab_cls(params, seed)
    for t, name, args in commands:
        lab.run_until(parse_time(t))
        lab.command(name, list(args))
    if until is not None:
        lab.run_until(until)
    return lab

