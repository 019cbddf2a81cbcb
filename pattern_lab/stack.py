"""Start and stop the whole lab as child processes: a private Redis (unix
socket, nothing persisted) unless REDIS_URL is given, Celery workers, and
daphne.  Used by `python manage.py serve` (what `make run` calls) and by the
integration and browser tests, so both exercise the same code path."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, var_dir: Path, port: int = 8000, workers: int = 1, daphnes: int = 1,
                 redis_url: str | None = None, env: dict | None = None, quiet: bool = False,
                 concurrency: int = 64):
        self.var_dir = Path(var_dir)
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.workers = workers
        self.daphnes = daphnes
        self.concurrency = concurrency
        self.quiet = quiet
        self.redis_proc: subprocess.Popen | None = None
        self.worker_procs: list[subprocess.Popen] = []
        self.daphne_procs: list[subprocess.Popen] = []
        self.redis_url = redis_url
        self.env = {**os.environ, **(env or {}), "PATTERN_LAB_VAR": str(self.var_dir), "PYTHONUNBUFFERED": "1"}
        self.env.setdefault("DJANGO_SETTINGS_MODULE", "pattern_lab.settings")

    # -- pieces -------------------------------------------------------------------
    def _out(self, name: str):
        if self.quiet:
            return open(self.var_dir / f"{name}.log", "ab")
        return None

    def start_redis(self) -> None:
        if self.redis_url:
            self.env["REDIS_URL"] = self.redis_url
            return
        binary = shutil.which("redis-server")
        if not binary:
            raise StackError("redis-server is not installed (make run installs it; or set REDIS_URL)")
        sock = self.var_dir / "redis.sock"
        if sock.exists():
            sock.unlink()
        self.redis_proc = subprocess.Popen(
            [binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(self.var_dir), "--loglevel", "warning"],
            stdout=self._out("redis"), stderr=subprocess.STDOUT)
        self.redis_url = self.env["REDIS_URL"] = f"unix://{sock}"
        deadline = time.monotonic() + 10
        while not sock.exists():
            if self.redis_proc.poll() is not None or time.monotonic() > deadline:
                raise StackError("the private redis-server did not start")
            time.sleep(0.02)

    def migrate(self) -> None:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=BASE_DIR,
                       env=self.env, check=True)

    def start_worker(self, name: str | None = None) -> subprocess.Popen:
        name = name or f"w{len(self.worker_procs) + 1}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "pattern_lab", "worker", "--pool", "threads",
             "--concurrency", str(self.concurrency), "--loglevel", "INFO", "-n", f"{name}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=BASE_DIR, env=self.env, stdout=self._out(f"celery-{name}"), stderr=subprocess.STDOUT,
            start_new_session=True)
        self.worker_procs.append(proc)
        return proc

    def start_daphne(self, port: int, listener: socket.socket | None = None) -> subprocess.Popen:
        """One daphne process on `port`, or, given a listening socket, one more
        process accepting from that same socket (the kernel spreads the
        connections over them: several cores behind one port, no balancer)."""
        where = ["--fd", str(listener.fileno())] if listener else ["-b", "127.0.0.1", "-p", str(port)]
        name = f"daphne-{port}-{len(self.daphne_procs) + 1}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", *where,
             "--websocket_timeout", "-1", "--proxy-headers", "pattern_lab.asgi:application"],
            cwd=BASE_DIR, env=self.env, stdout=self._out(name), stderr=subprocess.STDOUT,
            start_new_session=True, pass_fds=[listener.fileno()] if listener else ())
        self.daphne_procs.append(proc)
        return proc

    def listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1024)
        sock.set_inheritable(True)
        self.listener = sock
        return sock

    def wait_http(self, port: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                return
            except Exception:
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.daphne_procs):
                    raise StackError(f"daphne did not answer on port {port}") from None
                time.sleep(0.1)

    def wait_workers(self, timeout: float = 30) -> None:
        """Until every worker answers a ping (so a queued run starts at once)."""
        from celery import Celery

        url = self.redis_url
        app = Celery(broker="redis+socket://" + url[len("unix://"):] if url.startswith("unix://") else url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
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
            self.start_redis()
            self.migrate()
            for _ in range(self.workers):
                self.start_worker()
            if self.daphnes == 1:
                self.start_daphne(self.port)
            else:  # several processes share one listening socket
                listener = self.listen(self.port)
                for _ in range(self.daphnes):
                    self.start_daphne(self.port, listener)
            self.wait_http(self.port)
            self.wait_workers()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        procs = [*self.daphne_procs, *self.worker_procs]
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 8
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if self.redis_proc and self.redis_proc.poll() is None:
            self.redis_proc.terminate()
            self.redis_proc.wait(timeout=5)
        if getattr(self, "listener", None):
            self.listener.close()
        if getattr(self, "_lock", None):
            self._lock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
