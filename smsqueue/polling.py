"""Status polling: `sent` messages whose check is due are asked about, in the provider's batches.

Between checks the wait doubles (first check soon after sending, then less and less often). A message
with no final report 72 hours after it was sent ends `undelivered` with reason `status_timeout`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from smsqueue.clock import now
from smsqueue.config import settings
from smsqueue.db import transaction
from smsqueue.messages import messages_t, transition
from smsqueue.models import Provider
from smsqueue.providers.base import ProviderError, StatusQuery, StatusUpdate
from smsqueue.providers.configs import client_of
from smsqueue.sending import apply_status
from smsqueue.statuses import Reason, Status

log = logging.getLogger(__name__)
m = messages_t.c

BATCH = 500
LEASE = timedelta(seconds=60)  # a claimed check is not taken by another run until this passes


def next_check_delay(checks_done: int) -> float:
    s = settings()
    return min(s.status_check_first * (2**checks_done), s.status_check_max)


def poll_due(limit: int = BATCH) -> int:
    at = now()
    with transaction() as conn:
        rows = conn.execute(
            select(m.pk, m.id, m.provider_id, m.provider_message_id, m.recipient, m.sent_at, m.status_checks)
            .where(m.status == Status.SENT.value, m.next_status_check_at <= at)
            .order_by(m.next_status_check_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return 0
        conn.execute(
            update(messages_t).where(m.pk.in_([r.pk for r in rows])).values(next_status_check_at=at + LEASE)
        )
        p = Provider.__table__
        ids = sorted({r.provider_id for r in rows if r.provider_id is not None})
        providers = {r.id: r for r in conn.execute(select(p).where(p.c.id.in_(ids)))}
    answers: dict[int, StatusUpdate] = {}
    by_provider: dict[int, list[Any]] = defaultdict(list)
    for r in rows:
        by_provider[r.provider_id].append(r)
    for provider_id, group in by_provider.items():
        provider = providers.get(provider_id)
        if provider is not None:
            answers.update(_ask(provider, group))
    at = now()
    with transaction() as conn:
        for r in rows:
            _record(conn, r, answers.get(r.pk), at)
    return len(rows)


def _ask(provider: Any, rows: list[Any]) -> dict[int, StatusUpdate]:
    client = client_of(provider)
    size = max(1, client.status_batch_size)
    out: dict[int, StatusUpdate] = {}
    for i in range(0, len(rows), size):
        chunk = [r for r in rows[i : i + size] if r.provider_message_id]
        if not chunk:
            continue
        queries = [StatusQuery(r.provider_message_id, r.recipient, r.pk) for r in chunk]
        try:
            found = client.statuses(queries)
        except ProviderError as exc:
            log.warning("status check at %s failed: %s", provider.code, exc.reason)
            continue
        except Exception:
            log.exception("status check at %s failed", provider.code)
            continue
        for r in chunk:
            update_ = found.get(r.provider_message_id)
            if update_ is not None:
                out[r.pk] = update_
    return out


def _record(conn: Any, row: Any, answer: StatusUpdate | None, at: datetime) -> None:
    moved = (
        answer is not None
        and answer.status is not None
        and apply_status(
            conn,
            row.pk,
            answer.status,
            answer.reason,
            at,
            provider_status=answer.provider_status,
            source="poll",
        )
    )
    if moved:
        return
    if row.sent_at is not None and at - row.sent_at >= timedelta(seconds=settings().status_timeout):
        transition(
            conn,
            row.pk,
            Status.UNDELIVERED,
            reason=Reason.STATUS_TIMEOUT,
            expected={Status.SENT},
            at=at,
            values={"next_status_check_at": None},
        )
        return
    delay = next_check_delay(row.status_checks + 1)
    deadline = (row.sent_at or at) + timedelta(seconds=settings().status_timeout)
    conn.execute(
        update(messages_t)
        .where(m.pk == row.pk, m.status == Status.SENT.value)
        .values(
            next_status_check_at=min(at + timedelta(seconds=delay), deadline),
            status_checks=m.status_checks + 1,
        )
    )
