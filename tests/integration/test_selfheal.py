"""Drills against `manage.py serve` (and `make run`) started as a real
subprocess, in its own folder and on its own port: kill -9 a worker or the
private Redis and the site heals itself; Ctrl-C, SIGTERM, a wedged child or
the death of the supervisor itself leave no process behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from pattern_lab.bench.live import Browser
from pattern_lab.runs import wire
from pattern_lab.stack import Child, Stack, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHUTDOWN_BOUND_S = 15  # serve's grace period (8 s) for web and workers, 3 s for Redis, and some margin


# ---- processes, read from /proc ---------------------------------------------------

def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(root: int) -> dict[int, str]:
    """Every live process below `root`, with its command line."""
    parents = {pid: st[1] for pid in _pids() if (st := _stat(pid)) and st[0] != "Z"}
    found, frontier = {}, {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier and pid not in found}
        found.update({pid: _cmdline(pid) for pid in frontier})
    return found


def left_behind(var: Path) -> dict[int, str]:
    """Live processes that belong to the stack in `var`: its folder is in their
    command line (redis-server) or in their environment (everything else)."""
    out = {}
    needle = str(var).encode()
    for pid in _pids():
        if pid == os.getpid() or (st := _stat(pid)) is None or st[0] == "Z":
            continue
        try:
            if needle in Path(f"/proc/{pid}/cmdline").read_bytes() or needle in Path(f"/proc/{pid}/environ").read_bytes():
                out[pid] = _cmdline(pid)
        except OSError:
            pass
    return out


def wait_until(cond, timeout: float, what: str, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} (waited {timeout:.0f} s)"
        time.sleep(step)


def kind_of(cmdline: str) -> str | None:
    for kind, marker in (("redis", "redis-server"), ("worker", "celery"), ("daphne", "daphne"),
                         ("worker", "standby-worker")):
        if marker in cmdline:
            return kind
    return None


# ---- serve as a subprocess ---------------------------------------------------------

class Serve:
    """`manage.py serve` (or `make run`) in a session of its own, as a
    terminal would start it: its own folder, port and SQLite database."""

    def __init__(self, make: bool = False, workers: int = 1, daphnes: int = 2):
        self.var = Path(tempfile.mkdtemp(prefix="pl-serve-"))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PATTERN_LAB_VAR": str(self.var), "PATTERN_LAB_IDLE_S": "60",
               "DATABASE_URL": f"sqlite:///{self.var / 'db.sqlite3'}", "PORT": str(self.port),
               "PYTHONUNBUFFERED": "1"}
        env.pop("REDIS_URL", None)
        argv = (["make", "--no-print-directory", "run"] if make else
                [sys.executable, "manage.py", "serve", "--port", str(self.port),
                 "--workers", str(workers), "--daphnes", str(daphnes)])
        self.log = self.var / "serve.out"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        try:
            wait_until(lambda: "Pattern Lab is running" in self.output() or self.proc.poll() is not None,
                       120, "serve did not start")
            assert self.proc.poll() is None, f"serve exited:\n{self.output()[-3000:]}"
        except BaseException:
            self.cleanup()
            raise

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def log_lines(self) -> str:
        """What serve itself logged (its children's output is mixed in)."""
        return "\n".join(line for line in self.output().splitlines() if line.startswith("[serve"))

    def children(self, kind: str) -> list[int]:
        """Pids of serve's live children of one kind, as serve reports them in
        var/serve.json (a promoted standby worker's command line does not say
        it is the worker), checked against /proc."""
        try:
            state = json.loads((self.var / "serve.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return []
        below = descendants(self.proc.pid)
        return sorted(c["pid"] for c in state["children"] if c["kind"] == kind and c["pid"] in below)

    def the(self, kind: str) -> int:
        pids = self.children(kind)
        assert len(pids) == 1, f"expected one {kind}, found {pids}"
        return pids[0]

    def cleanup(self) -> None:
        """Stop serve if a test left it running, and make sure, whatever
        happened, that no process of this stack survives the test."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for pid in left_behind(self.var):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not os.environ.get("KEEP_SERVE_VAR"):
            shutil.rmtree(self.var, ignore_errors=True)


@pytest.fixture
def serve():
    s = Serve()
    yield s
    s.cleanup()


# ---- a websocket viewer that reconnects like the page ------------------------------

class Viewer(threading.Thread):
    """Watches a run over its websocket and records every frame it receives
    (arrival time, seq, prev, kind); reconnects, as the page does, whenever
    the socket closes."""

    def __init__(self, base: str, rid: str):
        super().__init__(daemon=True)
        self.url = base.replace("http", "ws") + f"/ws/runs/{rid}/"
        self.origin = base
        self.frames: list[tuple[float, int, int, str]] = []
        self.last_full = ""
        self.connects = 0
        self.done = threading.Event()

    def run(self):
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        while not self.done.is_set():
            try:
                with connect(self.url, origin=self.origin, open_timeout=5, max_size=None,
                             compression=None, proxy=None) as ws:
                    self.connects += 1
                    while not self.done.is_set():
                        try:
                            msg = ws.recv(timeout=0.25)
                        except TimeoutError:
                            continue
                        head = wire.head(msg)
                        if head:
                            self.frames.append((time.monotonic(), head["seq"], head["prev"], head["kind"]))
                            if head["kind"] == "full":
                                self.last_full = msg
            except (OSError, TimeoutError, WebSocketException):
                self.done.wait(0.2)

    def stop(self):
        self.done.set()
        self.join(5)

    def seq(self) -> int:
        return self.frames[-1][1] if self.frames else -1

    def continuity_errors(self) -> list[str]:
        """What a viewer would notice: a delta that does not follow the frame
        before it (a gap, a repeat or a step back), or a full frame older than
        what is on screen.  A full frame (after a reconnect) may restate the
        latest seq."""
        errors, cur = [], None
        for _, seq, prev, kind in self.frames:
            if cur is not None:
                if kind == "full" and seq < cur:
                    errors.append(f"full frame {seq} after {cur} (backwards)")
                elif kind != "full" and prev != cur:
                    errors.append(f"delta {prev}->{seq} after {cur} ({'gap' if prev > cur else 'repeat/backwards'})")
            cur = seq
        return errors

    def longest_silence_after(self, t0: float) -> float:
        times = [t0] + [t for t, *_ in self.frames if t > t0]
        return max(b - a for a, b in zip(times, times[1:]))


def watch_a_run(serve: Serve) -> tuple[Browser, str, Viewer]:
    browser = Browser(serve.base)
    rid = browser.open_lab("leader-election", algorithm="bully", nodes=5)
    viewer = Viewer(serve.base, rid)
    viewer.start()
    wait_until(lambda: len(viewer.frames) >= 5, 30, "the viewer got no frames")
    return browser, rid, viewer


def commands_applied(browser: Browser, rid: str) -> list[str]:
    scenario = json.loads(browser.get(f"/runs/{rid}/scenario.json"))
    return [" ".join([c["action"], *c["args"]]) for c in scenario["commands"]]


def heal_drill(serve: Serve, kind: str, within: float):
    browser, rid, viewer = watch_a_run(serve)
    try:
        victim = serve.the(kind)
        # A command given just before the crash.
        assert browser.post(f"/runs/{rid}/commands/", action="crash", args="n5") in (200, 202)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        # serve notices and starts a new one...
        wait_until(lambda: re.search(rf"pid {victim}\) exited: killed by SIGKILL.*restart #1", serve.log_lines())
                   and serve.children(kind) and victim not in serve.children(kind), 15,
                   f"serve did not restart the {kind}")
        # ...and the viewer's frames flow again.
        seq_at_kill = viewer.seq()
        wait_until(lambda: viewer.seq() > seq_at_kill and viewer.frames[-1][0] > killed_at + 0.5
                   and len([f for f in viewer.frames if f[0] > killed_at]) >= 10,
                   within + 20, "frames never flowed again")
        stall = viewer.longest_silence_after(killed_at)
        print(f"kill -9 of the {kind}: the viewer saw no frame for {stall:.1f} s at most")  # shown with -s
        assert stall < within, f"the viewer saw no frame for {stall:.1f} s; serve said:\n{serve.log_lines()}"
        assert not viewer.continuity_errors(), viewer.continuity_errors()
        # The command given before the crash is in the log and in the state.
        wait_until(lambda: "crash n5" in commands_applied(browser, rid), 10, "the command was lost")
        assert 'data-node="n5" data-status="down"' in full_state(viewer), "n5 is not down in the run's state"
        # New runs start and draw as before.
        _, _, newcomer = watch_a_run(serve)
        newcomer.stop()
    finally:
        viewer.stop()
    assert not viewer.continuity_errors(), viewer.continuity_errors()


def full_state(viewer: Viewer) -> str:
    """What a page opened now would draw: the first frame on a new socket."""
    from websockets.sync.client import connect

    with connect(viewer.url, origin=viewer.origin, open_timeout=5, max_size=None, proxy=None) as ws:
        frame = ws.recv(timeout=10)
    assert wire.head(frame)["kind"] == "full"
    return frame


# ---- the drills ------------------------------------------------------------------

def test_kill_9_of_the_worker_heals_within_5_s(serve):
    heal_drill(serve, "worker", within=5.0)


def test_kill_9_of_the_private_redis_heals_within_10_s(serve):
    heal_drill(serve, "redis", within=10.0)


def test_kill_9_of_a_daphne_restarts_it_on_the_same_socket(serve):
    browser, rid, viewer = watch_a_run(serve)
    try:
        victim, other = serve.children("daphne")
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: re.search(rf"pid {victim}\) exited: killed by SIGKILL.*restart #1", serve.log_lines())
                   and len(serve.children("daphne")) == 2, 15, "serve did not restart the daphne")
        (restarted,) = set(serve.children("daphne")) - {other}
        # The viewer carries on (reconnecting if its socket was on the dead process).
        seq = viewer.seq()
        wait_until(lambda: viewer.seq() > seq + 5, 15, "the viewer's frames stopped")
        # The restarted process serves the same port: with the other one
        # stopped, a page still loads (and a run still starts and draws).
        os.kill(other, signal.SIGSTOP)
        try:
            _, _, newcomer = watch_a_run(serve)
            newcomer.stop()
        finally:
            os.kill(other, signal.SIGCONT)
        assert restarted in serve.children("daphne")
    finally:
        viewer.stop()
    assert not viewer.continuity_errors(), viewer.continuity_errors()


def test_ctrl_c_in_a_terminal_stops_make_run_and_every_child():
    """A terminal's Ctrl-C sends SIGINT to the whole foreground process group:
    here `make`, and `serve` under it."""
    s = Serve(make=True)
    try:
        pids = descendants(s.proc.pid)
        assert {kind_of(c) for c in pids.values()} >= {"redis", "worker", "daphne"}, pids
        browser, rid, viewer = watch_a_run(s)  # a live run keeps the worker busy
        os.killpg(s.proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        s.proc.wait(SHUTDOWN_BOUND_S + 5)
        wait_until(lambda: not left_behind(s.var) and not any(_stat(p) for p in pids), SHUTDOWN_BOUND_S,
                   f"processes left behind: {left_behind(s.var)}")
        took = time.monotonic() - t0
        viewer.stop()
        assert took < SHUTDOWN_BOUND_S
    finally:
        s.cleanup()


def test_a_wedged_child_does_not_block_sigterm(serve):
    daphne = serve.children("daphne")[0]
    os.kill(daphne, signal.SIGSTOP)
    all_pids = descendants(serve.proc.pid)
    serve.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    serve.proc.wait(SHUTDOWN_BOUND_S + 5)
    wait_until(lambda: not any(_stat(p) for p in all_pids), SHUTDOWN_BOUND_S,
               f"processes left behind: {left_behind(serve.var)}")
    assert time.monotonic() - t0 < SHUTDOWN_BOUND_S
    assert not left_behind(serve.var)


def test_children_do_not_outlive_a_killed_supervisor(serve):
    pids = descendants(serve.proc.pid)
    os.kill(serve.proc.pid, signal.SIGKILL)
    serve.proc.wait()
    wait_until(lambda: not any(_stat(p) for p in pids), 5, f"orphans: {left_behind(serve.var)}")


def test_sigterm_while_starting_stops_at_once_and_a_port_in_use_is_a_clear_error():
    var = Path(tempfile.mkdtemp(prefix="pl-serve-"))
    env = {**os.environ, "PATTERN_LAB_VAR": str(var), "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}"}
    env.pop("REDIS_URL", None)
    argv = [sys.executable, "manage.py", "serve", "--port", str(free_port())]
    try:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        wait_until(lambda: (var / "serve.json").exists(), 60, "serve started no child")  # Redis is up
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=SHUTDOWN_BOUND_S)
        assert "Traceback" not in err.decode() and "stopped" in err.decode()
        wait_until(lambda: not left_behind(var), 5, f"processes left behind: {left_behind(var)}")

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            argv[-1] = str(taken.getsockname()[1])
            done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert "cannot listen on port" in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert not left_behind(var)
    finally:
        for pid in left_behind(var):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(var, ignore_errors=True)


# ---- the supervisor's rules, on tiny stand-in children -----------------------------

def _stand_in(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    stack = Stack(tmp_path, quiet=True)
    proc = stack._add(Child("worker", "stubborn", _stand_in(
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
        "time.sleep(600)")))
    wait_until(lambda: "ready" in (tmp_path / "stubborn.log").read_text(errors="replace"), 10, "no start")
    t0 = time.monotonic()
    stack.stop(grace=1.0)
    assert time.monotonic() - t0 < 4
    assert proc.returncode == -signal.SIGKILL
    assert "did not stop on SIGTERM; killing it" in (tmp_path / "supervisor.log").read_text()


def test_a_child_crashing_in_a_loop_is_restarted_with_a_growing_backoff(tmp_path):
    stack = Stack(tmp_path, quiet=True)
    stack._add(Child("worker", "crasher", _stand_in("raise SystemExit(3)")))
    steady = stack._add(Child("daphne", "steady", _stand_in("import time; time.sleep(600)")))
    log = tmp_path / "supervisor.log"
    exits = re.compile(r"crasher \(pid \d+\) exited: exit code 3 after [\d.]+ s; restart #\d+ in ([\d.]+) s")
    def crashes() -> int:
        return len(exits.findall(log.read_text())) if log.exists() else 0

    def stop_after_four_crashes():
        deadline = time.monotonic() + 30
        while crashes() < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        stack.cancel.set()

    # supervise() runs here: children die with the thread that started them.
    threading.Thread(target=stop_after_four_crashes, daemon=True).start()
    try:
        stack.supervise(poll=0.02)
        assert crashes() >= 4, "no fourth crash"
        assert steady.poll() is None and stack.child(steady).restarts == 0, "the other children keep running"
    finally:
        stack.stop(grace=1.0)
    assert [float(d) for d in exits.findall(log.read_text())][:4] == [0.5, 1.0, 2.0, 4.0], log.read_text()
