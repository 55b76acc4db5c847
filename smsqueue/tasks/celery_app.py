"""The Celery app. Run workers with `celery -A smsqueue.tasks.celery_app worker -Q <queues>`."""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import (
    after_setup_logger,
    beat_init,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
)

from smsqueue.logs import configure_logging, request_id_var
from smsqueue.startup import check_or_exit
from smsqueue.tasks.kombu_fixes import patch_filesystem_put, patch_reconnect_backoff, patch_redis_channel

patch_redis_channel()
patch_filesystem_put()
patch_reconnect_backoff()

app = Celery(
    "smsqueue",
    include=[
        "smsqueue.tasks.send",
        "smsqueue.tasks.status",
        "smsqueue.tasks.sweep",
        "smsqueue.tasks.reports",
        "smsqueue.tasks.webhooks",
        "smsqueue.tasks.jobs",
    ],
)
app.config_from_object("celeryconfig")


@worker_process_init.connect
def _on_worker_process_init(**_: object) -> None:
    # Each pool process opens its own database connections (db.get_engine checks the pid).
    configure_logging()
    logging.getLogger(__name__).debug("worker process ready")


@worker_init.connect
def _on_worker_init(**_: object) -> None:
    check_or_exit("worker")


@beat_init.connect
def _on_beat_init(**_: object) -> None:
    check_or_exit("beat")


@after_setup_logger.connect
def _on_setup_logger(**_: object) -> None:
    configure_logging()  # Celery's own handlers get the secret filter, the request id and JSON lines


@task_prerun.connect
def _on_task_prerun(task: object = None, **_: object) -> None:
    # The id of the HTTP request whose messages this task sends (a header of the task), if any.
    request_id_var.set(getattr(getattr(task, "request", None), "request_id", None))


@task_postrun.connect
def _on_task_postrun(**_: object) -> None:
    request_id_var.set(None)
