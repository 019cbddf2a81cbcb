"""A deliberately minimal websocket viewer for the fan-out benchmark.

A thousand viewers on the same two cores as the server must cost as little
as possible, or the benchmark measures itself: this one reads frames with a
few slices and looks only at each frame's head (seq, prev, kind, wall clock).
It speaks just what the benchmark needs: the opening handshake, unmasked
server frames, close and ping."""

from __future__ import annotations

import asyncio
import base64
import os
import time

from pattern_lab.runs.wire import head as frame_head


class Viewer(asyncio.Protocol):
    def __init__(self, host: str, path: str, origin: str, window: tuple[float, float]):
        self.host, self.path, self.origin = host, path, origin
        self.start_ms, self.stop_ms = window[0] * 1000, window[1] * 1000
        self.buf = bytearray()
        self.open = asyncio.get_running_loop().create_future()
        self.closed = False
        self.seen: dict[int, float] = {}
        self.gaps = 0
        self.last: int | None = None
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                         f"Origin: {self.origin}\r\n\r\n").encode())

    def data_received(self, data: bytes):
        self.buf += data
        if not self.open.done():
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buf[:12])
            del self.buf[:end + 4]
            if b" 101" not in status:
                self.open.set_exception(ConnectionError(status.decode(errors="replace")))
                self.transport.close()
                return
            self.open.set_result(True)
        self.frames()

    def frames(self):
        buf = self.buf
        while len(buf) >= 2:
            opcode, n, head = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, head = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, head = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < head + n:
                return
            if opcode in (1, 0):
                self.on_text(bytes(buf[head:head + min(n, 400)]))
            elif opcode == 9:  # ping: answer with a (zero-)masked pong
                payload = bytes(buf[head:head + n])
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
            elif opcode == 8:
                self.closed = True
            del buf[:head + n]

    def on_text(self, head: bytes):
        now = time.time() * 1000
        h = frame_head(head)
        if h is None:
            return
        seq, prev, kind, wall = h["seq"], h["prev"], h["kind"], h["wall"]
        if kind == "delta":
            if self.last is not None and prev != self.last:
                self.gaps += 1
            if self.start_ms <= wall <= self.stop_ms:
                self.seen[seq] = now - wall
        self.last = seq

    def connection_lost(self, exc):
        self.closed = True
        if not self.open.done():
            self.open.set_exception(ConnectionError("closed during the handshake"))


async def watch(url: str, origin: str, count: int, start_at: float, stop_at: float, linger: float):
    """`count` viewers of `url` from this process; returns what each saw."""
    assert url.startswith("ws://")
    hostport, _, path = url[5:].partition("/")
    host, _, port = hostport.partition(":")
    loop = asyncio.get_running_loop()
    viewers: list[Viewer] = []
    failed = 0
    sem = asyncio.Semaphore(64)

    async def connect():
        nonlocal failed
        async with sem:
            try:
                _, viewer = await loop.create_connection(
                    lambda: Viewer(hostport, "/" + path, origin, (start_at, stop_at)), host, int(port))
                await asyncio.wait_for(viewer.open, 60)
                viewers.append(viewer)
            except (OSError, ConnectionError, TimeoutError):
                failed += 1

    await asyncio.gather(*(connect() for _ in range(count)))
    await asyncio.sleep(max(0.0, stop_at + linger - time.time()))
    for v in viewers:
        if v.transport:
            v.transport.close()
    latencies = [x for v in viewers for x in v.seen.values()]
    received = [sorted(v.seen) for v in viewers] + [[] for _ in range(failed)]
    dropped = failed + sum(1 for v in viewers if v.closed)
    return latencies, received, sum(v.gaps for v in viewers), len(viewers), dropped


def run_viewers(url, origin, count, start_at, stop_at, linger):
    return asyncio.run(watch(url, origin, count, start_at, stop_at, linger))
