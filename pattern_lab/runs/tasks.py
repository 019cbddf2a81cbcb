from celery import shared_task

from .actor import Actor


@shared_task(ignore_result=True)
def drive_run(run_id: str) -> None:
    """Drive one live run until nobody watches it (see actor.py)."""
    Actor(run_id).run()
