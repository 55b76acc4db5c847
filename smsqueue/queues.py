"""Queue and task names and task routes: the one place they are named. celeryconfig.py (routes, beat
schedule), every `@app.task(name=...)` and every publish by name follow it; a test checks that every
registered task has a route and that the Procfile's workers consume every routed queue."""

from __future__ import annotations


class Queues:
    SEND = "send"  # send_messages: claim, rules, provider call
    STATUS = "status"  # status polling and delivery-report processing
    WEBHOOKS = "webhooks"  # status webhooks to callers' services: a slow receiver never delays sending
    PERIODIC = "periodic"  # the beat's sweeps
    JOBS = "jobs"  # CSV jobs: a long file never holds up sending

    ALL: tuple[str, ...] = (SEND, STATUS, WEBHOOKS, PERIODIC, JOBS)


class Tasks:
    """Celery task names. Tasks are published by these names only (never by importing the task)."""

    SEND_MESSAGES = "smsqueue.send_messages"
    POLL_STATUSES = "smsqueue.poll_statuses"
    PROCESS_REPORTS = "smsqueue.process_reports"
    DRAIN_STATUS_QUEUES = "smsqueue.drain_status_queues"  # providers' status queues (IQSMS)
    DISPATCH_SCHEDULED = "smsqueue.dispatch_scheduled"
    REPUBLISH_LOST = "smsqueue.republish_lost"
    RECONCILE_SENDING = "smsqueue.reconcile_sending"
    PURGE_COUNTERS = "smsqueue.purge_counters"
    PURGE_MESSAGES = "smsqueue.purge_messages"  # retention: final messages past retention_days
    RUN_JOB = "smsqueue.run_job"
    RESUME_JOBS = "smsqueue.resume_jobs"


class WebhookTasks:
    """The status webhooks' task names (smsqueue.tasks.webhooks)."""

    DELIVER = "smsqueue.deliver_webhooks"
    SWEEP = "smsqueue.sweep_webhooks"


# task name -> queue
ROUTES: dict[str, str] = {
    Tasks.SEND_MESSAGES: Queues.SEND,
    Tasks.POLL_STATUSES: Queues.STATUS,
    Tasks.PROCESS_REPORTS: Queues.STATUS,
    Tasks.DRAIN_STATUS_QUEUES: Queues.STATUS,
    Tasks.DISPATCH_SCHEDULED: Queues.PERIODIC,
    Tasks.REPUBLISH_LOST: Queues.PERIODIC,
    Tasks.RECONCILE_SENDING: Queues.PERIODIC,
    Tasks.PURGE_COUNTERS: Queues.PERIODIC,
    Tasks.PURGE_MESSAGES: Queues.PERIODIC,
    Tasks.RUN_JOB: Queues.JOBS,
    Tasks.RESUME_JOBS: Queues.PERIODIC,
    WebhookTasks.DELIVER: Queues.WEBHOOKS,
    WebhookTasks.SWEEP: Queues.PERIODIC,
}
