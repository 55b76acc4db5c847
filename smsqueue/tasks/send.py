"""The send task: a doorbell. It sends the due ones among the ids it carries (a sweep's or a countdown's
ring for those), then claims every other due message, oldest due first, in batches, until a claim finds
less than a full batch (the requests' doorbell carries no ids: one rings for them all)."""

from __future__ import annotations

import logging
import time

from smsqueue import metrics, sending
from smsqueue.queues import Tasks
from smsqueue.tasks.celery_app import app
from smsqueue.tasks.doorbell import answer_doorbell, ring_again, ring_followups

# A task that keeps finding full batches hands over after this long (and rings for the rest), so that
# it ends well inside Celery's time limit and other tasks of the queue get their turn.
SEND_BUDGET = 20.0

log = logging.getLogger(__name__)


@app.task(name=Tasks.SEND_MESSAGES, ignore_result=True)
def send_messages(pks: list[int] | None = None) -> None:
    answer_doorbell()
    if pks:
        log.info("sending %d message(s): %s", len(pks), pks[:20])
        ring_followups(sending.process(pks))
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
