"""How many live runs one worker process carries (real stack):

  watched    N runs, each watched by one socket: frame latency (server wall
             clock in the frame to its arrival), how far simulated time falls
             behind the wall clock, frames per run and second, worker CPU
  unwatched  N runs held by the worker with nobody watching: worker RSS and
             CPU per second
  burst      N runs opened and abandoned at once, then a new learner every
             second: time until the new run's first frame
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import time
import urllib.parse
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from pattern_lab.runs.wire import head as frame_head

from .live import Browser, pct
from .wsclient import Viewer

RUN_ID = re.compile(r'data-run-id="(\w+)"')
TICK = os.sysconf("SC_CLK_TCK")


def proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds used so far, resident MB) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    return cpu, rss


def create_runs(base: str, n: int, lab: str, threads: int = 6) -> list[str]:
    """n fresh runs, as n learners opening the lab page (each its own session)."""

    def one(_):
        html = Browser(base).get(f"/patterns/{lab}/?fresh=1")
        return RUN_ID.search(html).group(1)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))


class ClockViewer(Viewer):
    """Records, for each frame in the window: arrival, server wall time, t."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.samples: list[tuple[float, float, float]] = []
        self.first_frame: float | None = None

    def on_text(self, head: bytes):
        now = time.time() * 1000
        h = frame_head(head)
        if h is None:
            return
        if self.first_frame is None:
            self.first_frame = now
        wall = h["wall"]
        if self.start_ms <= wall <= self.stop_ms:
            self.samples.append((now, wall, float(h["t"])))


async def _watch_runs(base: str, rids: list[str], start_at: float, stop_at: float):
    hostport = base.split("//")[1]
    host, _, port = hostport.partition(":")
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(32)
    viewers: list[ClockViewer] = []

    async def connect(rid):
        async with sem:
            try:
                _, v = await loop.create_connection(
                    lambda: ClockViewer(hostport, f"/ws/runs/{rid}/", base, (start_at, stop_at)), host, int(port))
                await asyncio.wait_for(v.open, 60)
                viewers.append(v)
            except (OSError, ConnectionError, TimeoutError):
                pass

    await asyncio.gather(*(connect(r) for r in rids))
    await asyncio.sleep(max(0.0, stop_at + 1.0 - time.time()))
    for v in viewers:
        v.transport.close()
    return [v.samples for v in viewers], len(viewers)


def watch_runs(base, rids, start_at, stop_at):
    return asyncio.run(_watch_runs(base, rids, start_at, stop_at))


def lags(samples: list[tuple[float, float, float]]) -> list[float]:
    """How far each frame's simulated time is behind the wall clock at its
    arrival, relative to the run's best frame (speed 1)."""
    if len(samples) < 2:
        return []
    behind = [(now - samples[0][0]) - (t - samples[0][2]) for now, _, t in samples]
    best = min(behind)
    return [b - best for b in behind]


def watched(base: str, worker_pid: int, runs: int, seconds: float, lab: str, procs: int = 2) -> dict:
    rids = create_runs(base, runs, lab)
    connect_s = 8 + runs / 40
    start_at = time.time() + connect_s
    stop_at = start_at + seconds
    shares = [rids[i::procs] for i in range(procs)]
    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(watch_runs, base, share, start_at, stop_at) for share in shares]
        time.sleep(max(0.0, start_at - time.time()))
        cpu0, _ = proc_stats(worker_pid)
        time.sleep(max(0.0, stop_at - time.time()))
        cpu1, rss = proc_stats(worker_pid)
        results = [j.result() for j in jobs]
    per_run = [s for r in results for s in r[0]]
    connected = sum(r[1] for r in results)
    latencies = [now - wall for s in per_run for now, wall, _ in s]
    lag = [x for s in per_run for x in lags(s)]
    rates = [len(s) / seconds for s in per_run]
    return {"runs": runs, "connected": connected, "lab": lab, "seconds": seconds,
            "frames": len(latencies), "frames_per_run_s_p50": pct(rates, 50), "frames_per_run_s_min": min(rates or [0]),
            "latency_p50": pct(latencies, 50), "latency_p95": pct(latencies, 95), "latency_p99": pct(latencies, 99),
            "lag_p50": pct(lag, 50), "lag_p95": pct(lag, 95), "lag_max": max(lag or [float("nan")]),
            "worker_cpu_share": (cpu1 - cpu0) / seconds, "worker_rss_mb": rss}


