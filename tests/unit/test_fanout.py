"""The frame fan-out (pattern_lab/runs/fanout.py): under the daphne, autobahn
and Channels of requirements.txt, a frame is framed once and written to every
socket; without those internals every socket still gets every frame, once,
in order, through the consumer's send()."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

from pattern_lab.runs import wire
from pattern_lab.runs.fanout import Fanout

ROOT = Path(__file__).resolve().parents[2]
RELIED_ON = ("daphne", "autobahn", "channels", "Twisted")


def run_in_own_loop(coro):
    """asyncio.run on a thread of its own: in the full suite the browser tests'
    Playwright keeps an event loop running on the main thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()



def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.-]+)==([^\s#]+)", line)
        if m:
            out[m[1].lower()] = m[2]
    return out


def ws_frames(data: bytes) -> list[str]:
    """The text messages in what a server wrote to a socket (unmasked frames)."""
    out = []
    while data:
        assert data[0] == 0x81, "not a final text frame"
        n, head = data[1] & 0x7F, 2
        if n == 126:
            n, head = int.from_bytes(data[2:4], "big"), 4
        elif n == 127:
            n, head = int.from_bytes(data[2:10], "big"), 10
        out.append(data[head:head + n].decode())
        data = data[head + n:]
    return out


def daphne_socket():
    """A daphne websocket protocol, open, writing to memory; and the ASGI send
    an application gets for it (daphne's partial, inside Channels' session
    middleware, as in pattern_lab/asgi.py)."""
    from channels.sessions import InstanceSessionWrapper
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketFactory
    from twisted.internet.testing import StringTransport

    server = Server(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"])  # never listens
    proto = WebSocketFactory(server, server="daphne").buildProtocol(None)
    proto.makeConnection(StringTransport())
    proto.state = proto.STATE_OPEN  # as after the opening handshake
    send = InstanceSessionWrapper({"type": "websocket", "cookies": {}}, functools.partial(server.handle_reply, proto))
    return proto, send.send


class Plain:
    """A consumer's send(): what the plain path writes."""

    def __init__(self):
        self.sent: list[str] = []

    async def __call__(self, text: str):
        self.sent.append(text)


def frame(seq: int, kind: str = "delta") -> bytes:
    return wire.encode({"seq": seq, "prev": seq - 1, "kind": kind}, f'<div id="x">é {seq}</div>').encode()


def test_the_installed_server_libraries_are_the_pinned_ones():
    pinned = pins()
    assert {name: version(name) for name in RELIED_ON} == {name: pinned[name.lower()] for name in RELIED_ON}


def test_on_the_pinned_versions_a_frame_is_framed_once_and_reaches_every_socket(caplog, monkeypatch):
    fanout = Fanout()
    sockets = [daphne_socket() for _ in range(3)]
    with caplog.at_level(logging.WARNING, logger="pattern_lab.runs.fanout"):
        assert fanout.check(sockets[0][1]) is True
    assert not caplog.records
    plain = Plain()
    outlets = [fanout.outlet(send, plain) for _, send in sockets]
    assert [o.transport for o in outlets] == [proto for proto, _ in sockets]
    for o in outlets:
        o.ready = True
    factory = sockets[0][0].factory
    prepared = []
    monkeypatch.setattr(factory, "prepareMessage", lambda *a, _p=factory.prepareMessage: prepared.append(1) or _p(*a))

    async def scenario():
        await fanout.send(outlets, 5, frame(5))
        await fanout.send(outlets, 4, frame(4))  # older than what the sockets have: not sent
        await fanout.send(outlets, 6, frame(6))

    run_in_own_loop(scenario())
    for proto, _ in sockets:
        assert ws_frames(proto.transport.value()) == [frame(5).decode(), frame(6).decode()]
    assert len(prepared) == 2 and plain.sent == []


def test_without_the_internals_it_warns_once_and_frames_take_the_consumers_send(caplog):
    async def other_server_send(message):  # e.g. another ASGI server: no daphne protocol behind it
        pass

    fanout = Fanout()
    with caplog.at_level(logging.WARNING, logger="pattern_lab.runs.fanout"):
        a, b = Plain(), Plain()
        early, late = fanout.outlet(other_server_send, a), fanout.outlet(other_server_send, b)
    assert fanout.fast is False and early.transport is None and late.transport is None
    assert len(caplog.records) == 1 and "consumer's send()" in caplog.text

    async def scenario():
        early.ready = True
        await fanout.send([early, late], 5, frame(5))  # `late` is still getting its full frame
        await fanout.send([early, late], 4, frame(4))
        await fanout.send([early, late], 6, frame(6))
        # Its full frame ends on 5; then what came meanwhile, but nothing older than the full frame
        # (a frame with the same seq may carry a clock change).
        await late.restart(5, frame(5, "full").decode())

    run_in_own_loop(scenario())
    assert a.sent == [frame(5).decode(), frame(6).decode()]
    assert b.sent == [frame(5, "full").decode(), frame(5).decode(), frame(6).decode()]


def test_a_daphne_without_prepared_messages_is_refused(caplog):
    proto, send = daphne_socket()
    proto.factory = object()  # an autobahn without prepareMessage
    fanout = Fanout()
    with caplog.at_level(logging.WARNING, logger="pattern_lab.runs.fanout"):
        assert fanout.check(send) is False
    assert "prepareMessage" in caplog.text
    plain = Plain()
    outlet = fanout.outlet(send, plain)
    outlet.ready = True
    run_in_own_loop(fanout.send([outlet], 1, frame(1)))
    assert plain.sent == [frame(1).decode()] and proto.transport.value() == b""
