"""Status polling of sent messages."""

from __future__ import annotations

from smsqueue import polling
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
