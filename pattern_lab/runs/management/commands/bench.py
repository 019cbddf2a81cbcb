"""python manage.py bench: the numbers the README quotes, measured here and now.

Sections (all by default; pick with --only):
  kernel   kernel events/s against SimPy on the same small model
  replay   replay time of a 1,000-command run
  seek     time travel: seeking in a 10-minute, 1,000-command run (checkpoints)
  frames   what one frame costs the worker, per lab
  click    click-to-frame latency for one viewer (real stack)
  fanout   one run's frames to 200/500/1,000 viewers: our FrameHub and a
           stock Channels consumer (the baseline), p50/p95/p99 and frames lost
  watched  200 live runs on one worker, one socket each: frame latency,
           simulated time behind the wall clock, worker CPU
  unwatched 1,000 live runs nobody watches on one worker: RSS and CPU
  burst    300 runs opened and abandoned at once, then a new learner every
           second for 30 s: time to the new run's first frame
  class    one class of --students (200): following, voting, private forks
  lighthouse  Lighthouse 12 on the overview and every lab page (--lh-runs each,
           mobile; --lh-presets mobile,desktop adds the desktop preset): scores,
           page weight, TBT/LCP/CLS.  Long (about 30 s a page load): only with --only.
"""

import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

SECTIONS = ("kernel", "replay", "seek", "frames", "click", "fanout", "class", "watched", "unwatched", "burst",
            "lighthouse")
DEFAULT = SECTIONS[:-1]  # Lighthouse takes long: asked for by name only
LIVE = {"click", "fanout", "class", "watched", "unwatched", "burst"}



