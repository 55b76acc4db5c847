"""The send task: a doorbell carrying message ids; the rows say what to do."""

from __future__ import annotations

import logging

from smsqueue import metrics, sending
from smsqueue.queues import Tasks
from smsqueue.tasks.celery_app import app
from smsqueue.tasks.doorbell import ring_followups

log = logging.getLogger(__name__)


@app.task(name=Tasks.SEND_MESSAGES, ignore_result=True)
def send_messages(pks: list[int]) -> None:
    log.info("sending %d message(s): %s", len(pks), pks[:20])
    ring_followups(sending.process(pks))
    metrics.flush()
