"""Every lab does, event for event, what it did when tests/golden/traces.json was
recorded (see tests/golden.py): a refactoring must not change a run."""

from tests.golden import compare


def test_every_recorded_run_replays_to_the_same_events():
    problems = compare()
    assert not problems, (
        "runs whose events changed (replay with `python -m tests.golden compare --dump DIR` "
        "to see the first difference; re-record only for an intended change):\n" + "\n".join(problems))
