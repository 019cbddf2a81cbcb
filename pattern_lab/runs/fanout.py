"""One frame to many websockets: the only code that knows daphne's and
autobahn's insides.

The plain way to send a frame to a socket is the consumer's `send()`: an
ASGI message per socket, which daphne hands to autobahn, which frames the
payload for that socket.  For a run a whole classroom watches that is most of
a daphne process's work.  Under daphne the frame can instead be framed once
(autobahn's `factory.prepareMessage`) and the same bytes written to every open
socket (`protocol.sendPreparedMessage`), which needs each socket's daphne
protocol: daphne gives each application `send = partial(server.handle_reply,
protocol)`, possibly wrapped by middleware that keeps the inner one as
`real_send` (Channels' session middleware).

None of that is a public API.  `Fanout.check()` runs on the first socket and
verifies every attribute the fast path uses; if one is missing (another
server, a daphne or autobahn that changed) it logs one warning and all frames
take the plain path.  tests/unit/test_fanout.py pins the versions this was
written against (requirements.txt).

Each socket is an `Outlet`: where the fan-out writes to, and the seq of the
last frame it got.  `Outlet.take()` is the one place that keeps a socket from
getting an older frame after a newer one."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger(__name__)

MIDDLEWARE_DEPTH = 8  # wrappers around daphne's send we look through


def daphne_protocol(send) -> object | None:
    """The daphne protocol behind an ASGI `send`, or None (another server)."""
    for _ in range(MIDDLEWARE_DEPTH):
        if isinstance(send, functools.partial):
            return send.args[0] if send.args else None
        send = getattr(getattr(send, "__self__", None), "real_send", None)
        if send is None:
            return None
    return None


def missing(proto) -> list[str]:
    """What the fast path uses that this protocol lacks (empty: all there)."""
    if proto is None:
        return ["a daphne protocol behind the ASGI send (functools.partial(server.handle_reply, protocol))"]
    out = [f"protocol.{name}" for name in ("state", "STATE_OPEN", "factory") if not hasattr(proto, name)]
    if not callable(getattr(proto, "sendPreparedMessage", None)):
        out.append("protocol.sendPreparedMessage()")
    if not callable(getattr(getattr(proto, "factory", None), "prepareMessage", None)):
        out.append("protocol.factory.prepareMessage()")
    return out


class Outlet:
    """One socket as the fan-out sees it.  Frames that arrive while it is not
    ready (its full frame is on its way) wait in `pending`."""

    __slots__ = ("send", "transport", "last_seq", "ready", "pending")

    def __init__(self, send: Callable[[str], Awaitable], transport=None):
        self.send = send              # the plain path: the consumer's send(text)
        self.transport = transport    # daphne's protocol, if the fast path is usable
        self.last_seq = -1
        self.ready = False
        self.pending: list[tuple[int, str]] = []

    def take(self, seq: int) -> bool:
        """Whether a frame ending on `seq` goes out now (it then counts as sent)."""
        if seq < self.last_seq:
            return False
        self.last_seq = seq
        return True

    async def offer(self, seq: int, message: str) -> None:
        """One frame to this socket by the plain path (kept for later while not ready)."""
        if not self.ready:
            self.pending.append((seq, message))
        elif self.take(seq):
            await self.send(message)

    async def restart(self, seq: int | None, message: str | None) -> None:
        """Send the full frame `message` (if any) and then what arrived meanwhile."""
        if message is not None:
            await self.send(message)
            self.last_seq = seq
        self.ready = True
        pending, self.pending = self.pending, []
        for s, m in pending:
            await self.offer(s, m)


class Fanout:
    """Writes one frame to many outlets: prepared once under daphne, else by
    each consumer's send()."""

    def __init__(self):
        self.fast: bool | None = None  # None until check() ran

    def check(self, send) -> bool:
        """Is everything the fast path relies on there?  Run once, on the
        first socket; if not, say so once and use the plain path."""
        gaps = missing(daphne_protocol(send))
        self.fast = not gaps
        if gaps:
            log.warning("frame fan-out: %s missing; frames go through each consumer's send() "
                        "(slower with many viewers)", ", ".join(gaps))
        return self.fast

    def outlet(self, send, send_text: Callable[[str], Awaitable]) -> Outlet:
        """An outlet for a new socket whose ASGI send is `send`."""
        if self.fast is None:
            self.check(send)
        proto = daphne_protocol(send) if self.fast else None
        return Outlet(send_text, proto if proto is not None and not missing(proto) else None)

    async def send(self, outlets: Iterable[Outlet], seq: int, message: bytes) -> None:
        """One frame (a websocket message, UTF-8) to every outlet of a run."""
        prepared = text = None
        for out in list(outlets):
            proto = out.transport
            if out.ready and proto is not None and proto.state == proto.STATE_OPEN:
                if out.take(seq):
                    if prepared is None:
                        prepared = proto.factory.prepareMessage(message)
                    proto.sendPreparedMessage(prepared)
            else:
                if text is None:
                    text = message.decode()
                await out.offer(seq, text)
