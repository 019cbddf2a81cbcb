"""python manage.py serve: the whole lab from one command (what `make run` calls)."""

import os
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from pattern_lab.stack import Stack


class Command(BaseCommand):
    help = "Start a private Redis (unless REDIS_URL is set), Celery workers and daphne; Ctrl-C stops them all."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
        parser.add_argument("--daphnes", type=int, default=min(2, os.cpu_count() or 1),
                            help="daphne processes, all serving the one port (default: up to 2, one per core)")

    def handle(self, *args, port, workers, daphnes, **opts):
        redis_url = os.environ.get("REDIS_URL")  # external Redis for scale-out; else a private one
        stack = Stack(settings.VAR_DIR, port=port, workers=workers, daphnes=daphnes, redis_url=redis_url)
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
        try:
            stack.start()
            self.stdout.write(self.style.SUCCESS(
                f"Pattern Lab is running at http://127.0.0.1:{port} ({daphnes} daphne, {workers} worker; "
                "Ctrl-C stops everything)"))
            while not stopping:
                for proc in [*stack.worker_procs, *stack.daphne_procs]:
                    if proc.poll() is not None:
                        raise SystemExit(f"a child process exited ({proc.args[2:5]}); stopping")
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stdout.write("Stopping…")
            stack.stop()