class Command(BaseCommand):
    help = "Measure kernel speed, replay time, frame cost, click-to-frame latency and websocket fan-out."

    def add_arguments(self, parser):
        parser.add_argument("--only", default=",".join(DEFAULT), help=f"comma-separated: {', '.join(SECTIONS)}")
        parser.add_argument("--viewers", default="200,500,1000")
        parser.add_argument("--seconds", type=float, default=10.0, help="measuring window per fan-out run")
        parser.add_argument("--daphnes", type=int, default=2, help="daphne processes sharing the port")
        parser.add_argument("--no-stock", action="store_true", help="skip the stock-consumer baseline")
        parser.add_argument("--lab", default="", help="lab for the fan-out run (default: the costliest frames)")
        parser.add_argument("--runs", default="200,1000,300", help="runs for watched, unwatched, burst")
        parser.add_argument("--engine-lab", default="leader-election", help="lab of the watched/unwatched/burst runs")
        parser.add_argument("--students", type=int, default=200, help="students in the class section")
        parser.add_argument("--lh-runs", type=int, default=3, help="Lighthouse runs per page")
        parser.add_argument("--lh-presets", default="mobile", help="mobile, desktop or mobile,desktop")
        parser.add_argument("--lh-pages", default="", help="lab slugs to audit (default: the overview and every lab)")
        parser.add_argument("--port", type=int, default=0, help="port of the Lighthouse section's stack (default: a free one)")
        parser.add_argument("--out", default=str(settings.VAR_DIR / "bench.json"))

    def say(self, text=""):
        self.stdout.write(text)
        self.stdout.flush()

    def handle(self, *args, only, viewers, seconds, daphnes, no_stock, lab, out, students, runs, engine_lab,
               lh_runs, lh_presets, lh_pages, port, **opts):
        self.students = students
        self.runs = [int(x) for x in runs.split(",")]
        self.engine_lab = engine_lab
        want = {s.strip() for s in only.split(",") if s.strip()}
        results: dict = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": __import__("os").cpu_count()}

        if "kernel" in want:
            from pattern_lab.bench.kernel import kernel_vs_simpy

            k = results["kernel"] = kernel_vs_simpy()
            self.say("Kernel against SimPy (hops per CPU second, 8-node token ring, 200 s simulated)")
            self.say(f"  scheduler alone   {k['scheduler']:>10,.0f}   SimPy timeouts        {k['simpy']:>10,.0f}"
                     f"   ratio {k['scheduler_ratio']:.2f}x")
            self.say(f"  whole kernel      {k['kernel']:>10,.0f}   SimPy, same messages  {k['simpy_network']:>10,.0f}"
                     f"   ratio {k['kernel_ratio']:.2f}x\n")

        if "replay" in want:
            from pattern_lab.bench.kernel import replay_time

            rows = results["replay"] = [replay_time(slug) for slug in ("leader-election", "circuit-breaker")]
            self.say("Replay of a 1,000-command run")
            for r in rows:
                self.say(f"  {r['lab']:<18} {r['events']:>6} events over {r['sim_s']:.0f} s simulated:"
                         f" median {r['median_ms']:.0f} ms, max {r['max_ms']:.0f} ms")
            self.say()

        if "seek" in want:
            from pattern_lab.bench.seek import seek_times

            rows = results["seek"] = [seek_times(slug) for slug in ("leader-election", "bulkhead")]
            self.say("Seek to a random moment of a 10-minute run with 1,000 commands (history + fragments)")
            for r in rows:
                self.say(f"  {r['lab']:<18} {r['events']:>7} events, {r['checkpoints']} checkpoints:"
                         f" first seek {r['first_seek_ms']:.0f} ms, then p50 {r['p50_ms']:.0f} ms,"
                         f" p95 {r['p95_ms']:.0f} ms, max {r['max_ms']:.0f} ms ({r['seeks']} seeks;"
                         f" CPU p50 {r['cpu_p50_ms']:.0f}, p95 {r['cpu_p95_ms']:.0f}, max {r['cpu_max_ms']:.0f} ms)")
            self.say()

        if "frames" in want or ("fanout" in want and not lab):
            from pattern_lab.bench.frames import frame_costs

            rows = results["frames"] = frame_costs()
            if "frames" in want:
                self.say("Frame cost in the worker, per lab (10 frames a second, 20 s simulated)")
                self.say(f"  {'lab':<18} {'events/s':>8} {'render p50':>10} {'p95':>6} {'delta frame':>11}")
                for r in rows:
                    self.say(f"  {r['lab']:<18} {r['events_per_s']:>8.1f} {r['render_p50_ms']:>8.1f}ms"
                             f" {r['render_p95_ms']:>4.1f}ms {r['frame_kb']:>8.1f} KB")
                self.say()
            lab = lab or max(rows, key=lambda r: r["frame_kb"] * r["events_per_s"])["lab"]

        if want & LIVE:
            self.live(results, want, viewers, seconds, daphnes, no_stock, lab or "circuit-breaker")

        if "lighthouse" in want:
            self.lighthouse(results, lh_runs, [p.strip() for p in lh_presets.split(",") if p.strip()],
                            [s.strip() for s in lh_pages.split(",") if s.strip()], port, daphnes)

        Path(out).write_text(json.dumps(results, indent=2, default=str))
        self.say(f"Figures saved to {out}")

    def lighthouse(self, results, runs, presets, slugs, port, daphnes):
        """Serve the app (the same stack as `serve`) and run Lighthouse on every page."""
        from pattern_lab.bench import lighthouse
        from pattern_lab.stack import Stack, free_port
        from simulations import labs

        why = lighthouse.available()
        if why:
            self.say(f"Lighthouse skipped: {why}.\n")
            results["lighthouse"] = {"skipped": why}
            return
        var = Path(tempfile.mkdtemp(prefix="pattern-lab-bench-"))
        # Every page load starts a run; once Lighthouse's browser is gone it
        # is unloaded after a few seconds, so the worker serves the next page.
        env = {"DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}", "PATTERN_LAB_IDLE_S": "5"}
        stack = Stack(var, port=port or free_port(), quiet=True, env=env, daphnes=daphnes, redis_url=None)
        self.say(f"Starting a private stack (Redis, 1 Celery worker, {daphnes} daphne) in {var} …")
        stack.start()
        try:
            results["lighthouse"] = lighthouse.lighthouse_bench(
                f"http://127.0.0.1:{stack.port}", slugs or list(labs()), runs, presets, self.say)
        finally:
            stack.stop()
            shutil.rmtree(var, ignore_errors=True)

    def live(self, results, want, viewers, seconds, daphnes, no_stock, lab):
        from pattern_lab.bench.live import click_to_frame, fanout, summarize
        from pattern_lab.stack import Stack, free_port

        var = Path(tempfile.mkdtemp(prefix="pattern-lab-bench-"))
        # Runs nobody watches stay held (paused) for the whole benchmark.
        env = {"PATTERN_LAB_BENCH": "1", "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}",
               "PATTERN_LAB_IDLE_S": "600"}
        stack = Stack(var, port=free_port(), quiet=True, env=env, daphnes=daphnes, redis_url=None)
        self.say(f"Starting a private stack (Redis, 1 Celery worker, {daphnes} daphne) in {var} …")
        results["daphnes"] = daphnes
        stack.start()
        base = f"http://127.0.0.1:{stack.port}"
        try:
            if "click" in want:
                c = results["click"] = asyncio.run(click_to_frame(base))
                self.say(f"Click to frame, one viewer ({c['clicks']} commands via POST, frame over the socket):"
                         f" p50 {c['p50']:.1f} ms, p95 {c['p95']:.1f} ms, max {c['max']:.1f} ms\n")
            if "fanout" in want:
                rows = results["fanout"] = []
                self.say(f"Fan-out of one {lab} run's frames ({seconds:.0f} s window each)")
                for n in [int(v) for v in viewers.split(",") if v.strip()]:
                    for stock in ([False] if no_stock else [False, True]):
                        row = fanout(base, stack.redis_url, n, seconds, stock, lab=lab)
                        rows.append(row)
                        self.say(f"  {row['consumer']:5} {n:>5} viewers: p50 {row['p50']:.1f} ms, p95 {row['p95']:.1f} ms,"
                                 f" p99 {row['p99']:.1f} ms, {row['frames']} frames, lost {row['lost_share'] * 100:.1f}%")
                self.say("\n" + summarize(rows) + "\n")
            if "class" in want:
                from pattern_lab.bench.classroom import class_bench

                self.say(f"One class of {self.students} students (leader-election)")
                results["class"] = class_bench(stack, base, self.students, seconds, self.say)
                self.say()
            self.engine(results, want, stack, base, seconds)
        except BaseException:
            for log in sorted(var.glob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-15:]
                self.stderr.write(f"--- {log.name} (last lines)\n" + "\n".join(tail))
            raise
        finally:
            stack.stop()
            shutil.rmtree(var, ignore_errors=True)

    def engine(self, results, want, stack, base, seconds):
        """Many runs on one worker process (see pattern_lab/bench/engine.py)."""
        from pattern_lab.bench import engine

        pid = stack.worker_procs[0].pid
        n_watched, n_unwatched, n_burst = (self.runs + [200, 1000, 300][len(self.runs):])[:3]
        lab = self.engine_lab
        if "watched" in want:
            w = results["watched"] = engine.watched(base, pid, n_watched, seconds, lab)
            self.say(f"{w['runs']} watched {lab} runs on one worker, one socket each ({w['connected']} connected,"
                     f" {seconds:.0f} s): frame latency p50 {w['latency_p50']:.1f} ms, p95 {w['latency_p95']:.1f} ms,"
                     f" p99 {w['latency_p99']:.1f} ms; simulated time behind the wall clock p50 {w['lag_p50']:.1f} ms,"
                     f" p95 {w['lag_p95']:.1f} ms, max {w['lag_max']:.1f} ms;"
                     f" {w['frames_per_run_s_p50']:.1f} frames/s per run (min {w['frames_per_run_s_min']:.1f});"
                     f" worker CPU {w['worker_cpu_share'] * 100:.0f}% of a core"
                     f" ({w['worker_cpu_share'] * 1000 / max(1, w['runs']):.2f} ms per run per second),"
                     f" RSS {w['worker_rss_mb']:.0f} MB\n")
        if "unwatched" in want:
            u = results["unwatched"] = engine.unwatched(base, stack.redis_url, pid, n_unwatched, seconds, lab)
            self.say(f"{u['runs']} {lab} runs nobody watches ({u['held']} held by the one worker):"
                     f" worker CPU {u['worker_cpu_share'] * 100:.1f}% of a core"
                     f" ({u['worker_cpu_share'] * 1e6 / max(1, u['held']):.0f} µs per run per second),"
                     f" RSS {u['worker_rss_mb']:.0f} MB (+{u['rss_per_run_kb']:.0f} KB per run)\n")
        if "burst" in want:
            b = results["burst"] = engine.burst(base, n_burst, lab)
            self.say(f"Burst: {b['runs']} runs opened and left after {b['hold_s']:.0f} s"
                     f" ({b['drawn_before_leaving']} drawn meanwhile); then a new learner every second for 30 s:"
                     f" first frame p50 {b['first_frame_p50'] * 1000:.0f} ms, max {b['first_frame_max'] * 1000:.0f} ms"
                     f" after the socket opened ({b['probes']} learners; max {b['page_to_frame_max'] * 1000:.0f} ms"
                     f" from the page request)\n")
