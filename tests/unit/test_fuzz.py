"""The fault fuzzer: for every lab and every mode, seeded random schedules of the
fault palette and the lab's own actions (see tests/fuzz.py).  Each run must end
within its step and CPU-time budget, raise nothing, and keep every check the
lab declares an invariant in that mode (`Lab.INVARIANTS`).

`PATTERN_LAB_FUZZ=N` runs N schedules per lab and mode (default 10);
`PATTERN_LAB_FUZZ_FROM=S` starts at seed S.  A failure prints the command that
reproduces it.
"""

from __future__ import annotations

import json
import os

import pytest

from simulations import labs
from simulations.kernel import Arg, Check, Lab, Node, Param, action, replay

from ..fuzz import mode_id, modes, run_schedule

N = int(os.environ.get("PATTERN_LAB_FUZZ", "10"))
FIRST = int(os.environ.get("PATTERN_LAB_FUZZ_FROM", "1"))

# Lab/mode pairs with known findings, being fixed in their labs (issue 7): one reproducer each.
KNOWN: dict[tuple[str, str], str] = {
    ("bulkhead", "bulkheads"):
        "check c-unaffected went red at t=1512.417: request 36 for C failed after 12ms: pool C full… — python -m simulations run bulkhead --seed 1 --param mode=bulkheads --param rate=24 --param mix=0 --param c_threads=1 --param queue=0 --do '567 heal' --do '1440 slow C 1655' --do '1585 slow C 938' --do '2188 duplicate-next C B' --do '5932 mix 13' --do '6436 drop-next C client' --until 11007",
    ("circuit-breaker", "on"):
        "check no-cascade went red at t=7500.0: for 4.7s the client got only failures, slow ones (w… — python -m simulations run circuit-breaker --seed 39 --param breakers=on --param rate=20 --param threshold=2 --param trials=1 --param threads=2 --do '1501 recover B' --do '2593 recover C' --do '2768 crash A' --do '3122 crash C' --do '4949 delay C client 409' --until 8859",
    ("hinted-handoff", "sloppy"):
        "check replicas-converge went red at t=4000.0: n2 holds dave v0, the latest is v1… — python -m simulations run hinted-handoff --seed 9 --param quorum=sloppy --param r=1 --do '508 read v1' --do '582 heal' --do '678 partition client,n6,n5,n3,n4|n2,n1' --do '752 hint-ttl 553' --do '761 read x' --do '3520 heal' --until 15020",
    ("hinted-handoff", "strict"):
        "check replicas-converge went red at t=7250.0: n1 holds bob v1, the latest is v2… — python -m simulations run hinted-handoff --seed 1 --param quorum=strict --param w=1 --param r=3 --do '674 cut n1 n5' --do '1208 crash n2' --until 7731",
    ("load-balancing", "least-connections"):
        "check crash-contained went red at t=2556.043: f1 crashed at 1.72s and still got a request… — python -m simulations run load-balancing --seed 8 --param algorithm=least-connections --param health_interval=100 --param sticky=false --param rate=36 --param standby=true --do '748 drop-next f1 lb2' --do '1718 crash f1' --do '2764 add frontend 1' --do '4135 cut a3 a1' --until 9430",
    ("load-balancing", "random"):
        "check crash-contained went red at t=2549.048: f1 crashed at 1.72s and still got a request… — python -m simulations run load-balancing --seed 25 --param algorithm=random --param health_interval=100 --param health_checks=true --param sticky=true --do '400 slow f1 2782' --do '807 slow f1 0' --do '1715 crash f1' --do '2270 health on' --do '2419 remove a3' --do '2538 pause a2' --do '3391 pause f2' --do '3914 drop-next a2 f2' --until 6417",
    ("load-balancing", "round-robin"):
        "check crash-contained went red at t=4676.043: a3 crashed at 1.90s and still got a request… — python -m simulations run load-balancing --seed 26 --param algorithm=round-robin --param health_interval=100 --param sticky=false --param rate=40 --do '1898 crash a3' --do '2360 traffic 0' --do '2493 traffic 3' --do '5056 add api' --until 10540",
    ("load-balancing", "weighted"):
        "check even-split went red at t=2082.087: api: a1 got 3 of 3 picks, 1.2 away from its share… — python -m simulations run load-balancing --seed 1 --param algorithm=weighted --param sticky=true --param standby=true --do '914 weight a2 1' --do '1074 add frontend 3' --do '1380 duplicate-next f1 f3' --do '2031 partition lb,a3,a2,lb2,client,f3,f2,a1|f1' --do '2277 traffic 0' --do '3188 heal' --until 14688",
    ("saga", "orchestration,durable"):
        "check completed-or-compensated went red at t=3073.0: s1 failed (could not undo product): r… — python -m simulations run saga --seed 15 --param mode=orchestration --param log=durable --param timeout=100 --do '173 create-product' --do '178 drop-next orchestrator metadata' --do '226 clear-faults' --do '562 cut price metadata' --do '790 partition price,orchestrator|metadata,product' --do '790 loss orchestrator product 50' --do '790 fail-step price k2' --do '790 crash price' --do '790 slow price 773' --do '2935 heal' --do '2935 restart price' --do '2935 slow price 0' --until 14435",
    ("scatter-gather", "scattered"):
        "check redone-elsewhere went red at t=1300.0: 720p died with w2 and was never redone: job 1… — python -m simulations run scatter-gather --seed 26 --param mode=scattered --param backups=false --do '390 crash w2' --do '1278 timeout 306' --do '1390 loss coordinator w5 0' --do '1390 add-worker' --do '1390 loss w3 w5 50' --until 3338",
    ("scatter-gather", "sequential"):
        "check redone-elsewhere went red at t=1000.0: 240p died with w1 and was never redone: job 1… — python -m simulations run scatter-gather --seed 36 --param mode=sequential --param backups=true --do '78 crash w1' --do '469 cut coordinator w1' --do '908 timeout 262' --do '1310 delay w1 w5 637' --do '1310 heal' --do '1310 restart w1' --do '3111 heal' --until 14611",
    ("service-registry", "client-side"):
        "check graceful-at-once went red at t=1800.0: s1 shut down gracefully but 10.0.4.79:8080 is… — python -m simulations run service-registry --seed 4 --param mode=client-side --param ttl=10000 --param heartbeat=100 --param refresh=4 --param cache=true --param instances=1 --do '1424 partition s1,c1|registry|c2' --do '1678 shutdown s1' --do '3603 shutdown c2' --do '3885 delay-heartbeats c2 210' --do '4722 partition c2,c1|registry' --do '5522 heal' --until 17022",
    ("service-registry", "server-side"):
        "check new-gets-traffic went red at t=6400.0: s2 registered 1.74s ago and has not had a sin… — python -m simulations run service-registry --seed 4 --param mode=server-side --param ttl=1700 --param refresh=0 --param cache=true --param instances=4 --param rate=10 --do '749 shutdown s2' --do '861 loss s2 s1 0' --do '2732 crash s2' --do '2732 duplicate-next s3 lb' --do '2732 scale-down' --do '4651 heal' --do '4651 restart s2' --until 16151",
    ("sharding", "consistent"):
        "check isolation went red at t=6000.0: u20208 failed although its shard s5/s3 is healthy: t… — python -m simulations run sharding --seed 1 --param strategy=consistent --param shards=8 --param keys=1000 --do '449 cut s5 s1' --do '690 loss s1 s3 30' --do '1663 heal' --do '2693 loss s5 s7 50' --do '4481 loss s5 client 30' --do '4481 remove-shard s5' --do '4481 slow s2 2595' --do '4481 cut s3 s8' --until 10585",
    ("sharding", "mod"):
        "check isolation went red at t=5402.0: x failed although its shard s4 is healthy: the route… — python -m simulations run sharding --seed 5 --param strategy=mod --param rate=0 --do '58 heal' --do '1417 crash router' --do '2445 crash s4' --do '2532 heal' --do '3469 slow s1 1597' --do '4038 restart s4' --do '4402 hot-key x 7' --do '6707 hot-key' --until 11509",
    ("sharding", "range"):
        "check isolation went red at t=4875.0: u46503 failed although its shard s2 is healthy: the… — python -m simulations run sharding --seed 5 --param strategy=range --param vnodes=1 --do '187 read b' --do '3069 remove-shard s1' --do '3872 partition router,s4,s2|s3,client' --do '4555 cut s2 client' --do '5147 read 7' --do '5147 hot-key a' --do '5147 loss s2 s3 50' --do '5147 slow router 13' --do '8116 heal' --do '8116 slow router 0' --until 19616",
    ("sidecar", "sidecar,cache,after-ack"):
        "check app-survives went red at t=2976.709: request 37 failed while the sidecar was down… — python -m simulations run sidecar --seed 19 --param mode=sidecar --param kind=cache --param commit=after-ack --param dedupe=true --param rate=20 --param serve_stale=true --do '484 flaky 50' --do '577 slow backend 2044' --do '843 delay sidecar backend 449' --do '1206 crash sidecar' --do '1810 traffic 7' --do '1810 traffic 4' --do '1810 slow app 834' --do '1810 duplicate-next sidecar backend' --do '3688 heal' --do '3688 slow app 0' --do '3688 restart sidecar' --do '3688 slow backend 0' --until 15188",
    ("sidecar", "sidecar,log-shipper,after-ack"):
        "check app-survives went red at t=5540.764: request 37 failed while the sidecar was down… — python -m simulations run sidecar --seed 33 --param mode=sidecar --param kind=log-shipper --param commit=after-ack --param dedupe=false --do '981 loss app store 30' --do '2600 crash sidecar' --do '3491 cut store sidecar' --do '3557 crash store' --do '4558 pause app' --do '4725 cut app store' --do '8241 heal' --do '8241 resume app' --do '8241 restart sidecar' --do '8241 restart store' --until 19741",
    ("sidecar", "sidecar,log-shipper,before-ack"):
        "check app-survives went red at t=2778.562: request 16 failed while the sidecar was down… — python -m simulations run sidecar --seed 79 --param mode=sidecar --param kind=log-shipper --param commit=before-ack --param dedupe=false --param ttl=2239 --do '367 drop-next store app' --do '496 delay sidecar app 1502' --do '938 outage 1827' --do '1526 slow app 447' --do '1638 flaky 30' --do '2337 crash sidecar' --do '2337 duplicate-next sidecar store' --do '2337 crash app' --do '2337 traffic 2' --do '2337 flaky 10' --do '4416 heal' --do '4416 restart app' --do '4416 slow app 0' --do '4416 restart sidecar' --until 15916",
    ("sidecar", "sidecar,proxy,after-ack"):
        "check app-survives went red at t=2963.201: request 16 failed while the sidecar was down… — python -m simulations run sidecar --seed 55 --param mode=sidecar --param kind=proxy --param commit=after-ack --param ttl=60000 --do '803 cut sidecar app' --do '861 crash sidecar' --do '992 flaky 10' --do '1240 crash backend' --do '1539 slow sidecar 1649' --do '1571 slow sidecar 0' --do '1977 partition client|backend|app,sidecar' --do '2521 heal' --do '3244 heal' --do '3244 restart sidecar' --do '3244 restart backend' --until 14744",
    ("sidecar", "sidecar,proxy,before-ack"):
        "check app-survives went red at t=6948.738: request 47 failed while the sidecar was down… — python -m simulations run sidecar --seed 32 --param mode=sidecar --param kind=proxy --param commit=before-ack --param serve_stale=false --do '1778 slow app 152' --do '2150 cut backend sidecar' --do '4473 outage 950' --do '6775 crash sidecar' --do '7618 heal' --do '7618 slow app 0' --do '7618 restart sidecar' --until 19118",
    ("split-brain", "generation"):
        "hang: still running after 10 s of wall time… — python -m simulations run split-brain --seed 9 --param mode=generation --do '501 duplicate-next n1 n5' --do '763 write n5 4613' --do '4665 pause n4' --do '5310 write n2 873' --do '6867 write n1 2661' --until 19781",
    ("write-ahead-log", "every-write,checked"):
        "check recovery-exact went red at t=8964.0: after recovery k2 = v21, but the durable state… — python -m simulations run write-ahead-log --seed 98 --param flush=every-write --param replay=checked --param batch_size=1 --param batch_ms=5000 --do '2637 corrupt 2' --do '6341 crash db' --do '7028 remove alice' --do '8484 restart db' --until 19984",
}


