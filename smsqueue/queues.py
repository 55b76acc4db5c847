"""Queue names and task routes: the one place they are named. celeryconfig.py and the Procfile follow it;
a test checks that the Procfile's workers consume every queue."""

from __future__ import annotations


class Queues:
    SEND = "send"  # send_messages: claim, rules, provider call
    STATUS = "status"  # status polling and delivery-report processing
    WEBHOOKS = "webhooks"  # status webhooks to callers' services: a slow receiver never delays sending
    PERIODIC = "periodic"  # the beat's sweeps

    ALL: tuple[str, ...] = (SEND, STATUS, WEBHOOKS, PERIODIC)


# task name -> queue
ROUTES: dict[str, str] = {
    "smsqueue.send_messages": Queues.SEND,
    "smsqueue.poll_statuses": Queues.STATUS,
    "smsqueue.process_reports": Queues.STATUS,
    "smsqueue.deliver_webhooks": Queues.WEBHOOKS,
    "smsqueue.sweep_webhooks": Queues.PERIODIC,
    "smsqueue.dispatch_scheduled": Queues.PERIODIC,
    "smsqueue.republish_lost": Queues.PERIODIC,
    "smsqueue.reconcile_sending": Queues.PERIODIC,
    "smsqueue.purge_counters": Queues.PERIODIC,
}


# --- webhook task names (smsqueue.tasks.webhooks) --------------------------------------------------------
SWEEP_WEBHOOKS = "smsqueue.sweep_webhooks"
DELIVER_WEBHOOKS = "smsqueue.deliver_webhooks"
