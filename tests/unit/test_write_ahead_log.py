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
def test_fsync_always_loses_no_acknowledged_write(seed):
    lab = run(SLUG, "2.33s crash db", "2.5s restart db", seed=seed, until="6s", flush="always", rate=10,
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
    from simulations.write_ahead_log import Store

    original = Store.finish_recovery

    def finish(self):
        original(self)
        self.lab.recovered_table = dict(self.table)

    monkeypatch.setattr(Store, "finish_recovery", finish)


def test_flush_never_loses_acknowledged_writes():
    lab = run(SLUG, "3s crash db", "3.2s restart db", until="6s", flush="never", rate=10, checkpoint_every=0)
    lost = events(lab, "power-loss")[0]["acked_lost"]
    assert len(lost) > 5
    assert not check(lab, "no-acked-write-lost")["ok"]
    assert check(lab, "no-acked-write-lost")["seq"] is not None
    # A log that never fsyncs promises no bound, so there is none to break; the check says so.
    assert check(lab, "loss-bounded")["ok"] and "promises nothing" in check(lab, "loss-bounded")["detail"]
    assert lab.metrics["fsyncs"] == 0
    assert lab.recovered_table == {}  # nothing ever reached the disk
    assert check(lab, "recovery-exact")["ok"]  # recovery did restore the (empty) durable state


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_periodic_loss_is_bounded_by_the_batch(seed):
    lab = run(SLUG, "2.37s crash db", "2.6s restart db", seed=seed, until="5s", flush="periodic", batch_size=4,
              batch_ms=2000, rate=20, checkpoint_every=0)
    lost = events(lab, "power-loss")[0]["acked_lost"]
    assert len(lost) <= 4
    assert check(lab, "loss-bounded")["ok"]
    assert check(lab, "recovery-exact")["ok"]
    # The store held writes back rather than let more than 4 wait unflushed.
    assert max(e["unflushed"] for e in events(lab, "hold")) == 4 if events(lab, "hold") else True


def test_periodic_does_lose_some_acknowledged_writes():
    losses = []
    for seed in (1, 2, 3, 4, 5):
        lab = run(SLUG, "2.37s crash db", seed=seed, until="2.5s", flush="periodic", batch_size=6, batch_ms=2000,
                  rate=20, checkpoint_every=0)
        losses.append(len(events(lab, "power-loss")[0]["acked_lost"]))
    assert max(losses) > 0 and max(losses) <= 6


def test_fsync_cost_always_versus_periodic():
    every = run(SLUG, until="5s", flush="always", rate=20, fsync_ms=20)
    batch = run(SLUG, until="5s", flush="periodic", batch_size=10, rate=20, fsync_ms=20)
    assert every.metrics["fsyncs"] > 2 * batch.metrics["fsyncs"]
    assert every.metrics["ack_ms"] > batch.metrics["ack_ms"] + 10  # every write waits for its fsync


def test_batch_waits_for_the_fsync_so_it_loses_nothing_but_acks_slower():
    always = run(SLUG, until="5s", flush="always", rate=20, fsync_ms=20)
    batch = run(SLUG, until="5s", flush="batch", batch_size=5, batch_ms=100, rate=20, fsync_ms=20)
    assert batch.metrics["fsyncs"] < always.metrics["fsyncs"] / 2  # records share fsyncs
    assert batch.metrics["ack_ms"] > always.metrics["ack_ms"]  # each ack waits for its batch to be synced
    for seed in (1, 2, 3):
        lab = run(SLUG, "2.37s crash db", "2.6s restart db", seed=seed, until="5s", flush="batch", batch_size=6,
                  batch_ms=2000, rate=20, checkpoint_every=0)
        assert events(lab, "power-loss")[0]["unflushed"] > 0  # there was something to lose...
        assert events(lab, "power-loss")[0]["acked_lost"] == []  # ...but none of it was acknowledged
        assert check(lab, "no-acked-write-lost")["ok"] and check(lab, "loss-bounded")["ok"]


def test_the_old_name_every_write_still_means_always():
    assert run(SLUG, until="100ms", flush="every-write").params["flush"] == "always"


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


@pytest.mark.parametrize("flush", ["always", "never"])
def test_torn_write_is_detected_and_not_applied(flush):
    lab = run(SLUG, "100ms set k1 a", "300ms set k2 b", "400ms tear", "600ms restart db", until="2s", rate=0,
              flush=flush, checkpoint_every=0)
    torn = events(lab, "tear")[0]
    replays = {e["lsn"]: e["verdict"] for e in events(lab, "replay")}
    assert replays[torn["lsn"]] == "crc-failed"
    assert check(lab, "bad-record-rejected")["ok"] and check(lab, "recovery-exact")["ok"]
    if flush == "always":
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


def test_a_checkpoint_makes_a_never_fsynced_write_durable():
    # Issue 7, 10a: k1 was only in the buffer, but the checkpoint wrote the table to disk.
    lab = run(SLUG, "100 set k1 a", "200 checkpoint", "300 crash db", "400 restart db", until="2s", rate=0,
              flush="never")
    assert lab.recovered_table == {"k1": "a"}
    assert events(lab, "power-loss")[0]["acked_lost"] == []
    assert check(lab, "no-acked-write-lost")["ok"] and check(lab, "recovery-exact")["ok"]


def test_a_corrupt_duplicate_before_the_redo_point_costs_no_acknowledged_write():
    # Issue 7, 10c: the copy of LSN 1 lies before the checkpoint's redo point, so
    # recovery never reads it; k3 and k4, after the checkpoint, come back.
    lab = run(SLUG, "100 set k1 a", "200 set k2 b", "300 duplicate 1", "400 checkpoint", "500 set k3 c",
              "600 set k4 d", "700 corrupt 1", "800 crash db", "900 restart db", until="3s", rate=0,
              segment_size=2)
    assert lab.recovered_table == {"k1": "a", "k2": "b", "k3": "c", "k4": "d"}
    assert [e["lsn"] for e in events(lab, "replay")] == [3, 4]
    for name in ("no-acked-write-lost", "recovery-exact", "bad-record-rejected", "replay-idempotent"):
        assert check(lab, name)["ok"], name


def test_lost_acknowledged_writes_are_judged_from_the_recovered_table():
    # The check compares the table the store recovered with what the client was
    # told, so it goes red even if the store's own bookkeeping were wrong.
    from simulations.write_ahead_log import Store

    lab = run(SLUG, "100 set k1 a", "200 set k2 b", "300 set k1 c", until="400", rate=0)
    lab.log = []
    original = Store.finish_recovery

    def forgetful(self):
        self.table.pop("k2", None)  # a broken recovery that drops a key
        original(self)

    Store.finish_recovery = forgetful
    try:
        step(lab, "2s", "500 crash db", "600 restart db")
    finally:
        Store.finish_recovery = original
    assert not check(lab, "no-acked-write-lost")["ok"]
    assert "k2=b" in check(lab, "no-acked-write-lost")["detail"]
    assert not check(lab, "loss-bounded")["ok"]  # always promises 0


def test_an_overwritten_acknowledged_write_is_not_lost_when_a_later_value_survives():
    lab = run(SLUG, "100 set k1 a", "200 set k1 b", "300 remove k1", "400 set k2 x", "600 crash db",
              "700 restart db", until="2s", rate=0)
    assert lab.recovered_table == {"k2": "x"}
    assert check(lab, "no-acked-write-lost")["ok"]


@pytest.mark.parametrize("seed", range(1, 13))
def test_random_crashes_checkpoints_and_duplicates_keep_every_promise_with_always_and_batch(seed):
    import random

    r = random.Random(seed)
    cmds, t = [], 100
    for _ in range(14):
        t += r.choice([30, 90, 250, 600])
        cmds.append(f"{t} " + r.choice(["checkpoint", "duplicate 1", "duplicate 3", "crash db", "restart db",
                                         "set k1 z", "remove k2", "pause db", "resume db"]))
    for flush in ("always", "batch"):
        lab = run(SLUG, *cmds, seed=seed, until=t + 3000, rate=15, segment_size=3, checkpoint_every=7, flush=flush)
        for name in ("no-acked-write-lost", "loss-bounded", "recovery-exact", "bad-record-rejected",
                     "replay-idempotent"):
            assert check(lab, name)["ok"], (flush, name, check(lab, name)["detail"], cmds)