async def _hold(base: str, rids: list[str], seconds: float, until_drawn: bool = True) -> int:
    """One socket per run for `seconds` (and, if asked, until each run has
    drawn its first frame); returns how many were drawn."""
    hostport = base.split("//")[1]
    host, _, port = hostport.partition(":")
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(32)
    viewers: list[ClockViewer] = []

    async def connect(rid):
        async with sem:
            try:
                _, v = await loop.create_connection(
                    lambda: ClockViewer(hostport, f"/ws/runs/{rid}/", base, (0, 0)), host, int(port))
                await asyncio.wait_for(v.open, 60)
                viewers.append(v)
            except (OSError, ConnectionError, TimeoutError):
                pass

    t0 = time.monotonic()
    await asyncio.gather(*(connect(r) for r in rids))
    deadline = t0 + max(seconds, 120)
    while time.monotonic() < deadline:
        drawn = sum(1 for v in viewers if v.first_frame)
        if (drawn == len(viewers) or not until_drawn) and time.monotonic() - t0 >= seconds:
            break
        await asyncio.sleep(0.2)
    for v in viewers:
        v.transport.close()
    return sum(1 for v in viewers if v.first_frame)


def unwatched(base: str, redis_url: str, worker_pid: int, runs: int, seconds: float, lab: str) -> dict:
    import redis

    r = redis.Redis.from_url(redis_url)
    cpu_idle0, rss_before = proc_stats(worker_pid)
    rids = create_runs(base, runs, lab)
    started = 0
    for i in range(0, runs, 250):  # viewers come, see their run drawn, and leave
        started += asyncio.run(_hold(base, rids[i:i + 250], 1.0))
    # Wait until nobody is marked as watching any of them, then measure.
    deadline = time.monotonic() + 30
    while any(r.exists(f"run:{rid}:watched") for rid in rids[::25]) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # past the grace before a run counts as unwatched
    held = sum(1 for rid in rids if r.exists(f"run:{rid}:lease"))
    cpu0, _ = proc_stats(worker_pid)
    time.sleep(seconds)
    cpu1, rss = proc_stats(worker_pid)
    held_after = sum(1 for rid in rids if r.exists(f"run:{rid}:lease"))
    r.close()
    return {"runs": runs, "started": started, "held": min(held, held_after), "seconds": seconds, "lab": lab,
            "worker_cpu_share": (cpu1 - cpu0) / seconds, "worker_rss_mb": rss, "worker_rss_before_mb": rss_before,
            "rss_per_run_kb": (rss - rss_before) * 1024 / max(1, held)}


async def _first_frame(base: str, lab: str) -> tuple[float, float]:
    """A new learner: open the page, connect, wait for the first frame.
    Returns (seconds from socket open, seconds from page request)."""
    import websockets

    t0 = time.monotonic()
    browser = Browser(base)
    html = await asyncio.to_thread(browser.get, f"/patterns/{lab}/?" + urllib.parse.urlencode({"fresh": 1}))
    rid = RUN_ID.search(html).group(1)
    url = base.replace("http", "ws") + f"/ws/runs/{rid}/"
    async with websockets.connect(url, origin=base, additional_headers={"Cookie": browser.cookie_header()},
                                  max_size=None, compression=None, open_timeout=60) as ws:
        t1 = time.monotonic()
        while True:
            frame = await asyncio.wait_for(ws.recv(), timeout=120)
            if "data-node=" in frame:
                now = time.monotonic()
                return now - t1, now - t0


async def _burst(base: str, lab: str, runs: int, hold_s: float, probe_s: float, every_s: float) -> dict:
    rids = await asyncio.to_thread(create_runs, base, runs, lab)
    t_burst = time.monotonic()
    # Every learner opens a socket, stays a moment and leaves (many of the runs
    # are still queued or starting when their viewer goes).
    drawn = await _hold(base, rids, hold_s, until_drawn=False)
    burst_s = time.monotonic() - t_burst
    probes = []
    start = time.monotonic()
    while time.monotonic() - start < probe_s:
        t = time.monotonic()
        socket_s, page_s = await _first_frame(base, lab)
        probes.append({"after_s": round(t - start, 1), "socket_s": socket_s, "page_s": page_s})
        await asyncio.sleep(max(0.0, every_s - (time.monotonic() - t)))
    waits = [p["socket_s"] for p in probes]
    return {"runs": runs, "lab": lab, "hold_s": hold_s, "drawn_before_leaving": drawn, "burst_s": burst_s,
            "probes": len(probes), "first_frame_p50": pct(waits, 50), "first_frame_max": max(waits),
            "page_to_frame_max": max(p["page_s"] for p in probes), "series": probes}


def burst(base: str, runs: int, lab: str, hold_s: float = 2.0, probe_s: float = 30.0, every_s: float = 1.0) -> dict:
    return asyncio.run(_burst(base, lab, runs, hold_s, probe_s, every_s))
