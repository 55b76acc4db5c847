"""The beat's sweeps (see smsqueue.sweeps)."""

from __future__ import annotations

from smsqueue import metrics, sweeps
from smsqueue.tasks.celery_app import app


@app.task(name="smsqueue.dispatch_scheduled", ignore_result=True)
def dispatch_scheduled() -> int:
    return sweeps.dispatch_scheduled()


@app.task(name="smsqueue.republish_lost", ignore_result=True)
def republish_lost() -> int:
    return sweeps.republish_lost()


@app.task(name="smsqueue.reconcile_sending", ignore_result=True)
def reconcile_sending() -> int:
    done = sweeps.reconcile_sending()
    metrics.flush()
    return done


@app.task(name="smsqueue.purge_counters", ignore_result=True)
def purge_counters() -> int:
    """Counter rows of 230-FZ periods long over: never read again (a few days' margin for time zones)."""
    from datetime import timedelta

    from smsqueue.clock import now
    from smsqueue.db import transaction
    from smsqueue.rules import limits

    with transaction() as conn:
        return limits.purge(conn, (now() - timedelta(days=3)).date())
