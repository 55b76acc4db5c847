"""Status polling: `sent` messages whose check is due are asked about, in the provider's batches.

Between checks the wait doubles (first check soon after sending, then less and less often). A message
with no final report 72 hours after it was sent ends `undelivered` with reason `status_timeout`; sooner
where the provider forgets statuses sooner (its client's `status_window`: SMS Traffic keeps them 2 days,
after which asking is pointless).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from smsqueue.clock import now
from smsqueue.config import settings
from smsqueue.db import transaction
from smsqueue.messages import ProviderStatus, apply_statuses, messages_t, transition_many
from smsqueue.models import Provider
from smsqueue.providers.base import ProviderError, StatusQuery, StatusUpdate
from smsqueue.rules.provider_clients import client_of
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
    timeouts = {pid: status_timeout_of(provider) for pid, provider in providers.items()}
    with transaction() as conn:
        _record_all(conn, rows, answers, at, timeouts)
    return len(rows)


def status_timeout_of(provider: Any) -> timedelta:
    """How long after sending a message of this provider may stay `sent`."""
    timeout = timedelta(seconds=settings().status_timeout)
    window = client_of(provider).status_window
    return timeout if window is None else min(timeout, window)


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


def _record_all(
    conn: Any,
    rows: list[Any],
    answers: dict[int, StatusUpdate],
    at: datetime,
    timeouts: dict[int, timedelta],
) -> None:
    """What the polls found, a few statements for the whole batch: the final statuses (through the
    lifecycle's rule), the timed out, and the next check time of the rest."""
    found = [
        ProviderStatus(r.pk, a.status, a.reason, a.provider_status) for r in rows if (a := answers.get(r.pk))
    ]
    moved = apply_statuses(conn, found, at, "poll")
    default = timedelta(seconds=settings().status_timeout)
    waiting = [r for r in rows if r.pk not in moved]

    def timeout(r: Any) -> timedelta:
        return timeouts.get(r.provider_id, default)

    timed_out = [r.pk for r in waiting if r.sent_at is not None and at - r.sent_at >= timeout(r)]
    transition_many(
        conn,
        timed_out,
        Status.UNDELIVERED,
        reason=Reason.STATUS_TIMEOUT,
        expected={Status.SENT},
        at=at,
        values={"next_status_check_at": None},
    )
    later = [r for r in waiting if r.pk not in set(timed_out)]
    _reschedule(conn, [(r.pk, _next_check(r, at, timeout(r))) for r in later])


def _next_check(row: Any, at: datetime, timeout: timedelta) -> datetime:
    delay = timedelta(seconds=next_check_delay(row.status_checks + 1))
    return min(at + delay, (row.sent_at or at) + timeout)


def _reschedule(conn: Any, items: list[tuple[int, datetime]]) -> None:
    """Set each still-`sent` message's next check, one statement on PostgreSQL."""
    if not items:
        return
    if conn.dialect.name != "postgresql":
        for pk, when in items:
            conn.execute(
                update(messages_t)
                .where(m.pk == pk, m.status == Status.SENT.value)
                .values(next_status_check_at=when, status_checks=m.status_checks + 1)
            )
        return
    joined = (
        func.unnest(
            bindparam("pks", [pk for pk, _ in items], type_=ARRAY(m.pk.type)),
            bindparam("whens", [when for _, when in items], type_=ARRAY(m.next_status_check_at.type)),
        )
        .table_valued("pk", "due")
        .render_derived(name="v")
    )
    conn.execute(
        update(messages_t)
        .where(m.pk == joined.c.pk, m.status == Status.SENT.value)
        .values(next_status_check_at=joined.c.due, status_checks=m.status_checks + 1)
    )
