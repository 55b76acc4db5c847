"""The beat's sweeps (see smsqueue.sweeps)."""

from __future__ import annotations

from collections.abc import Iterable

from smsqueue import metrics, sweeps
from smsqueue.clock import now
from smsqueue.messages import Followups
from smsqueue.queues import Tasks
from smsqueue.tasks.celery_app import app
from smsqueue.tasks.doorbell import broker_lost_doorbells, ring_followups


def _ring_each(batches: Iterable[Followups]) -> int:
    """Ring each committed batch's follow-ups as it comes; how many rows the sweep took."""
    total = 0
    for followups in batches:
        ring_followups(followups)
        total += followups.count
    return total


@app.task(name=Tasks.DISPATCH_SCHEDULED, ignore_result=True)
def dispatch_scheduled() -> int:
    return _ring_each(sweeps.dispatch_scheduled())


@app.task(name=Tasks.REPUBLISH_LOST, ignore_result=True)
def republish_lost() -> int:
    """Ring the queued messages whose `ring_at` has come; first, if the broker lost doorbells (restarted
    empty, or a publisher could not ring), every due one at once rather than after the grace period."""
    if broker_lost_doorbells():
        sweeps.ring_again_when_due(now())
    return _ring_each(sweeps.republish_lost())


@app.task(name=Tasks.RECONCILE_SENDING, ignore_result=True)
def reconcile_sending() -> int:
    done = _ring_each(sweeps.reconcile_sending())
    metrics.flush()
    return done


@app.task(name=Tasks.PURGE_MESSAGES, ignore_result=True)
def purge_messages() -> int:
    """Retention: delete final messages past their entity's retention_days, in small batches."""
    from smsqueue import retention
    from smsqueue.config import settings

    s = settings()
    return retention.purge(batch=s.purge_batch, budget_seconds=s.purge_interval * 0.8, pause=s.purge_pause)


@app.task(name=Tasks.PURGE_COUNTERS, ignore_result=True)
def purge_counters() -> int:
    """Counter rows of 230-FZ periods long over: never read again (a few days' margin for time zones)."""
    from datetime import timedelta

    from smsqueue.db import transaction
    from smsqueue.rules import limits

    with transaction() as conn:
        return limits.purge(conn, (now() - timedelta(days=3)).date())