def cases():
    out = []
    for slug, lab_cls in labs().items():
        for mode in modes(lab_cls):
            known = KNOWN.get((slug, mode_id(mode)))
            marks = [pytest.mark.xfail(strict=False, reason=f"known finding: {known}")] if known else []
            out.append(pytest.param(slug, mode, id=f"{slug}[{mode_id(mode)}]", marks=marks))
    return out


@pytest.mark.parametrize("slug, mode", cases())
def test_fault_schedules_keep_the_invariants(slug, mode):
    failures = []
    for seed in range(FIRST, FIRST + N):
        outcome = run_schedule(slug, mode, seed)
        if outcome.problem:
            failures.append(f"seed {seed}: {outcome.problem}\n    reproduce: {outcome.schedule.command_line()}")
    assert not failures, f"{len(failures)} of {N} schedules failed:\n" + "\n".join(failures[:5])


@pytest.mark.parametrize("slug", sorted(labs()))
def test_a_schedule_replays_to_the_same_state(slug):
    """What the fuzzer ran is what its printed command runs: same commands, same times, same end."""
    mode = modes(labs()[slug])[0]
    for seed in (1, 2):
        outcome = run_schedule(slug, mode, seed)
        if outcome.problem:
            continue
        sched = outcome.schedule
        lab = replay(labs()[slug], sched.params, seed, sched.commands, float(sched.until))
        assert json.dumps(lab.snapshot()) == outcome.snapshot, sched.command_line()


