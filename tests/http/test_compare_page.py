"""Two runs side by side: each side's controls are drawn from its own run."""

from __future__ import annotations

import re


def test_each_side_of_a_comparison_offers_its_own_modes_quick_actions(owner):
    first = owner.get("/patterns/bulkhead/?mode=shared&seed=3")
    assert first.status_code in (200, 302)
    page = owner.get(first.url) if first.status_code == 302 else first
    rid = re.search(r'data-run-id="(\w+)"', page.content.decode()).group(1)
    resp = owner.get(f"/patterns/bulkhead/?run={rid}&compare=bulkheads", follow=True)
    assert resp.status_code == 200
    body = resp.content.decode()
    areas = body.split('data-run-id="')[1:]
    assert len(areas) >= 2, "two runs side by side"
    shared_side, bulkheads_side = areas[0], areas[1]
    assert "Shared pool = 20" in shared_side.split('data-run-id=')[0]
    assert "B&#x27;s pool = 8" in bulkheads_side or "B's pool = 8" in bulkheads_side
    assert "Shared pool = 20" not in bulkheads_side
