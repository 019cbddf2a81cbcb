"""Live measurements against a real stack: click-to-frame latency for one
viewer, and fan-out of one run's frames to hundreds of websocket viewers,
through our FrameHub and through a stock Channels consumer (the baseline)."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import multiprocessing
import re
import time
import urllib.parse
import urllib.request
from concurrent.futures import ProcessPoolExecutor

from pattern_lab.runs import wire

from .wsclient import run_viewers


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


class Browser:
    """Just enough of a browser for the benchmark: cookies, CSRF, forms."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> str:
        return self.opener.open(self.base + path, timeout=30).read().decode()

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.jar if c.name == name)

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)

    def post(self, path: str, **form) -> int:
        req = urllib.request.Request(self.base + path, data=urllib.parse.urlencode(form).encode(),
                                     headers={"X-CSRFToken": self.cookie("csrftoken"), "Referer": self.base + "/"})
        try:
            return self.opener.open(req, timeout=30).status
        except urllib.error.HTTPError as err:
            return err.code

    def open_lab(self, slug: str, **params) -> str:
        html = self.get(f"/patterns/{slug}/?" + urllib.parse.urlencode({**params, "fresh": 1}))
        return re.search(r'data-run-id="(\w+)"', html).group(1)


# ---- one viewer: click to frame ---------------------------------------------------

async def click_to_frame(base: str, clicks: int = 40) -> dict:
    import websockets

    browser = Browser(base)
    rid = browser.open_lab("leader-election")
    url = base.replace("http", "ws") + f"/ws/runs/{rid}/"
    latencies = []
    async with websockets.connect(url, origin=base, additional_headers={"Cookie": browser.cookie_header()},
                                  max_size=None, compression=None) as ws:
        await ws.recv()  # the full state
        for i in range(clicks):
            action, status = ("crash", "down") if i % 2 == 0 else ("restart", "up")
            want = f'data-node="n1" data-status="{status}"'
            start = time.perf_counter()
            post = asyncio.create_task(asyncio.to_thread(
                browser.post, f"/runs/{rid}/commands/", action=action, args="n1"))
            while True:
                frame = await asyncio.wait_for(ws.recv(), timeout=10)
                if want in frame:
                    break
            latencies.append((time.perf_counter() - start) * 1000)
            await post
            await asyncio.sleep(0.12)
    return {"clicks": clicks, "p50": pct(latencies, 50), "p95": pct(latencies, 95), "max": max(latencies)}


# ---- many viewers: fan-out -----------------------------------------------------------

async def _published(redis_url: str, rid: str, start_at: float, stop_at: float, relay_group: str | None):
    """Watch the run's own frame channel: what was published in the window
    (and, for the baseline, relay each frame into a channels-redis group)."""
    import redis.asyncio as aioredis

    layer = None
    if relay_group:  # the same channel layer the server uses, on the stack's Redis
        from channels_redis.core import RedisChannelLayer
        from django.conf import settings

        config = {**settings.CHANNEL_LAYERS["default"]["CONFIG"], "hosts": [redis_url]}
        layer = RedisChannelLayer(**config)
    r = aioredis.Redis.from_url(redis_url)
    ps = r.pubsub(ignore_subscribe_messages=True)
    await ps.subscribe(f"frames:{rid}")
    seqs = []
    while time.time() < stop_at + 0.5:
        msg = await ps.get_message(timeout=0.2)
        if not msg:
            continue
        seq, frame = wire.unpack(msg["data"].decode())
        head = wire.head(frame)
        if head and start_at * 1000 <= head["wall"] <= stop_at * 1000:
            seqs.append(seq)
        if layer:
            await layer.group_send(relay_group, {"type": "frame", "text": frame})
    await ps.close()
    await r.aclose()
    return seqs


def fanout(base: str, redis_url: str, viewers: int, seconds: float, stock: bool, procs: int = 2,
           lab: str = "circuit-breaker", params: dict | None = None) -> dict:
    """`viewers` sockets on one run (with several daphne processes behind the
    port, the kernel spreads the connections over them)."""
    browser = Browser(base)
    rid = browser.open_lab(lab, **(params or {}))
    ws_base = base.replace("http", "ws")
    path = f"/ws/bench/stock/{rid}/" if stock else f"/ws/runs/{rid}/"
    connect_s = 6 + viewers / 100
    start_at = time.time() + connect_s
    stop_at = start_at + seconds
    shares = [viewers // procs + (1 if i < viewers % procs else 0) for i in range(procs)]
    # Spawned, not forked: the parent has threads (Celery control, Redis) a fork would copy mid-lock.
    # One more process for the keeper, which watches the whole window.
    with ProcessPoolExecutor(procs + int(stock), mp_context=multiprocessing.get_context("spawn")) as pool:
        # One real viewer keeps the run watched (and so alive) in both modes.
        keeper = pool.submit(run_viewers, f"{ws_base}/ws/runs/{rid}/", base, 1, start_at, stop_at, 1) if stock else None
        jobs = [pool.submit(run_viewers, ws_base + path, base, n, start_at, stop_at, 3.0) for n in shares if n]
        published = asyncio.run(_published(redis_url, rid, start_at, stop_at, f"bench-{rid}" if stock else None))
        results = [j.result() for j in jobs]
        if keeper:
            keeper.result()
    latencies = [x for r in results for x in r[0]]
    received = [rec for r in results for rec in r[1]]
    connected = sum(r[3] for r in results)
    dropped = sum(r[4] for r in results)
    expected = set(published)
    got = sum(len(expected & set(r)) for r in received)
    lost = len(expected) * viewers - got
    return {
        "consumer": "stock" if stock else "hub", "viewers": viewers, "connected": connected, "dropped": dropped,
        "frames": len(expected), "deliveries": got, "lost": lost,
        "lost_share": lost / max(1, len(expected) * viewers),
        "p50": pct(latencies, 50), "p95": pct(latencies, 95), "p99": pct(latencies, 99),
    }


def summarize(rows: list[dict]) -> str:
    out = [f"{'consumer':8} {'viewers':>7} {'frames':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'lost':>7}"]
    for r in rows:
        out.append(f"{r['consumer']:8} {r['viewers']:>7} {r['frames']:>6} {r['p50']:>8.1f} {r['p95']:>8.1f} "
                   f"{r['p99']:>8.1f} {r['lost_share'] * 100:>6.1f}%")
    return "\n".join(out)


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, default=lambda o: round(o, 2) if isinstance(o, float) else str(o))

