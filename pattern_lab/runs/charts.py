"""Chart geometry for the labs' panels: the web's business, not the simulation's.

A lab's `view()` hands over its measurements (a series of numbers, the scale
it should be drawn against); these helpers, available in every panel
template, turn them into SVG coordinates.
"""

from __future__ import annotations

import math


def polyline(values, top: float, slots: int, width: float = 240, bottom: float = 58, span: float = 54) -> str:
    """SVG points for a series that fills a chart `slots` points wide from the
    right (the newest value at the right edge); y runs from `bottom` (0) up
    by `span` (top).  A missing value (None) leaves a gap in x, no point."""
    values = list(values)
    step = width / max(slots - 1, 1)
    x0 = width - step * (len(values) - 1)
    top = top or 1
    return " ".join(f"{x0 + i * step:.1f},{bottom - span * v / top:.1f}" for i, v in enumerate(values) if v is not None)


def level(value: float, top: float, bottom: float = 58, span: float = 54) -> float:
    """The y of a horizontal line at `value` on the same scale."""
    return round(bottom - span * value / (top or 1), 1)


def steps(values, top: float, height: int) -> str:
    """SVG points for a line chart with one x unit per value, y from 0 (top) to
    `height`; points in the middle of a flat stretch add nothing and are left out."""
    values = list(values)
    points = []
    for i, v in enumerate(values):
        flat = 0 < i < len(values) - 1 and values[i - 1] == v == values[i + 1]
        if not flat:
            points.append(f"{i},{height - round(height * v / (top or 1))}")
    return " ".join(points)




def ticks(attempts, span: float) -> list[dict]:
    """One SVG path per kind of mark: a short vertical tick at each [t, kind]
    (x in 0..100 of `span` ms)."""
    paths: dict[str, str] = {}
    for t, kind in attempts:
        paths[kind] = paths.get(kind, "") + f"M{round(100 * t / (span or 1), 1):g},1v8"
    return [{"kind": k, "d": d} for k, d in paths.items()]


def bloom_chart(snap: dict) -> dict:
    """The Bloom filter lab's two charts (300 x 150): the false-positive rate
    against n on a log scale (the formula for this k, the best k's, and the
    measurements), and the optimal k against n."""
    from simulations.bloom_filter import best_k, capacity, formula

    m, k, n, points = snap["m"], snap["k"], snap["n"], snap["chart"]["points"]
    top = int(max([4 * capacity(m), n] + [p["n"] for p in points]) * 1.05) + 1
    w, h, kmax = 300.0, 150.0, 20.0

    def x(v):
        return round(w * v / top, 1)

    def y(fp):  # log10 from 1e-4 (bottom) to 1 (top)
        return round(h * -max(math.log10(max(fp, 1e-4)), -4) / 4, 1)

    ns = [top * i / 40 for i in range(1, 41)]
    return {"top": top,
            "curve": "M0 150" + "".join(f"L{x(v)} {y(formula(m, k, v))}" for v in ns),
            "best": "M0 150" + "".join(f"L{x(v)} {y(min(formula(m, j, v) for j in range(1, 33)))}" for v in ns),
            "kopt": "".join(f"{'M' if i == 0 else 'L'}{x(v)} {round(h - h * min(best_k(m, v), kmax) / kmax, 1)}"
                            for i, v in enumerate(ns)),
            "k_y": round(h - h * min(k, kmax) / kmax, 1), "k_cross": x(m * math.log(2) / k), "n_x": x(n),
            "points": [{**p, "x": x(p["n"]), "y": y(p["measured"])} for p in points]}


BIT_COLUMNS = 64  # bits per row of the Bloom filter's bit array


def bloom_bits(snap: dict) -> dict:
    """The Bloom filter's bit array as rows of BIT_COLUMNS: one path over the
    runs of set bits, and where the last item's k bits are."""
    bits, cols = snap["bits"]["set"], BIT_COLUMNS
    runs = []
    for row in range(0, len(bits), cols):
        line = bits[row:row + cols]
        x = 0
        while x < len(line):
            if line[x] == "1":
                start = x
                while x < len(line) and line[x] == "1":
                    x += 1
                runs.append(f"M{start} {row // cols + 0.5}h{x - start}")
            else:
                x += 1
    last = snap.get("last") or {}
    hits = [{**b, "x": b["pos"] % cols, "y": b["pos"] // cols} for b in last.get("bits", ()) if b["pos"] < len(bits)]
    return {"rows": math.ceil(len(bits) / cols), "cols": cols, "path": "".join(runs), "hits": hits}
