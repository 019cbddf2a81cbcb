"""Every "What to try" step works when followed as written: replaying its
commands at their times through the kernel reaches the state its `expect`
describes, for the seeds a learner is likely to have (or the step's own)."""

import pytest

from pattern_lab.catalog.tries import TryError, items, slugs_with_items
from simulations import get_lab, labs

SEEDS = (1, 2, 3)
STEPS = [(slug, item) for slug in slugs_with_items() for item in items(slug)]


def reach(slug, item, seed):
    """The simulated time at which `expect` first holds, or None."""
    lab = get_lab(slug)(item.params, seed if item.seed is None else item.seed)
    pending = list(item.commands)
    t = 0.0
    while t <= item.until:
        while pending and pending[0].at <= t:
            step = pending.pop(0)
            lab.run_until(step.at)
            error = lab.command(step.action, list(step.args))
            assert error is None, f"{slug} step {item.index + 1}: '{step.action}' refused: {error}"
        lab.run_until(t)
        if not pending and item.reached(lab.snapshot()):
            return t
        t += 50
    return None


def test_every_lab_has_steps_to_try():
    assert set(slugs_with_items()) == set(labs())
    for slug in labs():
        assert len(items(slug)) >= 4, slug


@pytest.mark.parametrize("slug, item", STEPS, ids=[f"{s}-{i.index + 1}" for s, i in STEPS])
@pytest.mark.parametrize("seed", SEEDS)
def test_each_step_reaches_its_state(slug, item, seed):
    if item.seed is not None and seed != SEEDS[0]:
        pytest.skip("this step pins its own seed")
    assert reach(slug, item, seed) is not None, (
        f"{slug} step {item.index + 1} never reached: {item.expect}")


@pytest.mark.parametrize("slug, item", STEPS, ids=[f"{s}-{i.index + 1}" for s, i in STEPS])
def test_steps_are_valid_scenarios(slug, item):
    """Set this up plays a step as a scenario: its settings and commands must pass the same checks."""
    lab_cls = get_lab(slug)
    lab_cls.parse_params(item.params)
    for step in item.commands:
        lab_cls.spec(step.action).check_count(list(step.args))
        assert step.at == int(step.at) and len(step.note) <= 200


def test_a_step_does_not_hold_before_its_commands_ran():
    item = items("leader-election")[0]
    lab = get_lab("leader-election")({}, 1)
    lab.run_until(500)
    assert not item.reached(lab.snapshot())


def test_a_broken_step_file_is_refused(tmp_path, monkeypatch):
    from pattern_lab.catalog import tries

    (tmp_path / "x.yaml").write_text("- text: hi\n  expect: 'a ==='\n  commands: []\n")
    monkeypatch.setattr(tries, "HERE", tmp_path)
    tries.items.cache_clear()
    try:
        with pytest.raises(TryError, match="not JMESPath"):
            tries.items("x")
        (tmp_path / "x.yaml").write_text("- text: hi\n  expect: 'a'\n  colour: red\n")
        tries.items.cache_clear()
        with pytest.raises(TryError, match="unknown field 'colour'"):
            tries.items("x")
    finally:
        tries.items.cache_clear()
