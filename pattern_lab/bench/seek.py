"""Seek time: how long the page waits for a past moment of a long run.

A run of 10 simulated minutes with 1,000 commands (crashes, restarts, delays
and loss, as in the replay bench); the first seek builds the history (a full
replay leaving a checkpoint every CHECKPOINT_MS), then random seeks each copy
the nearest checkpoint, replay the rest and render the page's fragments
(exactly what /runs/<id>/seek/ answers, without the HTTP)."""

from __future__ import annotations

import json
import random
import time

from pattern_lab.timetravel.history import CHECKPOINT_MS, History
from pattern_lab.timetravel.views import render_moment
from simulations import get_lab

from .live import pct


def long_log(lab_cls, commands: int = 1000, sim_ms: float = 600_000, seed: int = 7) -> list[tuple]:
    node_ids = [n for n in lab_cls({}, seed).nodes if n not in lab_cls.UNFAULTABLE]
    rng = random.Random(seed)
    log, down = [], set()
    times = sorted(rng.uniform(0, sim_ms - 1000) for _ in range(commands))
    for t in times:
        node = rng.choice(node_ids)
        if node in down:
            log.append((round(t), "restart", [node]))
            down.discard(node)
        elif len(down) < len(node_ids) - 1 and rng.random() < 0.4:
            log.append((round(t), "crash", [node]))
            down.add(node)
        else:
            a, b = rng.sample(node_ids, 2)
            log.append((round(t), rng.choice(["delay", "loss"]), [a, b, str(rng.choice([0, 20, 50]))]))
    return log


def seek_times(slug: str = "leader-election", seeks: int = 200, sim_ms: float = 600_000) -> dict:
    lab_cls = get_lab(slug)
    log = long_log(lab_cls, sim_ms=sim_ms)
    start = time.perf_counter()
    history = History(lab_cls, {}, 7, log)
    first = render_moment(history, lab_cls, "bench", sim_ms, sim_ms)
    first_ms = (time.perf_counter() - start) * 1000
    rng = random.Random(1)
    times, cpu, sizes = [], [], []
    for _ in range(seeks):
        t = round(rng.uniform(0, sim_ms))
        start, start_cpu = time.perf_counter(), time.process_time()
        body = render_moment(history, lab_cls, "bench", t, sim_ms)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        sizes.append(len(json.dumps(body)))
    return {"lab": slug, "commands": len(log), "sim_s": sim_ms / 1000, "events": first["seq"],
            "checkpoints": len(history.checkpoints), "checkpoint_s": CHECKPOINT_MS / 1000,
            "first_seek_ms": first_ms, "seeks": seeks, "p50_ms": pct(times, 50), "p95_ms": pct(times, 95),
            "max_ms": max(times), "cpu_p50_ms": pct(cpu, 50), "cpu_p95_ms": pct(cpu, 95), "cpu_max_ms": max(cpu),
            "answer_kb": sum(sizes) / len(sizes) / 1024}
