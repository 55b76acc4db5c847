"""Providers whose statuses wait in a queue at the provider (IQSMS's `statusQueue.json`): the beat drains
each such provider's queue in batches and applies what it finds as delivery reports (smsqueue.reports),
matched by our ref, so that a message whose send timed out is settled without a resend."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from smsqueue import reports
from smsqueue.db import transaction
from smsqueue.models import Provider
from smsqueue.providers import KINDS, client_class
from smsqueue.providers.base import ProviderError, Report
from smsqueue.providers.iqsms import QUEUE_LIMIT, drain_status_queue
from smsqueue.rules.provider_clients import client_of

log = logging.getLogger(__name__)

MAX_BATCHES = 50  # per provider and run: 10 000 statuses; the rest wait for the next run


def queue_kinds() -> list[str]:
    return sorted(kind for kind in KINDS if client_class(kind).has_status_queue)


def drain_all(limit: int = QUEUE_LIMIT, max_batches: int = MAX_BATCHES) -> int:
    """Drain the status queue of every provider that has one (disabled ones too: their sent messages
    still get statuses). Returns how many statuses were handled."""
    p = Provider.__table__
    with transaction() as conn:
        rows = list(conn.execute(select(p).where(p.c.kind.in_(queue_kinds())).order_by(p.c.id)))
    handled = 0
    for row in rows:
        try:
            handled += drain_status_queue(
                client_of(row), _applier(row.id, row.kind), limit=limit, max_batches=max_batches
            )
        except ProviderError as exc:
            log.warning("status queue of %s not drained: %s", row.code, exc.reason)
    return handled


def _applier(provider_id: int, kind: str) -> Callable[[list[Report]], None]:
    def apply(batch: list[Report]) -> None:
        counts = reports.apply_reports(provider_id, kind, [reports.ReportItem.of(r) for r in batch])
        log.info(
            "status queue of provider %s: %d applied, %d unchanged, %d ignored",
            provider_id,
            counts.applied,
            counts.unchanged,
            counts.ignored,
        )

    return apply
