"""Write-ahead log: durability per flush policy, CRCs, idempotent replay, segments."""

import pytest

from ..simhelpers import check, events, run, step

SLUG = "write-ahead-log"


def acked_state(log):
    """The table the acknowledged writes describe, rebuilt from an event log."""
    acked = {e["lsn"] for e in log if e["kind"] == "send" and e["type"] == "ACK"}
    table = {}
    for e in sorted((e for e in log if e["kind"] == "append"), key=lambda e: e["lsn"]):
        if e["lsn"] in acked:
            if e["op"] == "SET":
                table[e["key"]] = e["value"]
            else:
                table.pop(e["key"], None)
    return table


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_fsync_every_write_loses_no_acknowledged_write(seed):
    lab = run(SLUG, "2.33s crash db", "2.5s restart db", seed=seed, until="6s", flush="every-write", rate=10,
              checkpoint_every=0)
    assert events(lab, "recovered"), "recovery finished"
    assert lab.metrics["acks"] > 15
    assert lab.metrics["lost_acked"] == 0
    # Measured: the recovered table is exactly what the acknowledged writes made it (no more, no less).
    crash_seq = events(lab, "crash")[0]["seq"]
    assert lab.recovered_table == acked_state([e for e in lab.log if e["seq"] < crash_seq])
    for name in ("no-acked-write-lost", "loss-bounded", "recovery-exact", "bad-record-rejected", "replay-idempotent"):
        assert check(lab, name)["ok"], name


@pytest.fixture(autouse=True)
def capture_recovered_table(monkeypatch):
    """Keep a copy of the table at the moment each recovery ends."""
    from simulations.write_ahead_log import WriteAheadLog

    original = WriteAheadLog.judge_recovery

    def judge(self, table):
        self.recovered_table = dict(table)
        original(self, table)

    monkeypatch.setattr(WriteAheadLog, "judge_recovery", judge)


def test_flush_never_loses_acknowledged_writes():
    lab = run(SLUG, "3s crash db", "3.2s restart db", until="6s", flush="never", rate=10, checkpoint_every=0)
    lost = events(lab, "power-loss")[0]["acked_lost"]
    assert len(lost) > 5
    assert not check(lab, "no-acked-write-lost")["ok"]
    assert not check(lab, "loss-bounded")["ok"]
    assert check(lab, "no-acked-write-lost")["seq"] is not None
    assert lab.metrics["fsyncs"] == 0
    assert lab.recovered_table == {}  # nothing ever reached the disk
    assert check(lab, "recovery-exact")["ok"]  # recovery did restore the (empty) durable state


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_batch_loss_is_bounded_by_the_batch(seed):
    lab = run(SLUG, "2.37s crash db", "2.6s restart db", seed=seed, until="5s", flush="batch", batch_size=4,
              batch_ms=2000, rate=20, checkpoint_every=0)
    lost = events(lab, "power-loss")[0]["acked_lost"]
    assert len(lost) <= 4
    assert check(lab, "loss-bounded")["ok"]
    assert check(lab, "recovery-exact")["ok"]
    # The store held writes back rather than let more than 4 wait unflushed.
    assert max(e["unflushed"] for e in events(lab, "hold")) == 4 if events(lab, "hold") else True


def test_batch_does_lose_some_acknowledged_writes():
    losses = []
    for seed in (1, 2, 3, 4, 5):
        lab = run(SLUG, "2.37s crash db", seed=seed, until="2.5s", flush="batch", batch_size=6, batch_ms=2000,
                  rate=20, checkpoint_every=0)
        losses.append(len(events(lab, "power-loss")[0]["acked_lost"]))
    assert max(losses) > 0 and max(losses) <= 6


def test_fsync_cost_every_write_versus_batch():
    every = run(SLUG, until="5s", flush="every-write", rate=20, fsync_ms=20)
    batch = run(SLUG, until="5s", flush="batch", batch_size=10, rate=20, fsync_ms=20)
    assert every.metrics["fsyncs"] > 2 * batch.metrics["fsyncs"]
    assert every.metrics["ack_ms"] > batch.metrics["ack_ms"] + 10  # every write waits for its fsync


def test_corrupt_tail_record_is_detected_and_not_applied():
    lab = run(SLUG, "100ms set k1 a", "200ms set k2 b", "300ms set k1 c", "500ms crash db", "600ms corrupt 3",
              "700ms restart db", until="2s", rate=0)
    replays = {e["lsn"]: e for e in events(lab, "replay")}
    assert replays[3]["verdict"] == "crc-failed" and replays[3]["crc"] != replays[3]["computed"]
    assert lab.recovered_table == {"k1": "a", "k2": "b"}
    assert check(lab, "bad-record-rejected")["ok"]
    assert check(lab, "recovery-exact")["ok"]
    assert not check(lab, "no-acked-write-lost")["ok"]  # a CRC detects damage, it cannot undo it
    assert events(lab, "truncate")[0]["records"] == 1


