"""One class on the real stack: an instructor, N students (200 by default).

  follow   N sockets following the instructor's run: frame latency p50/p95
  vote     N students vote at once: time from the last vote's answer to the
           instructor's socket showing all N votes
  forks    the run handed out: N private forks, each watched by its student's
           socket: frame latency p50/p95 across all of them
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import subprocess
import sys
import time
import urllib.parse
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from pattern_lab.stack import BASE_DIR

from .live import Browser, pct
from .wsclient import Viewer, run_viewers

PASSWORD = "bench password 4 class"


def _post(browser: Browser, path: str, **form) -> tuple[int, str]:
    req = urllib.request.Request(browser.base + path, data=urllib.parse.urlencode(form).encode(),
                                 headers={"X-CSRFToken": browser.cookie("csrftoken"), "Referer": browser.base + "/"})
    try:
        resp = browser.opener.open(req, timeout=60)
        return resp.status, resp.url
    except urllib.error.HTTPError as err:
        return err.code, ""


def instructor(stack, base: str) -> Browser:
    env = {**stack.env, "PATTERN_LAB_PASSWORD": PASSWORD}
    subprocess.run([sys.executable, "manage.py", "createinstructor", "bench"], cwd=BASE_DIR, env=env,
                   check=True, capture_output=True)
    b = Browser(base)
    b.get("/accounts/login/")
    status, url = _post(b, "/accounts/login/", username="bench", password=PASSWORD)
    assert url.endswith("/teach/"), (status, url)
    return b


async def _many(urls: list[str], origin: str, start_at: float, stop_at: float) -> tuple[list, int]:
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(64)
    viewers = []

    async def one(url):
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        async with sem:
            _, v = await loop.create_connection(lambda: Viewer(hostport, "/" + path, origin, (start_at, stop_at)),
                                                host, int(port))
            await asyncio.wait_for(v.open, 60)
            viewers.append(v)

    await asyncio.gather(*(one(u) for u in urls), return_exceptions=True)
    await asyncio.sleep(max(0.0, stop_at + 2 - time.time()))
    for v in viewers:
        v.transport.close()
    return [x for v in viewers for x in v.seen.values()], len(viewers)


def watch_many(urls, origin, start_at, stop_at):
    return asyncio.run(_many(urls, origin, start_at, stop_at))


async def _vote_round(ws_url: str, origin: str, cookie: str, students: list[Browser], code: str, poll: str) -> dict:
    import websockets

    n = len(students)
    want = f"{n} of {n} voted"
    async with websockets.connect(ws_url, origin=origin, additional_headers={"Cookie": cookie},
                                  max_size=None, compression=None) as ws:
        await ws.recv()
        loop = asyncio.get_running_loop()
        last_answer = [0.0]

        def vote(b: Browser):
            status, _ = _post(b, f"/class/{code}/vote/", poll=poll, choice="0")
            last_answer[0] = max(last_answer[0], time.perf_counter())
            return status

        start = time.perf_counter()
        with ThreadPoolExecutor(32) as pool:
            votes = loop.run_in_executor(None, lambda: list(pool.map(vote, students)))
            seen_at = None
            while seen_at is None:
                frame = await asyncio.wait_for(ws.recv(), timeout=60)
                if want in frame:
                    seen_at = time.perf_counter()
            statuses = await votes
    return {"students": n, "accepted": statuses.count(200), "all_votes_s": last_answer[0] - start,
            "last_vote_to_count_ms": max(0.0, (seen_at - last_answer[0]) * 1000)}


def class_bench(stack, base: str, students: int = 200, seconds: float = 10.0, say=print) -> dict:
    out: dict = {"students": students}
    teacher = instructor(stack, base)
    status, url = _post(teacher, "/teach/classes/start/", lab="leader-election")
    code = url.rstrip("/").split("/")[-1]
    html = teacher.get(f"/class/{code}/")
    class_run = re.search(r'data-run-id="(\w+)"', html).group(1)
    say(f"  class {code}: {students} students joining …")
    people = [Browser(base) for _ in range(students)]

    def join(i_b):
        i, b = i_b
        b.get("/join/")
        return _post(b, "/join/", code=code, name=f"Student {i + 1}")[0]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        joined = list(pool.map(join, enumerate(people)))
    out["join_s"] = time.perf_counter() - t0
    out["joined"] = joined.count(200)
    ws_base = base.replace("http", "ws")

    # Follow: every student's socket on the instructor's run.
    start_at = time.time() + 4 + students / 100
    stop_at = start_at + seconds
    procs = 2
    shares = [students // procs + (1 if i < students % procs else 0) for i in range(procs)]
    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(run_viewers, f"{ws_base}/ws/runs/{class_run}/", base, n, start_at, stop_at, 2.0)
                for n in shares]
        results = [j.result() for j in jobs]
    lat = [x for r in results for x in r[0]]
    out["follow"] = {"p50": pct(lat, 50), "p95": pct(lat, 95), "frames": len(lat), "sockets": sum(r[3] for r in results)}
    say(f"  follow: {out['follow']['sockets']} sockets, frame latency p50 {out['follow']['p50']:.1f} ms, "
        f"p95 {out['follow']['p95']:.1f} ms")

    # Vote: all at once; how soon does the instructor see the last one?
    _post(teacher, f"/class/{code}/do/poll/", question="Who leads next?", choices="n4\nn5\nnobody")
    poll = re.search(r'data-poll="(\d+)"', teacher.get(f"/class/{code}/")).group(1)
    out["vote"] = asyncio.run(_vote_round(f"{ws_base}/ws/class/{code}/", base, teacher.cookie_header(),
                                          people, code, poll))
    say(f"  vote: {out['vote']['accepted']} votes in {out['vote']['all_votes_s']:.1f} s; last vote to the "
        f"instructor's count {out['vote']['last_vote_to_count_ms']:.0f} ms")

    # Forks: hand out, then each student watches their own copy.
    _post(teacher, f"/class/{code}/do/hand-out/")
    with ThreadPoolExecutor(16) as pool:
        stages = list(pool.map(lambda b: b.get(f"/class/{code}/stage/"), people))
    forks = [re.search(r'data-run-id="(\w+)"', s).group(1) for s in stages]
    start_at = time.time() + 6 + students / 50
    stop_at = start_at + seconds
    urls = [f"{ws_base}/ws/runs/{rid}/" for rid in forks]
    halves = [urls[i::procs] for i in range(procs)]
    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = [j.result() for j in [pool.submit(watch_many, h, base, start_at, stop_at) for h in halves]]
    lat = [x for r in results for x in r[0]]
    out["forks"] = {"runs": len(set(forks)), "p50": pct(lat, 50), "p95": pct(lat, 95), "frames": len(lat),
                    "sockets": sum(r[1] for r in results)}
    say(f"  forks: {out['forks']['runs']} runs, {out['forks']['sockets']} sockets, frame latency "
        f"p50 {out['forks']['p50']:.1f} ms, p95 {out['forks']['p95']:.1f} ms")
    _post(teacher, f"/class/{code}/do/end/")
    return out
