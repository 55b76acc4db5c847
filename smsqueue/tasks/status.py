"""Status polling of sent messages, and the draining of providers' status queues."""

from __future__ import annotations

from smsqueue import polling, status_queues
from smsqueue.queues import Tasks
from smsqueue.tasks.celery_app import app


@app.task(name=Tasks.POLL_STATUSES, ignore_result=True)
def poll_statuses() -> int:
    total = 0
    while True:
        done = polling.poll_due()
        total += done
        if done < polling.BATCH:
            return total


@app.task(name=Tasks.DRAIN_STATUS_QUEUES, ignore_result=True)
def drain_status_queues() -> int:
    return status_queues.drain_all()