def test_naive_replay_applies_a_corrupted_record():
    lab = run(SLUG, "100ms set k1 a", "200ms set k2 b", "300ms set k1 c", "500ms crash db", "600ms corrupt 2",
              "700ms restart db", until="2s", rate=0, replay="naive")
    assert lab.recovered_table["k2"] != "b"  # one flipped bit, applied as if it were data
    assert not check(lab, "bad-record-rejected")["ok"]
    assert not check(lab, "recovery-exact")["ok"]


def test_corruption_in_the_middle_ends_the_log_there():
    lab = run(SLUG, *[f"{100 * i}ms set k{i} v{i}" for i in range(1, 6)], "1s corrupt 2", "1.1s crash db",
              "1.2s restart db", until="3s", rate=0)
    verdicts = [e["verdict"] for e in events(lab, "replay")]
    assert verdicts == ["applied", "crc-failed"]
    assert lab.recovered_table == {"k1": "v1"}
    assert check(lab, "recovery-exact")["ok"] and check(lab, "bad-record-rejected")["ok"]
    # The store continues the log after the last good record.
    step(lab, "4s", "3s set k9 z")
    assert [e["lsn"] for e in events(lab, "append")][-1] == 2


@pytest.mark.parametrize("flush", ["every-write", "never"])
def test_torn_write_is_detected_and_not_applied(flush):
    lab = run(SLUG, "100ms set k1 a", "300ms set k2 b", "400ms tear", "600ms restart db", until="2s", rate=0,
              flush=flush, checkpoint_every=0)
    torn = events(lab, "tear")[0]
    replays = {e["lsn"]: e["verdict"] for e in events(lab, "replay")}
    assert replays[torn["lsn"]] == "crc-failed"
    assert check(lab, "bad-record-rejected")["ok"] and check(lab, "recovery-exact")["ok"]
    if flush == "every-write":
        assert lab.recovered_table == {"k1": "a", "k2": "b"}  # the torn record was the next, unacknowledged write
        assert check(lab, "no-acked-write-lost")["ok"]
    else:
        assert lab.recovered_table == {}


def test_duplicate_record_replay_is_idempotent():
    cmds = ("100ms set k1 v1", "200ms set k1 v2", "300ms duplicate 1", "500ms crash db", "600ms restart db")
    lab = run(SLUG, *cmds, until="2s", rate=0)
    assert [e["verdict"] for e in events(lab, "replay")] == ["applied", "applied", "skipped"]
    assert lab.recovered_table == {"k1": "v2"}
    assert check(lab, "replay-idempotent")["ok"] and check(lab, "recovery-exact")["ok"]
    naive = run(SLUG, *cmds, until="2s", rate=0, replay="naive")
    assert naive.recovered_table == {"k1": "v1"}  # the old value came back
    assert not check(naive, "replay-idempotent")["ok"]
    assert not check(naive, "recovery-exact")["ok"]


@pytest.mark.parametrize("seed", [1, 2])
def test_checkpoint_low_water_mark_and_recovery_from_it(seed):
    lab = run(SLUG, "4.03s crash db", "4.2s restart db", seed=seed, until="7s", rate=10, segment_size=4,
              checkpoint_every=10)
    deleted = events(lab, "segment-deleted")
    assert deleted and events(lab, "checkpoint")[-1]["lsn"] > 0
    start = events(lab, "recovery-start")[0]
    assert start["checkpoint"] > 0
    assert start["records"] < lab.metrics["writes"]  # replay starts at the checkpoint, not the beginning
    cp_seq = start["checkpoint"]
    skipped = [e for e in events(lab, "replay") if e["verdict"] == "skipped"]
    assert all(e["lsn"] <= cp_seq for e in skipped)
    for name in ("recovery-exact", "no-acked-write-lost", "replay-idempotent"):
        assert check(lab, name)["ok"], name


def test_manual_checkpoint_and_bad_commands():
    lab = run(SLUG, "100ms set a 1", "200ms set b 2", "300ms checkpoint", until="1s", rate=0, segment_size=2,
              checkpoint_every=0)
    assert events(lab, "checkpoint")[0]["lsn"] == 2
    assert events(lab, "segment-deleted")[0]["id"] == 1
    for bad in (["corrupt", "99"], ["duplicate", "99"], ["corrupt", "x"]):
        assert lab.command(bad[0], bad[1:]) is not None
    step(lab, "2s", "1.5s crash db")
    assert "restart it first" in lab.command("checkpoint", [])
