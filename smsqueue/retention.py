"""Retention: final messages older than their entity's `retention_days` are deleted, with their events
and webhook attempts (deleted first, and by their foreign keys), in the background and in small batches.

Each batch is its own short transaction of at most `BATCH` messages, picked oldest first through
`ix_messages_entity_created` and locked with SKIP LOCKED: a message some other transaction holds (a late
delivery report, another purge run of a second beat) is left for the next run, and the purge never waits
for, nor holds for long, a lock the sending path needs (it touches only final messages, which nothing
moves again). The 230-FZ counters are rows of their own (`fz_counters`), so a purge changes no count; an
`updated_after` poller simply stops seeing the deleted messages.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select

from smsqueue import metrics
from smsqueue.clock import now
from smsqueue.db import transaction
from smsqueue.models import LegalEntity, Message, MessageEvent
from smsqueue.statuses import FINAL

log = logging.getLogger(__name__)
BATCH = 500
_FINAL = sorted(s.value for s in FINAL)
m = Message.__table__.c


def purge_batch(conn: Connection, entity_id: int, cutoff: datetime, limit: int = BATCH) -> int:
    """Delete up to `limit` of an entity's final messages last changed before `cutoff`; how many."""
    doomed = (
        select(m.pk)
        .where(
            m.legal_entity_id == entity_id,
            # created_at <= updated_at: the range of the entity's index holds every candidate
            m.created_at < cutoff,
            m.updated_at < cutoff,
            m.status.in_(_FINAL),
        )
        .order_by(m.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    pks = list(conn.execute(doomed).scalars())
    if pks:
        # Events have no foreign key to cascade by (see MessageEvent.message_pk); their webhook
        # attempts go with them by theirs.
        events = MessageEvent.__table__
        conn.execute(delete(events).where(events.c.message_pk.in_(pks)))
        conn.execute(delete(Message.__table__).where(m.pk.in_(pks)))
    return len(pks)


def purge(
    *, batch: int = BATCH, budget_seconds: float = 50.0, pause: float = 0.0, at: datetime | None = None
) -> int:
    """Purge every entity's expired messages, batch after batch, for at most `budget_seconds` (the next
    run goes on); `pause` seconds between batches leave the disks to the sending path. How many went."""
    started = time.monotonic()
    at = at or now()
    with transaction() as conn:
        entities = conn.execute(select(LegalEntity.id, LegalEntity.retention_days)).all()
    total = 0
    for entity_id, days in entities:
        cutoff = at - timedelta(days=days)
        while time.monotonic() - started < budget_seconds:
            with transaction() as conn:
                done = purge_batch(conn, entity_id, cutoff, batch)
            total += done
            if done:
                metrics.inc("smsqueue_messages_purged_total", {}, done)
            if done < batch:
                break
            if pause:
                time.sleep(pause)
    if total:
        log.info("retention: purged %d messages", total)
    return total
