"""The kernel: virtual time, the network's faults, determinism, the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulations import get_lab, labs
from simulations.kernel import SimError, parse_time

from ..simhelpers import run

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, hashseed="0"):
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    return subprocess.run([sys.executable, "-m", "simulations", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_times_accept_units():
    assert parse_time("1500") == 1500
    assert parse_time("1.5s") == 1500
    assert parse_time("200ms") == 200
    assert parse_time("2m") == 120_000
    with pytest.raises(SimError, match="not a time"):
        parse_time("soon")


@pytest.mark.parametrize("slug", sorted(labs()))
def test_every_lab_is_byte_identical_across_processes(slug):
    """Same lab, params, seed and commands: the same bytes, whatever PYTHONHASHSEED says."""
    lab = get_lab(slug)
    target = next(n for n in lab(None, 1).nodes if n not in lab.UNFAULTABLE)
    args = ["run", slug, "--seed", "42", "--do", f"500ms crash {target}", "--do", f"2s restart {target}",
            "--until", "4s"]
    if "crash" not in lab.ACTIONS:
        args = ["run", slug, "--seed", "42", "--until", "4s"]
    first, second = cli(*args, hashseed="1"), cli(*args, hashseed="2")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    lines = first.stdout.splitlines()
    assert "snapshot" in json.loads(lines[-1])
    seqs = [json.loads(line)["seq"] for line in lines[:-1]]
    assert seqs == list(range(1, len(seqs) + 1)), "sequence numbers never skip or repeat"


def test_cli_lists_and_describes_labs():
    listed = cli("list")
    assert "leader-election" in listed.stdout
    described = json.loads(cli("describe", "leader-election").stdout)
    assert {p["name"] for p in described["params"]} >= {"algorithm", "nodes"}
    assert "elect" in {a["name"] for a in described["actions"]}
    assert "partition" in {a["name"] for a in described["actions"]}


@pytest.mark.parametrize("args, message", [
    (["run", "no-such-lab"], "there is no lab"),
    (["run", "leader-election", "--param", "nodes=12"], "between 3 and 9"),
    (["run", "leader-election", "--param", "colour=red"], "has no param"),
    (["run", "leader-election", "--do", "1s explode n1"], None),
    (["run", "leader-election", "--do", "later crash n1"], "not a time"),
])
def test_cli_reports_bad_input_clearly(args, message):
    result = cli(*args)
    if message is None:  # an unknown action is rejected as an event, the run goes on
        assert result.returncode == 0
        rejected = [json.loads(line) for line in result.stdout.splitlines() if '"rejected"' in line]
        assert rejected and "no action 'explode'" in rejected[0]["error"]
    else:
        assert result.returncode == 2
        assert message in result.stderr
        assert "Traceback" not in result.stderr


def test_partition_loses_messages_across_sides_only():
    lab = run("leader-election", "100ms partition n1,n2|n3,n4,n5", until="3s")
    drops = [e for e in lab.log if e["kind"] == "drop" and e["reason"] == "partition"]
    assert drops and all((e["src"] in ("n1", "n2")) != (e["dst"] in ("n1", "n2")) for e in drops)


def test_one_way_cut_and_drop_next():
    lab = run("leader-election", "100ms cut n5 n1", until="2s")
    assert any(e["kind"] == "drop" and e["src"] == "n5" and e["dst"] == "n1" for e in lab.log)
    assert not any(e["kind"] == "drop" and e["src"] == "n1" and e["dst"] == "n5" for e in lab.log)
    lab = run("leader-election", "100ms drop-next n5 n2", until="1s")
    assert len([e for e in lab.log if e["kind"] == "drop" and e["reason"] == "dropped"]) == 1


def test_duplicate_next_delivers_twice():
    lab = run("leader-election", "100ms duplicate-next n5 n2", until="1s")
    assert len([e for e in lab.log if e["kind"] == "send" and e.get("copy")]) == 1


def test_bad_commands_change_nothing():
    lab = run("leader-election", until="1s")
    before = json.dumps(lab.snapshot())
    for name, args in [("crash", ["n42"]), ("restart", ["n1"]), ("delay", ["n1", "n2", "forever"]),
                       ("partition", ["n1|n1"]), ("loss", ["n1", "n2", "150"]), ("nope", [])]:
        with pytest.raises(SimError):
            lab.apply(name, args)
    assert json.dumps(lab.snapshot()) == before
