"""The send task: a doorbell. It claims every due message, oldest due first, in batches (the rows say
what to do); the message ids it may carry (rung by a sweep or a countdown for those) are only a hint."""

from __future__ import annotations

import time

from smsqueue import metrics, sending
from smsqueue.queues import Tasks
from smsqueue.tasks.celery_app import app
from smsqueue.tasks.doorbell import answer_doorbell, ring_again, ring_followups

# A task that keeps finding full batches hands over after this long (and rings for the rest), so that
# it ends well inside Celery's time limit and other tasks of the queue get their turn.
SEND_BUDGET = 20.0


@app.task(name=Tasks.SEND_MESSAGES, ignore_result=True)
def send_messages(pks: list[int] | None = None) -> None:
    del pks  # the claim is by query: whatever is due, these among them
    answer_doorbell()
    started = time.monotonic()
    while True:
        limit = sending.claim_size()
        followups = sending.process_due(limit)
        ring_followups(followups)
        if followups.count < limit:
            break
        if time.monotonic() - started > SEND_BUDGET:
            ring_again()
            break
    metrics.flush()
