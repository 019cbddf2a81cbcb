import logging

from celery import shared_task
from celery.signals import worker_shutting_down

from . import actor

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def drive_run(run_id: str) -> None:
    """Hand the run to this worker process's scheduler (see actor.py) and
    return: the message only says "somebody should drive run X"."""
    outcome = actor.scheduler().take(run_id)
    log.debug("run %s: %s", run_id, outcome)


@worker_shutting_down.connect
def hand_back_runs(**kwargs) -> None:
    actor.shutdown()
