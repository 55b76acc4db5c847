"""Processing of delivery reports pushed by providers: the callback endpoint answers the provider at once
and hands the parsed reports here (queue `status`). See smsqueue.reports for the matching."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from smsqueue import reports
from smsqueue.db import transaction
from smsqueue.models import Provider
from smsqueue.queues import Tasks
from smsqueue.tasks.celery_app import app

log = logging.getLogger(__name__)


@app.task(
    name=Tasks.PROCESS_REPORTS,
    ignore_result=True,
    # The database unreachable for a moment must not lose a report the provider will not send again.
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=20,
)
def process_reports(provider_id: int, items: list[dict[str, Any]]) -> int:
    """Apply one callback's reports. Carries the provider's row id and plain report fields only."""
    return process(provider_id, items).applied


def process(provider_id: int, items: list[dict[str, Any]]) -> reports.ReportCounts:
    p = Provider.__table__.c
    with transaction() as conn:
        row = conn.execute(select(p.code, p.kind).where(p.id == provider_id)).first()
    if row is None:
        log.info("reports for provider %s dropped: the provider is gone", provider_id)
        return reports.ReportCounts(ignored=len(items))
    counts = reports.apply_reports(provider_id, row.kind, [reports.ReportItem.from_json(x) for x in items])
    log.info(
        "reports from %s: %d applied, %d unchanged, %d kept for their send, %d ignored",
        row.code,
        counts.applied,
        counts.unchanged,
        counts.kept,
        counts.ignored,
    )
    return counts
