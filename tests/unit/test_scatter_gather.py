"""Scatter-gather: a video transcoded into five resolutions, sequentially or scattered."""

import pytest

from pattern_lab.runs.layouts import LAYOUTS
from simulations.kernel import SimError
from simulations.scatter_gather import COST, RESOLUTIONS

from ..simhelpers import check, events, run, step

SEEDS = [1, 2, 3]


def job(lab):
    return lab.snapshot()["job"]


def costs(lab):
    return {t["res"]: t["cost"] for t in job(lab)["tasks"]}


@pytest.mark.parametrize("seed", SEEDS)
def test_scattered_takes_the_longest_task_sequential_the_sum(seed):
    scat = run("scatter-gather", seed=seed, until="4s", mode="scattered")
    seq = run("scatter-gather", seed=seed, until="7s", mode="sequential")
    for lab in (scat, seq):
        assert job(lab)["status"] == "complete" and not job(lab)["missing"]
        assert check(lab, "time-model")["ok"] and check(lab, "result-complete")["ok"]
    longest, total = max(costs(scat).values()), sum(costs(seq).values())
    t_scat, t_seq = job(scat)["elapsed"], job(seq)["elapsed"]
    assert longest <= t_scat <= longest + 120  # longest task + one scatter/gather round trip + the manifest
    assert total <= t_seq <= total + 250  # the sum + five round trips + the manifest
    assert 1.6 < t_seq / t_scat < 2.2  # bounded by sum / longest (about 1.9 for these five sizes)


def test_speedup_is_measured_once_both_modes_ran():
    lab = run("scatter-gather", "3s job sequential", until="9s")
    m = lab.metrics
    assert m["speedup_basis"] == "measured"
    assert m["speedup"] == round(m["last_sequential_ms"] / m["last_scattered_ms"], 2)
    assert m["speedup"] > 1.6


