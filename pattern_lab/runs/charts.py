"""Chart geometry for the labs' panels: the web's business, not the simulation's.

A lab's `view()` hands over its measurements (a series of numbers, the scale
it should be drawn against); these helpers, available in every panel
template, turn them into SVG coordinates.
"""

from __future__ import annotations


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
