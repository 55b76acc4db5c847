"""Status webhooks to callers' services (see smsqueue.webhooks): the sweep claims due events from the
outbox on the `periodic` queue; delivery tasks POST them on the `webhooks` queue, so that a slow
receiver occupies webhook workers only, never senders. The sweep publishes what the outbox hands it."""

from __future__ import annotations

import logging

from smsqueue.queues import Queues, WebhookTasks
from smsqueue.tasks.celery_app import app
from smsqueue.webhooks import delivery, outbox

log = logging.getLogger(__name__)


@app.task(name=WebhookTasks.SWEEP, ignore_result=True)
def sweep_webhooks() -> int:
    """Publish one delivery task per receiver's batch of claims; the number of events claimed."""
    claimed = 0
    for origin, attempt_ids in outbox.deliveries_due():
        claimed += len(attempt_ids)
        publish_delivery(origin, attempt_ids)
    return claimed


def publish_delivery(origin: str, attempt_ids: list[int]) -> None:
    """Publish a delivery task; if the broker cannot take it, give its claims back (due at once)."""
    try:
        app.send_task(
            WebhookTasks.DELIVER,
            (attempt_ids,),
            queue=Queues.WEBHOOKS,
            routing_key=Queues.WEBHOOKS,
            retry=False,
            ignore_result=True,
        )
    except Exception as exc:
        log.warning(
            "could not publish %d webhook(s) for %s: %s", len(attempt_ids), origin, type(exc).__name__
        )
        try:
            outbox.release_claims(attempt_ids)
        except Exception:
            log.exception("could not release webhook claims; their lease will expire")


@app.task(name=WebhookTasks.DELIVER, ignore_result=True)
def deliver_webhooks(attempt_ids: list[int]) -> int:
    return delivery.deliver(attempt_ids)
