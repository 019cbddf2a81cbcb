"""Websockets of the live runs.

A stock Channels consumer receives each frame through the channel layer:
one Redis message per socket, then a dispatch per socket that also hops to a
thread to close database connections.  For a run watched by a whole
classroom that is the bottleneck (see the README's benchmark).  Here each
daphne process subscribes once per run to the run's pub/sub channel (the
FrameHub) and writes every frame straight to its local sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time

import redis
import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import keys, wire
from .fanout import Fanout, Outlet
from .models import Run
from .services import Rejected, ensure_actor, submit_command

log = logging.getLogger(__name__)
WATCH_TTL_S = 30
WATCHDOG_S = 1.0
NOT_RUNS = "class-"  # hub keys of class audiences (pattern_lab/teach): frames, but no actor to keep alive
TIMING = os.environ.get("PATTERN_LAB_TIMING") == "1"


class FrameHub:
    """One per daphne process: Redis pub/sub in, local websockets out."""

    def __init__(self):
        self.sockets: dict[str, set[Outlet]] = {}
        self.fanout = Fanout()
        self.redis = None
        self.pubsub = None
        self.tasks: list[asyncio.Task] = []
        self.lock = None  # created on first use, inside daphne's event loop

    async def _start(self):
        if self.redis is None:
            self.redis = aioredis.Redis.from_url(settings.REDIS_URL)
            self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            await self.pubsub.subscribe("pl:hub-alive")  # listen() needs one subscription
            self.tasks = [asyncio.ensure_future(self._listen()), asyncio.ensure_future(self._watchdog())]

    async def join(self, run_id: str, socket: Outlet) -> None:
        # (Un)subscribing is serialised: many sockets arrive at once when a
        # classroom opens the same run, and they share one pub/sub connection.
        self.lock = self.lock or asyncio.Lock()
        async with self.lock:
            await self._start()
            members = self.sockets.setdefault(run_id, set())
            if not members:
                await self.pubsub.subscribe(keys.frames(run_id))
                await self.redis.set(keys.watched(run_id), "1", ex=WATCH_TTL_S)
            members.add(socket)

    async def leave(self, run_id: str, socket: Outlet) -> None:
        self.lock = self.lock or asyncio.Lock()
        async with self.lock:
            members = self.sockets.get(run_id)
            if members is None:
                return
            members.discard(socket)
            if not members:
                del self.sockets[run_id]
                await self.pubsub.unsubscribe(keys.frames(run_id))
                # Nobody here watches it any more: let its idle timer start now
                # (another daphne process with viewers sets the key again within 5 s).
                await self.redis.delete(keys.watched(run_id))

    async def _listen(self):
        while True:
            try:
                async for message in self.pubsub.listen():
                    channel = message["channel"].decode()
                    members = self.sockets.get(channel.partition(":")[2])
                    if members:
                        await self.fan_out(members, message["data"])
            except Exception:  # a Redis hiccup must not end the process's fan-out
                log.exception("frame hub: reconnecting to Redis")
                await asyncio.sleep(0.5)

    async def fan_out(self, members: set[Outlet], data: bytes) -> None:
        """One frame (as wire.pack() wrote it) to every local viewer of a run
        (under daphne, framed once and written to each socket as it is: see
        fanout.py)."""
        t0 = time.perf_counter()
        seq, message = wire.unpack(data)
        await self.fanout.send(members, seq, message)
        if TIMING:
            log.warning("fan-out of #%d to %d sockets: %.1f ms", seq, len(members), (time.perf_counter() - t0) * 1000)

    async def _watchdog(self):
        """Keep runs that have viewers marked as watched, and alive: if a run's
        lease has expired (its worker died, or Redis restarted empty), queue
        it again.  The hub also remembers where each run was (its `pos`, "t
        seq"): if Redis lost it, it is written back before the run is queued,
        so the new actor resumes exactly there (no repeat, no step back)."""
        positions: dict[str, bytes] = {}
        failing = False
        while True:
            await asyncio.sleep(WATCHDOG_S)
            run_ids = [r for r in self.sockets if self.sockets.get(r) and not r.startswith(NOT_RUNS)]
            for gone in set(positions) - set(run_ids):
                del positions[gone]
            if not run_ids or self.redis is None:
                continue
            try:
                pipe = self.redis.pipeline(transaction=False)
                for run_id in run_ids:
                    pipe.set(keys.watched(run_id), "1", ex=WATCH_TTL_S)
                    pipe.exists(keys.lease(run_id))
                    pipe.get(keys.pos(run_id))
                replies = await pipe.execute()
                for i, run_id in enumerate(run_ids):
                    leased, pos = replies[3 * i + 1], replies[3 * i + 2]
                    if pos:
                        positions[run_id] = pos
                    if leased or not self.sockets.get(run_id):  # driven, or its last viewer just left
                        continue
                    if not pos and run_id in positions:
                        await self.redis.set(keys.pos(run_id), positions[run_id], nx=True, ex=keys.FRAME_TTL_S)
                    await asyncio.to_thread(ensure_actor, run_id)
                if failing:
                    log.warning("frame hub watchdog: Redis is back")
                failing = False
            except Exception as err:  # Redis restarting: try again next second
                if not failing:
                    log.warning("frame hub watchdog: %s", err)
                failing = True


hub = FrameHub()


def watch_and_ensure(run_id: str) -> None:
    """Mark the run as watched and make sure a worker drives it (a worker
    drops a "drive run X" message for a run nobody watches)."""
    try:
        keys.client().set(keys.watched(run_id), "1", ex=WATCH_TTL_S)
    except (redis.ConnectionError, redis.TimeoutError):
        return  # Redis is restarting: the watchdog asks again every second
    ensure_actor(run_id)


class RunConsumer(AsyncWebsocketConsumer):
    """One viewer of one run.  Sends the full state on connect, then every
    frame; accepts commands (same validation path as the POST form)."""

    # No channel layer per socket: frames come from the FrameHub.
    channel_layer_alias = None

    async def connect(self):
        self.run_id = self.scope["url_route"]["kwargs"]["run_id"]
        self.outlet = self.make_outlet()
        self.run = await database_sync_to_async(Run.objects.filter(id=self.run_id).first)()
        if self.run is None:
            await self.close(code=4404)
            return
        session = self.scope.get("session")
        self.who = session.get("uid", "") if session is not None else ""
        await self.accept()
        # The run is asked for first: joining the hub may wait behind many
        # sockets leaving at once (a class closing its tabs).
        await asyncio.to_thread(watch_and_ensure, self.run_id)
        await hub.join(self.run_id, self.outlet)
        await self.send_full()

    def make_outlet(self) -> Outlet:
        """Where the hub writes this socket's frames (see fanout.py)."""
        return hub.fanout.outlet(self.base_send, self.send)

    async def send_full(self):
        """The latest full frame; frames that arrived meanwhile follow it."""
        self.outlet.ready = False
        raw = await hub.redis.get(keys.full(self.run_id))
        seq, frame = wire.unpack(raw.decode()) if raw else (None, None)
        await self.outlet.restart(seq, frame)

    async def disconnect(self, code):
        if getattr(self, "run", None) is not None:
            await hub.leave(self.run_id, self.outlet)

    async def receive(self, text_data=None, bytes_data=None):
        try:
            msg = json.loads(text_data or "")
            if not isinstance(msg, dict):
                raise ValueError
        except ValueError:
            await self.flash("That message was not understood (expected JSON with an action).")
            return
        kind = msg.get("type", "command")
        if kind == "sync":
            await self.send_full()
            return
        if kind == "ping":
            return
        if kind != "command":
            await self.flash(f"Unknown message type '{str(kind)[:20]}'.")
            return
        try:
            _, error = await database_sync_to_async(submit_command)(
                self.run, self.who, msg.get("action"), msg.get("args"), wait=True)
        except Rejected as err:
            error = err.message
        if error:
            await self.flash(error)

    async def flash(self, text: str):
        from django.utils.html import escape

        await self.send(f'<div id="flash-{self.run_id}" hx-swap-oob="true" class="flash bad" role="alert">'
                        f'{escape(text)}</div>')
