"""The send task: a doorbell carrying message ids; the rows say what to do."""

from __future__ import annotations

from smsqueue import metrics, sending
from smsqueue.tasks.celery_app import app
from smsqueue.tasks.doorbell import ring_later


@app.task(name="smsqueue.send_messages", ignore_result=True)
def send_messages(pks: list[int]) -> None:
    followups = sending.process(pks)
    ring_later(followups.later)
    metrics.flush()
