"""Start, supervise and stop the whole lab as child processes: a private Redis
(unix socket, nothing persisted) unless REDIS_URL is given, Celery workers,
and daphne.  Used by `python manage.py serve` (what `make run` calls), by the
benchmark and by the integration and browser tests, so all of them exercise
the same code path.

Supervision works like supervisord's: `Stack.supervise()` watches every
child and restarts one that exits, logging which child, its exit status and
how many restarts it has had.  A child that had been up for 10 s or more is
restarted at once (a viewer's run waits for the new worker); one that crashes
again soon after starting waits 0.5 s, then 1, 2, 4 ... up to 10 s, rather
than spinning.

Most of a Celery worker's start is importing Django, Celery and the lab code
(about 0.7 s of CPU: several seconds of wall time on a busy two-core
machine).  So that a crashed worker's runs resume within a few seconds even
then, `serve` keeps one *standby* worker process that has done its imports
and waits on its stdin; a crashed worker is replaced by promoting it (it
starts consuming within a fraction of a second), and a new standby is
started a few seconds later.  The other children keep
running.  A restarted daphne accepts on the same listening socket (which the
stack, not daphne, owns), a restarted private Redis listens on the same unix
socket path.

How children are kept from outliving us:
- Every child is the leader of its own session and process group, so the
  SIGINT a terminal sends to its foreground process group on Ctrl-C reaches
  only `serve`, which then stops the children in order (web and workers
  first, Redis last) instead of Redis dying under the others.
- `stop()` sends SIGTERM (and SIGCONT, so that a stopped child can act on
  it) to each child's process group, waits a bounded grace period, then
  SIGKILLs whatever is left.  A wedged child (stopped, or ignoring SIGTERM)
  therefore delays shutdown by at most the grace period.
- If the supervisor itself dies without running `stop()` (SIGKILL, a crash),
  the kernel kills the children: each sets PR_SET_PDEATHSIG(SIGKILL) between
  fork and exec (Linux only).  We chose this over each child polling its
  parent because it needs no code in daphne, Celery or Redis and costs
  nothing at run time.  The signal fires when the *thread* that started the
  child exits, so children are started from the main thread only.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

STABLE_AFTER = 10.0    # a child that ran this long before it exited is restarted at once
BACKOFF_FIRST = 0.5    # else it waits this long before its restart...
BACKOFF_MAX = 10.0     # ...doubling on every quick crash up to this
STOP_GRACE = 8.0       # seconds children get to exit on SIGTERM before SIGKILL
STANDBY_DELAY = 3.0    # after a promotion, wait this long before warming up the next standby

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent(parent_pid: int) -> None:  # runs in the child, between fork and exec
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Child:
    """One supervised process: how to start it, and its restart history."""

    def __init__(self, kind: str, name: str, argv: list[str], pass_fds: tuple[int, ...] = (),
                 prepare: Callable[[], None] | None = None, stdin_pipe: bool = False):
        self.kind, self.name, self.argv, self.pass_fds, self.prepare = kind, name, argv, pass_fds, prepare
        self.stdin_pipe = stdin_pipe
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.started_at = 0.0
        self.restart_at: float | None = None  # when a pending restart is due
        self.backoff = BACKOFF_FIRST
        self.supervised = True

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        """Signal the child's whole process group (it leads its own)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class Stack:
    def __init__(self, var_dir: Path, port: int = 8000, workers: int = 1, daphnes: int = 1,
                 redis_url: str | None = None, env: dict | None = None, quiet: bool = False,
                 concurrency: int = 64, log: Callable[[str], None] | None = None,
                 cancel: threading.Event | None = None, standby: bool = False, state_file: Path | None = None):
        self.var_dir = Path(var_dir)
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.workers = workers
        self.daphnes = daphnes
        self.concurrency = concurrency
        self.quiet = quiet
        self.children: list[Child] = []
        self.listener: socket.socket | None = None
        self.redis_url = redis_url
        self.env = {**os.environ, **(env or {}), "PATTERN_LAB_VAR": str(self.var_dir), "PYTHONUNBUFFERED": "1"}
        self.env.setdefault("DJANGO_SETTINGS_MODULE", "pattern_lab.settings")
        self.log = log or self._log_to_file
        self.cancel = cancel or threading.Event()  # set it to abort start() or stop supervise()
        self.hurry = False  # set while stopping: skip what is left of the grace period
        self._pid = os.getpid()
        self.standby = standby  # keep a warmed-up worker process ready to replace a crashed one
        self.state_file = state_file  # where to write which child has which pid, if anywhere

    # -- bookkeeping -----------------------------------------------------------------
    def _log_to_file(self, msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        if self.quiet:
            with open(self.var_dir / "supervisor.log", "a") as f:
                print(line, file=f)
        else:
            print(f"[serve] {line}", file=sys.stderr, flush=True)

    def _of(self, kind: str) -> list[Child]:
        return [c for c in self.children if c.kind == kind]

    @property
    def redis_proc(self) -> subprocess.Popen | None:
        return next((c.proc for c in self._of("redis")), None)

    @property
    def worker_procs(self) -> list[subprocess.Popen]:
        return [c.proc for c in self._of("worker") if c.proc]

    @property
    def daphne_procs(self) -> list[subprocess.Popen]:
        return [c.proc for c in self._of("daphne") if c.proc]

    def child(self, proc_or_pid) -> Child:
        pid = getattr(proc_or_pid, "pid", proc_or_pid)
        return next(c for c in self.children if c.pid == pid)

    def _spawn(self, child: Child) -> subprocess.Popen:
        if child.prepare:
            child.prepare()
        out = open(self.var_dir / f"{child.name}.log", "ab") if self.quiet else None
        try:
            child.proc = subprocess.Popen(
                child.argv, cwd=BASE_DIR, env=self.env, stdout=out,
                stdin=subprocess.PIPE if child.stdin_pipe else subprocess.DEVNULL,
                stderr=subprocess.STDOUT if out else None, pass_fds=child.pass_fds,
                start_new_session=True, preexec_fn=functools.partial(_die_with_parent, self._pid))
        finally:
            if out:
                out.close()
        child.started_at = time.monotonic()
        child.restart_at = None
        self.write_state()
        return child.proc

    def write_state(self) -> None:
        """var/serve.json: the supervisor's pid and each child's name, kind and pid."""
        if self.state_file is None:
            return
        state = {"supervisor": os.getpid(), "port": self.port, "redis_url": self.redis_url,
                 "children": [{"name": c.name, "kind": c.kind, "pid": c.pid, "restarts": c.restarts}
                              for c in self.children if c.alive()]}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.state_file)

    def _add(self, child: Child) -> subprocess.Popen:
        self.children.append(child)
        return self._spawn(child)

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise StackError("interrupted while starting")

    # -- pieces -------------------------------------------------------------------
    def start_redis(self) -> None:
        if self.redis_url:
            self.env["REDIS_URL"] = self.redis_url
            return
        binary = shutil.which("redis-server")
        if not binary:
            raise StackError("redis-server is not installed (make run installs it; or set REDIS_URL)")
        sock = self.var_dir / "redis.sock"

        def remove_stale_socket():
            sock.unlink(missing_ok=True)

        proc = self._add(Child("redis", "redis", [
            binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
            "--save", "", "--appendonly", "no", "--dir", str(self.var_dir), "--loglevel", "warning"],
            prepare=remove_stale_socket))
        self.redis_url = self.env["REDIS_URL"] = f"unix://{sock}"
        deadline = time.monotonic() + 10
        while not sock.exists():
            self._check_cancel()
            if proc.poll() is not None or time.monotonic() > deadline:
                raise StackError("the private redis-server did not start")
            time.sleep(0.02)

    def migrate(self) -> None:
        proc = subprocess.Popen([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=BASE_DIR,
                                env=self.env)
        while proc.poll() is None:
            if self.cancel.wait(0.1):
                proc.terminate()
                proc.wait()
                self._check_cancel()
        if proc.returncode:
            raise StackError(f"manage.py migrate failed ({describe_exit(proc.returncode)})")

    def start_worker(self, name: str | None = None) -> subprocess.Popen:
        name = name or f"w{len(self._of('worker')) + 1}"
        return self._add(Child("worker", f"celery-{name}", [
            sys.executable, "-m", "celery", "-A", "pattern_lab", "worker", "--pool", "threads",
            "--concurrency", str(self.concurrency), "--loglevel", "INFO", "-n", f"{name}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]))

    def start_daphne(self) -> subprocess.Popen:
        """One more daphne process accepting on the stack's listening socket.
        Several of them share it (the kernel spreads the connections over
        them: several cores behind one port, no balancer), and one that is
        restarted picks up where the old one left: connections that arrive
        meanwhile wait in the socket's backlog instead of being refused."""
        listener = self.listener or self.listen(self.port)
        fd = listener.fileno()
        return self._add(Child("daphne", f"daphne-{self.port}-{len(self._of('daphne')) + 1}", [
            sys.executable, "-m", "daphne", "--fd", str(fd),
            "--websocket_timeout", "-1", "--proxy-headers", "pattern_lab.asgi:application"], pass_fds=(fd,)))

    def listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            sock.close()
            raise StackError(f"cannot listen on port {port} ({err.strerror}); pick another with PORT=8080 make run "
                             "or serve --port 8080") from None
        sock.listen(1024)
        sock.set_inheritable(True)
        self.listener = sock
        return sock

    def wait_http(self, port: int | None = None, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_cancel()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port or self.port}/", timeout=2).read()
                return
            except Exception:
                if time.monotonic() > deadline or not any(p.poll() is None for p in self.daphne_procs):
                    raise StackError(f"daphne did not answer on port {port or self.port}") from None
                time.sleep(0.1)

    def wait_workers(self, timeout: float = 30) -> None:
        """Until every worker answers a ping (so a queued run starts at once)."""
        from celery import Celery

        url = self.redis_url
        app = Celery(broker="redis+socket://" + url[len("unix://"):] if url.startswith("unix://") else url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self._check_cancel()
                replies = app.control.ping(timeout=0.5) or []
                if len(replies) >= len([p for p in self.worker_procs if p.poll() is None]):
                    return
            raise StackError("the Celery workers did not come up")
        finally:
            app.close()

    def lock(self) -> None:
        """One stack per var directory: a second one would share (and, when
        it stops, delete) the first one's Redis socket."""
        self._lock = open(self.var_dir / "stack.lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StackError(f"another Pattern Lab is already running from {self.var_dir}; stop it first "
                             "(or give this one its own folder with PATTERN_LAB_VAR)") from None

    # -- all together --------------------------------------------------------------
    def start(self) -> Stack:
        self.lock()
        try:
            self.listen(self.port)  # first: a port in use is the likeliest failure
            self.start_redis()
            self.migrate()
            for _ in range(self.workers):
                self.start_worker()
            for _ in range(self.daphnes):
                self.start_daphne()
            self.wait_http()
            self.wait_workers()
            if self.standby and self.workers:
                self._add(Child("standby", "celery-standby", [
                    sys.executable, "-m", "pattern_lab.stack", "standby-worker"], stdin_pipe=True))
        except BaseException:
            self.stop()
            raise
        return self

    # -- supervision -----------------------------------------------------------------
    def supervise_once(self) -> None:
        """Notice children that exited and (re)start those whose backoff is over."""
        now = time.monotonic()
        for c in self.children:
            if not c.supervised:
                continue
            if c.restart_at is None:
                if c.proc is None or c.proc.poll() is None:
                    continue
                if now - c.started_at >= STABLE_AFTER:  # it had been up a while: restart it at once
                    delay, c.backoff = 0.0, BACKOFF_FIRST
                else:  # it crashed soon after its last start: wait, longer every time
                    delay, c.backoff = c.backoff, min(c.backoff * 2, BACKOFF_MAX)
                c.restart_at = now + delay
                self.log(f"{c.name} (pid {c.pid}) exited: {describe_exit(c.proc.returncode)} after "
                         f"{now - c.started_at:.1f} s; restart #{c.restarts + 1} in {delay:.1f} s")
                self.write_state()
            elif now >= c.restart_at:
                c.restarts += 1
                if c.kind == "worker" and self._promote_standby(c):
                    continue
                try:
                    self._spawn(c)
                except OSError as err:
                    delay, c.backoff = c.backoff, min(c.backoff * 2, BACKOFF_MAX)
                    c.restart_at = now + delay
                    self.log(f"{c.name} could not be started ({err}); retrying in {delay:.1f} s")
                    continue
                if c.kind == "standby" and c.restarts == 1:
                    self.log(f"{c.name}: a new standby worker is warming up (pid {c.pid})")
                else:
                    self.log(f"{c.name} restarted (pid {c.pid}, restart #{c.restarts})")

    def _promote_standby(self, worker: Child) -> bool:
        """Replace a crashed worker by the warmed-up standby process, if there is one."""
        standby = next((c for c in self._of("standby") if c.alive() and c.restart_at is None), None)
        if standby is None:
            return False
        try:
            standby.proc.stdin.write((json.dumps(worker.argv[3:]) + "\n").encode())  # celery's arguments
            standby.proc.stdin.close()
        except OSError:
            return False
        worker.proc, worker.started_at, worker.restart_at = standby.proc, time.monotonic(), None
        standby.proc, standby.restart_at, standby.restarts = None, time.monotonic() + STANDBY_DELAY, 0
        self.log(f"{worker.name} restarted (pid {worker.pid}, restart #{worker.restarts}: the standby worker)")
        self.write_state()
        return True

    def supervise(self, poll: float = 0.2) -> None:
        """Keep every child running until `self.cancel` is set.  Call it from
        the thread that started the stack: a child dies with the thread that
        started it (PR_SET_PDEATHSIG), so restarts must come from a thread
        that lives as long as the stack."""
        while not self.cancel.is_set():
            self.supervise_once()
            self.cancel.wait(poll)

    def respawn(self, proc: subprocess.Popen) -> subprocess.Popen:
        """Start a child that exited again at once (what supervise() does after
        its backoff), e.g. a daphne a test killed."""
        c = self.child(proc)
        c.proc.wait()
        c.restarts += 1
        return self._spawn(c)

    def retire(self, proc: subprocess.Popen) -> None:
        """Stop supervising (and stop) one child, e.g. a worker no longer wanted."""
        c = self.child(proc)
        c.supervised = False
        self._terminate([c], STOP_GRACE)
        self.children.remove(c)

    def _terminate(self, children: list[Child], grace: float) -> None:
        """SIGTERM each child's group, wait up to `grace` seconds, SIGKILL the rest."""
        for c in children:
            c.signal_group(signal.SIGTERM)
            c.signal_group(signal.SIGCONT)  # a stopped (SIGSTOP) child must run to act on SIGTERM
        deadline = time.monotonic() + grace
        while any(c.alive() for c in children) and time.monotonic() < deadline and not self.hurry:
            time.sleep(0.05)
        for c in children:
            if c.alive():
                self.log(f"{c.name} (pid {c.pid}) did not stop on SIGTERM; killing it")
                c.signal_group(signal.SIGKILL)
        for c in children:
            if c.proc is not None:
                try:
                    c.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:  # stuck in the kernel; nothing more we can do
                    self.log(f"{c.name} (pid {c.pid}) is still there after SIGKILL")

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop every child: web and workers first (a worker hands its runs back
        through Redis), then Redis.  Bounded by about `grace` + 3 seconds
        whatever the children do."""
        self.cancel.set()
        for c in self.children:
            c.supervised = False
        self._terminate([c for c in self.children if c.kind != "redis"], grace)
        self._terminate(self._of("redis"), min(grace, 3.0))
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if getattr(self, "_lock", None):
            self._lock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def standby_worker() -> None:
    """`python -m pattern_lab.stack standby-worker`: import everything a Celery
    worker needs, then wait for the supervisor to write the worker's arguments
    (one JSON line) on stdin and become that worker.  Exits if stdin closes
    first (the supervisor is stopping)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pattern_lab.settings")
    import django

    django.setup()
    import celery.__main__
    import celery.apps.worker  # noqa: F401
    import celery.concurrency.thread  # noqa: F401
    import celery.worker.consumer  # noqa: F401

    from pattern_lab.celery import app

    app.loader.import_default_modules()  # the tasks, and what they import
    line = sys.stdin.readline()
    if not line.strip():
        sys.exit(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    sys.argv = ["celery", *json.loads(line)]
    celery.__main__.main()


if __name__ == "__main__" and sys.argv[1:] == ["standby-worker"]:
    standby_worker()
