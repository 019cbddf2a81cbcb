from celery import shared_task
from celery.signals import worker_shutting_down

from .actor import SHUTDOWN, Actor


@shared_task(ignore_result=True)
def drive_run(run_id: str) -> None:
    """Drive one live run until nobody watches it (see actor.py)."""
    Actor(run_id).run()


@worker_shutting_down.connect
def hand_back_runs(**kwargs) -> None:
    SHUTDOWN.set()
