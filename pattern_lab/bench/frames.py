"""What one frame costs the worker, per lab: render time and size."""

from __future__ import annotations

import time

from pattern_lab.runs.frames import FrameBuilder, node_actions
from pattern_lab.timetravel.feed import frame_block
from simulations import labs

from .live import pct


def frame_costs(sim_s: float = 20, step_ms: int = 100) -> list[dict]:
    rows = []
    for slug, lab_cls in labs().items():
        lab = lab_cls({}, 1)
        builder = FrameBuilder("bench", node_actions(lab_cls))
        render, sizes, events, diagram = [], [], 0, 0.0
        t = 0
        while t < sim_s * 1000:
            t += step_ms
            lab.run_until(t)
            batch = lab.drain()
            events += len(batch)
            start = time.perf_counter()
            _, delta, _ = builder.build(lab, batch, {"speed": 1, "frozen": False})
            render.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()  # the space-time diagram's share (already inside build)
            frame_block("bench", batch)
            diagram += (time.perf_counter() - start) * 1000
            sizes.append(len(delta.encode()))
        rows.append({"lab": slug, "events_per_s": events / sim_s, "render_p50_ms": pct(render, 50),
                     "render_p95_ms": pct(render, 95), "frame_kb": sum(sizes) / len(sizes) / 1024,
                     "diagram_pct": 100 * diagram / max(sum(render), 1e-9)})
    return sorted(rows, key=lambda r: -r["render_p50_ms"])
