"""Status webhooks to callers' services (see smsqueue.webhooks): the sweep claims due events from the
outbox on the `periodic` queue; delivery tasks POST them on the `webhooks` queue, so that a slow
receiver occupies webhook workers only, never senders."""

from __future__ import annotations

from smsqueue import webhooks
from smsqueue.queues import WebhookTasks
from smsqueue.tasks.celery_app import app


@app.task(name=WebhookTasks.SWEEP, ignore_result=True)
def sweep_webhooks() -> int:
    return webhooks.sweep()


@app.task(name=WebhookTasks.DELIVER, ignore_result=True)
def deliver_webhooks(attempt_ids: list[int]) -> int:
    return webhooks.deliver(attempt_ids)