def test_task_costs_grow_with_resolution():
    ordered = [COST[res] for res, _ in RESOLUTIONS]
    assert ordered == sorted(ordered) and ordered[-1] > 10 * ordered[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_crashed_worker_task_is_redone_elsewhere(seed):
    lab = run("scatter-gather", "1s crash w1", seed=seed, until="8s")
    j = job(lab)
    assert j["status"] == "complete" and not j["missing"]
    assert [x["res"] for x in j["lost"]] == ["1080p"] and j["lost"][0]["redone_by"] not in (None, "w1")
    done_by = {t["res"]: t["worker"] for t in j["tasks"]}
    assert done_by["1080p"] != "w1"
    assert events(lab, "suspect") and lab.metrics["reassigned"] >= 1
    assert check(lab, "redone-elsewhere")["ok"]
    # Detection and redoing cost time: the job no longer fits the longest-task model.
    assert j["elapsed"] > max(costs(lab).values()) + 1000
    assert not check(lab, "time-model")["ok"] and "lost with w1" in check(lab, "time-model")["detail"]


def test_worker_that_crashed_before_its_task_arrived_is_covered_too():
    lab = run("scatter-gather", "300ms crash w1", until="5s")  # the job's TASKs are sent at 300 ms
    j = job(lab)
    assert any(e["kind"] == "drop" and e["dst"] == "w1" for e in lab.log)
    assert j["status"] == "complete" and j["lost"] and j["lost"][0]["redone_by"] not in (None, "w1")
    assert check(lab, "redone-elsewhere")["ok"] and "redone on" in check(lab, "redone-elsewhere")["detail"]


def test_layout_keeps_at_most_three_rows():
    for workers in (1, 3, 5, 8):
        layout = LAYOUTS["scatter-gather"](run("scatter-gather", until="100ms", workers=workers).snapshot())
        rows = {}
        for node, (x, y) in layout.items():
            if node != "coordinator":
                rows.setdefault(x, []).append(y)
        assert all(len(ys) <= 3 for ys in rows.values())


def test_sequential_crash_moves_on_to_another_worker():
    lab = run("scatter-gather", "1.5s crash w1", seed=1, until="9s", mode="sequential")
    j = job(lab)
    assert j["status"] == "complete" and j["lost"] and j["lost"][0]["redone_by"] == "w2"


def test_a_task_whose_message_was_lost_is_sent_again_to_the_live_worker_that_never_named_it():
    # w2 is down: at 1.4 s its four tasks go to w1, but the TASK for 720p is dropped on the way.  w1's
    # status never names 720p, so the coordinator sends it again; it does not take the idle, silent w1
    # for dead and end up with "no live worker" for 720p.
    lab = run("scatter-gather", "21ms crash w2", "1308ms drop-next coordinator w1", "2501ms heal", "2770ms timeout 0",
              seed=331, until="7536ms", workers=2, reassign=True, backups=False)
    assert any(e["kind"] == "drop" and e["type"] == "TASK" and e["reason"] == "dropped" for e in lab.log)
    assert [(e["worker"], e["tasks"]) for e in events(lab, "not-held")] == [("w1", ["720p"])]
    assert not events(lab, "stuck") and "w1" not in [e["worker"] for e in events(lab, "suspect")]
    j = job(lab)
    assert j["status"] == "complete" and {t["res"]: t["worker"] for t in j["tasks"]}["720p"] == "w1"
    assert check(lab, "redone-elsewhere")["ok"], check(lab, "redone-elsewhere")["detail"]


def test_a_task_is_not_sent_again_to_a_worker_that_cannot_receive_it_while_another_can():
    # The link coordinator -> w1 is cut, but w1 still reports: it never names 1080p.  Sending 1080p to w1
    # again (it has the least work queued) would repeat for as long as the cut lasts; w2 gets it instead.
    lab = run("scatter-gather", "100ms cut coordinator w1", until="9s", workers=2)
    assert [(e["worker"], e["tasks"]) for e in events(lab, "not-held")] == [("w1", ["1080p"])]
    j = job(lab)
    assert j["status"] == "complete" and {t["res"]: t["worker"] for t in j["tasks"]}["1080p"] == "w2"


def test_without_reassignment_the_job_never_completes():
    lab = run("scatter-gather", "1s crash w1", until="8s", reassign="off")
    assert job(lab)["status"] == "running"
    broken = check(lab, "redone-elsewhere")
    assert not broken["ok"] and "1080p" in broken["detail"] and broken["seq"] is not None


def test_while_every_worker_is_gone_the_lost_task_waits_and_is_redone_when_one_is_back():
    crashes = [f"1s crash w{i}" for i in range(1, 6)]
    lab = run("scatter-gather", *crashes, until="5s")
    assert job(lab)["status"] == "running"
    assert check(lab, "redone-elsewhere")["ok"] and "waiting for a live worker" in check(lab, "redone-elsewhere")["detail"]
    step(lab, "12s", "6s restart w3")
    assert job(lab)["status"] == "complete" and check(lab, "redone-elsewhere")["ok"]


@pytest.mark.parametrize("seed", SEEDS)
def test_gather_timeout_returns_a_partial_result_naming_what_is_missing(seed):
    lab = run("scatter-gather", "100ms timeout 1200", seed=seed, until="4s")
    j = job(lab)
    assert j["status"] == "partial" and j["elapsed"] == pytest.approx(1200, abs=WATCH_SLACK)
    # Measured: what finished after the deadline is exactly what the result says is missing.
    gathered_at = {e["res"]: e["t"] for e in events(lab, "gathered")}
    ended = job_start(lab) + j["elapsed"]
    late = sorted(r for r, _ in RESOLUTIONS if gathered_at.get(r, 1e9) > ended)
    assert sorted(j["missing"]) == late and "1080p" in late and "240p" not in late
    assert all(t["state"] == "missing" for t in j["tasks"] if t["res"] in late)
    assert all(t["link"] for t in j["tasks"] if t["res"] not in late)
    broken = check(lab, "result-complete")
    assert not broken["ok"] and "partial" in broken["detail"] and "1080p" in broken["detail"]
    # The next job, without the timeout, is complete again.
    step(lab, "8s", "4s timeout 0", "4s job")
    assert job(lab)["status"] == "complete" and check(lab, "result-complete")["ok"]


WATCH_SLACK = 101  # the coordinator looks at the deadline every 100 ms


def job_start(lab):
    return next(e["t"] for e in events(lab, "job") if e["job"] == job(lab)["id"])


def test_timeout_applies_to_the_job_under_way():
    lab = run("scatter-gather", "1s timeout 1500", until="3s")
    assert job(lab)["status"] == "partial" and job(lab)["missing"] == ["1080p"]


def test_straggler_on_the_longest_task_slows_the_whole_job():
    lab = run("scatter-gather", "100ms straggle w1 3", until="9s")
    assert job(lab)["status"] == "complete"
    assert job(lab)["elapsed"] > 2.5 * max(costs(lab).values())
    assert not check(lab, "time-model")["ok"] and "straggler" in check(lab, "time-model")["detail"]


def test_straggler_on_a_short_task_does_not_matter():
    lab = run("scatter-gather", "100ms straggle w5 3", until="5s")  # w5 has 240p: 3x still shorter than 1080p
    assert check(lab, "time-model")["ok"]


def test_backup_tasks_cut_the_straggler_short():
    slow = run("scatter-gather", "100ms straggle w1 3", until="9s")
    backed = run("scatter-gather", "100ms straggle w1 3", until="9s", backups="on")
    assert backed.metrics["backups"] == 1
    assert job(backed)["elapsed"] < job(slow)["elapsed"] - 500
    done_by = {t["res"]: t["worker"] for t in job(backed)["tasks"]}
    assert done_by["1080p"] != "w1"
    assert any(e["kind"] == "task-cancelled" and e["worker"] == "w1" for e in backed.log)


def test_fewer_workers_than_tasks_takes_the_busiest_queue():
    lab = run("scatter-gather", until="6s", workers=2)
    j = job(lab)
    assert j["status"] == "complete" and check(lab, "time-model")["ok"]
    assert j["elapsed"] >= j["plan_ms"] >= max(costs(lab).values())


def test_add_workers_up_to_eight():
    lab = run("scatter-gather", "1s add-worker", "1s add-worker", "1s add-worker", until="2s")
    assert [n for n in lab.nodes][-1] == "w8" and "w8" in LAYOUTS["scatter-gather"](lab.snapshot())
    with pytest.raises(SimError, match="already 8"):
        lab.apply("add-worker", [])
    lab2 = run("scatter-gather", "1s add-worker", "3s job", until="6s", workers=2)
    assert len([r for r in lab2.snapshot()["gantt"]["rows"] if r["bars"]]) == 3


def test_restarted_coordinator_resumes_its_job_from_disk():
    lab = run("scatter-gather", "600ms crash coordinator", "1s restart coordinator", until="6s")
    assert events(lab, "resume-job")
    assert job(lab)["status"] == "complete" and not job(lab)["missing"]


def test_one_job_at_a_time():
    lab = run("scatter-gather", until="1s")
    with pytest.raises(SimError, match="still running"):
        lab.apply("job", [])
    with pytest.raises(SimError):
        lab.apply("straggle", ["coordinator", "2"])


def test_a_gather_timeout_that_ends_the_job_before_a_crash_is_noticed_is_not_a_task_nobody_redoes():
    lab = run("scatter-gather", "100ms timeout 1200", "1s crash w1", until="4s")
    assert job(lab)["status"] == "partial" and "1080p" in job(lab)["missing"]
    assert not check(lab, "result-complete")["ok"]  # the partial result is reported there
    assert check(lab, "redone-elsewhere")["ok"] and "gather timeout" in check(lab, "redone-elsewhere")["detail"]


def test_a_gather_timeout_long_after_the_crash_still_blames_a_lost_task_nobody_redid():
    lab = run("scatter-gather", "100ms timeout 5000", "1s crash w1", until="8s", reassign="off")
    assert job(lab)["status"] == "partial"
    assert not check(lab, "redone-elsewhere")["ok"]


def test_a_paused_coordinator_is_not_blamed_for_not_reassigning_a_lost_task():
    lab = run("scatter-gather", "1s crash w1", "1.3s pause coordinator", until="6s")
    assert job(lab)["status"] == "running"
    assert check(lab, "redone-elsewhere")["ok"], check(lab, "redone-elsewhere")
    step(lab, "12s", "6s resume coordinator")
    assert job(lab)["status"] == "complete" and check(lab, "redone-elsewhere")["ok"]


def test_while_the_only_other_worker_is_cut_off_the_lost_task_waits_and_is_redone_after_the_heal():
    lab = run("scatter-gather", "1s crash w1", "1.1s partition coordinator|w2", until="5s", workers=2)
    assert job(lab)["status"] == "running"
    waiting = check(lab, "redone-elsewhere")
    assert waiting["ok"] and "connected to the coordinator" in waiting["detail"]
    step(lab, "12s", "6s heal")
    assert job(lab)["status"] == "complete" and check(lab, "redone-elsewhere")["ok"]


def test_a_gather_timeout_while_another_worker_redoes_the_lost_task_is_not_a_task_nobody_redid():
    lab = run("scatter-gather", "100ms timeout 5000", "1s crash w1", "1.5s straggle w2 5", until="7s")
    assert [(e["res"], e["to"]) for e in events(lab, "reassign")] == [("1080p", "w2")]
    assert job(lab)["status"] == "partial" and job(lab)["missing"] == ["1080p"]
    assert check(lab, "redone-elsewhere")["ok"] and "gather timeout" in check(lab, "redone-elsewhere")["detail"]


def test_a_lost_task_handed_back_to_its_restarted_worker_gets_the_time_to_arrive():
    # 1080p dies with w1, is redone on w2, dies with w2 too, and goes back to the restarted w1.
    lab = run("scatter-gather", "1s crash w1", "2.5s crash w2", "2.6s restart w1", until="9s", workers=2)
    assert [e["to"] for e in events(lab, "reassign")] == ["w2", "w1"]
    assert job(lab)["status"] == "complete" and check(lab, "redone-elsewhere")["ok"]


def test_a_lost_task_its_restarted_worker_redoes_is_said_to_be_redone_there():
    # One worker: nobody else can take what w1 lost, so the restarted w1 redoes it, and the check names it.
    lab = run("scatter-gather", "1s crash w1", "1.2s restart w1", until="8s", workers=1)
    j = job(lab)
    assert j["status"] == "complete" and j["lost"] and all(x["redone_by"] == "w1" for x in j["lost"])
    detail = check(lab, "redone-elsewhere")["detail"]
    assert check(lab, "redone-elsewhere")["ok"] and "redone on w1" in detail and "?" not in detail


@pytest.mark.parametrize("mode", ["scattered", "sequential"])
def test_a_coordinator_that_crashes_during_the_merge_merges_again_after_its_restart(mode):
    last = max(e["t"] for e in events(run("scatter-gather", until="20s", mode=mode), "gathered"))
    # Every result is in, the 50 ms merge is under way: the coordinator crashes, and comes back.
    lab = run("scatter-gather", f"{int(last) + 10}ms crash coordinator", f"{int(last) + 110}ms restart coordinator",
              until="20s", mode=mode)
    assert [e["status"] for e in events(lab, "job-done")] == ["complete"]
    assert lab.command("job", []) is None  # and the next job can start