@pytest.mark.parametrize("slug", sorted(labs()))
def test_invariants_name_real_checks_and_modes(slug):
    lab_cls = labs()[slug]
    lab = lab_cls(None, 1)
    values = {str(v) for p in lab_cls.PARAMS if p.choices for v in p.choices}
    flags = {p.name for p in lab_cls.PARAMS}
    assert lab_cls.INVARIANTS, f"{slug} declares no invariant"
    for name, conditions in lab_cls.INVARIANTS.items():
        assert name in lab.checks, f"{slug}: no check named {name}"
        for condition in conditions:
            for part in condition.split("+"):
                assert part == "*" or part in values or part.split("=")[0] in flags, f"{slug}: what is '{part}'?"


# -- the fuzzer itself must be able to fail ------------------------------------------------


class Flaky(Node):
    def on_message(self, msg):
        if self.lab.mode == "loops" and msg.type == "PING":
            while True:  # a protocol bug: never returns
                pass
        if self.lab.mode == "raises" and msg.type == "PING":
            raise KeyError(msg.id)


class Broken(Lab):
    slug = ""  # not a real lab
    INVARIANTS = {"never-paused": ("honest",)}
    PARAMS = (Param("mode", "honest", "", choices=("honest", "raises", "loops")),)

    def setup(self):
        self.mode = self.params["mode"]
        for name in ("a", "b"):
            self.add_node(Flaky(self, name))
        self.add_check("never-paused", "")

    @action("ping", Arg("from"), Arg("to"))
    def do_ping(self, src, dst):
        self.nodes[src].send(dst, "PING")

    def after_fault(self, fault, node_id):
        if fault == "pause":
            self.fail("never-paused", f"{node_id} was paused")


def first_problem(mode: str, wall: float = 10.0) -> str:
    for seed in range(1, 40):
        outcome = run_schedule("broken", {"mode": mode}, seed, lab_cls=Broken, wall_limit=wall)
        if outcome.problem:
            assert "python -m simulations run broken --seed" in outcome.schedule.command_line()
            return outcome.problem
    return ""


def test_the_fuzzer_reports_a_broken_invariant_an_exception_and_a_hang():
    assert isinstance(Broken(None, 1).checks["never-paused"], Check)
    assert first_problem("honest").startswith("check never-paused went red")
    assert first_problem("raises").startswith("raised KeyError")
    assert first_problem("loops", wall=0.3).startswith("hang")
