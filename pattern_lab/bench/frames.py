"""What one frame costs the worker, per lab: render time (wall and CPU) and size.

Two workloads per lab, 10 frames a second over 20 simulated seconds: the lab
left alone with its defaults (`quiet`), and the same with a fault every two
seconds (`faults`: a node crashed, then restarted; a partition, then healed),
so that the cluster, the node rows, the checks and the panels really change."""

from __future__ import annotations

import time

from pattern_lab.runs.frames import FrameBuilder, node_actions
from simulations import labs

from .live import pct


def fault_script(lab) -> list[tuple[str, list[str]]]:
    """Faults to cycle through, from the palette this lab accepts."""
    out = []
    if "crash" in lab.ACTIONS and "restart" in lab.ACTIONS:
        targets = lab.targets("crash")
        if targets:
            node = targets[-1]
            out += [("crash", [node]), ("restart", [node])]
    ids = list(lab.nodes)
    if "partition" in lab.ACTIONS and len(ids) >= 2:
        half = len(ids) // 2
        out += [("partition", [",".join(ids[:half]) + "|" + ",".join(ids[half:])]), ("heal", [])]
    return out


def measure(lab_cls, sim_s: float, step_ms: int, faults: bool) -> dict:
    lab = lab_cls({}, 1)
    builder = FrameBuilder("bench", node_actions(lab_cls))
    script = fault_script(lab) if faults else []
    wall, cpu, sizes, events = [], [], [], 0
    t, k = 0, 0
    while t < sim_s * 1000:
        t += step_ms
        lab.run_until(t)
        if script and t % 2000 == 0:
            action, args = script[k % len(script)]
            lab.command(action, args)
            k += 1
        batch = lab.drain()
        events += len(batch)
        c0, w0 = time.thread_time(), time.perf_counter()
        _, delta, _ = builder.build(lab, batch, {"speed": 1, "frozen": False})
        wall.append((time.perf_counter() - w0) * 1e6)
        cpu.append((time.thread_time() - c0) * 1e6)
        sizes.append(len(delta.encode()))
    return {"events_per_s": events / sim_s, "wall_p50_us": pct(wall, 50), "wall_p95_us": pct(wall, 95),
            "cpu_p50_us": pct(cpu, 50), "cpu_mean_us": sum(cpu) / len(cpu), "frame_kb": sum(sizes) / len(sizes) / 1024}


def frame_costs(sim_s: float = 20, step_ms: int = 100) -> list[dict]:
    rows = []
    for slug, lab_cls in labs().items():
        quiet = measure(lab_cls, sim_s, step_ms, faults=False)
        busy = measure(lab_cls, sim_s, step_ms, faults=True)
        rows.append({"lab": slug, "events_per_s": quiet["events_per_s"],
                     # The keys the bench command prints (milliseconds, the quiet workload).
                     "render_p50_ms": quiet["wall_p50_us"] / 1000, "render_p95_ms": quiet["wall_p95_us"] / 1000,
                     "frame_kb": quiet["frame_kb"], "quiet": quiet, "faults": busy})
    return sorted(rows, key=lambda r: -r["render_p50_ms"])
