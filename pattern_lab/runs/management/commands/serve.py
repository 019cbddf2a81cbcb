"""python manage.py serve: the whole lab from one command (what `make run` calls).

It is a supervisor: it starts a private Redis (unless REDIS_URL is set),
Celery workers and daphne as children, restarts any child that dies (with a
backoff, logged; a crashed worker is replaced by a warmed-up standby), writes
which child has which pid to var/serve.json, and on Ctrl-C, SIGTERM or SIGHUP stops them all, killing
those that do not stop within a few seconds.  A second Ctrl-C skips the
wait.  See pattern_lab/stack.py for how children are kept from outliving it."""

import os
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from pattern_lab.stack import Stack, StackError


class Command(BaseCommand):
    help = ("Start a private Redis (unless REDIS_URL is set), Celery workers and daphne, and keep them "
            "running (a crashed one is restarted); Ctrl-C stops them all.")

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
        parser.add_argument("--daphnes", type=int, default=min(2, os.cpu_count() or 1),
                            help="daphne processes, all serving the one port (default: up to 2, one per core)")

    def handle(self, *args, port, workers, daphnes, **opts):
        redis_url = os.environ.get("REDIS_URL")  # external Redis for scale-out; else a private one
        stop = threading.Event()
        stack = Stack(settings.VAR_DIR, port=port, workers=workers, daphnes=daphnes, redis_url=redis_url,
                      cancel=stop, log=self.log, standby=True, state_file=settings.VAR_DIR / "serve.json")

        signalled = []

        def on_signal(signum, _frame):
            if signalled:  # asked twice: do not wait for the children any longer
                stack.hurry = True
                return
            signalled.append(signum)
            self.log(f"{signal.Signals(signum).name}: stopping every child")
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, on_signal)
        try:
            stack.start()
            self.stdout.write(self.style.SUCCESS(
                f"Pattern Lab is running at http://127.0.0.1:{port} ({daphnes} daphne, {workers} worker; "
                "Ctrl-C stops everything)"), ending="\n")
            self.stdout.flush()
            self.log("children: " + ", ".join(f"{c.name} pid {c.pid}" for c in stack.children))
            stack.supervise()
        except StackError as err:
            if not signalled:  # (interrupted while starting: not an error)
                raise CommandError(str(err)) from None
        finally:
            self.log("stopping…")
            stack.stop()
            self.log("stopped")

    def log(self, msg: str) -> None:
        from time import strftime

        self.stderr.write(f"[serve {strftime('%H:%M:%S')}] {msg}")
        self.stderr.flush()
