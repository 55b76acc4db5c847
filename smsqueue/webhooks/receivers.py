"""Receiver protection (`webhook_receivers`, shared by all workers), per origin (scheme://host:port).

At most SMSQUEUE_WEBHOOK_PER_RECEIVER POSTs in flight to one origin. After
SMSQUEUE_WEBHOOK_BREAKER_THRESHOLD consecutive failures (or a Retry-After) the origin is blocked for an
exponentially growing time (circuit open): its due events are moved to the end of the block instead of
being tried, and when it ends one event probes it (half-open) before the others follow. A receiver down
for hours so costs one POST per backoff period, not one per event, and holds no worker and no queue slot.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, update

from smsqueue.config import Settings
from smsqueue.db import is_postgres
from smsqueue.models.webhooks import WebhookReceiver
from smsqueue.webhooks.attempts import ERROR_LENGTH, attempts_t, clip
from smsqueue.webhooks.backoff import breaker_delay
from smsqueue.webhooks.transport import AttemptResult

receivers_t = WebhookReceiver.__table__
r = receivers_t.c
a = attempts_t.c


def _dialect_insert(table: Any) -> Any:
    if is_postgres():
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def lock(conn: Connection, origins: Iterable[str]) -> dict[str, Any]:
    """The receivers' rows, made if new, locked in a fixed order (claims of one receiver are serialised)."""
    names = sorted(set(origins))
    if not names:
        return {}
    conn.execute(
        _dialect_insert(receivers_t)
        .values([{"origin": name, "failures": 0} for name in names])
        .on_conflict_do_nothing(index_elements=["origin"])
    )
    rows = conn.execute(select(receivers_t).where(r.origin.in_(names)).order_by(r.origin).with_for_update())
    return {row.origin: row for row in rows}


def in_flight(conn: Connection, origins: Iterable[str], at: datetime) -> dict[str, int]:
    """POSTs in flight (or about to be) per origin: unfinished attempts with a live lease."""
    rows = conn.execute(
        select(a.receiver, func.count())
        .where(a.receiver.in_(sorted(set(origins))), a.finished_at.is_(None), a.lease_until > at)
        .group_by(a.receiver)
    )
    return {row[0]: int(row[1]) for row in rows}


def cap(receiver: Any, s: Settings) -> int:
    """How many POSTs may be in flight to it: one probe while it is failing, else the limit."""
    return 1 if receiver.failures >= s.webhook_breaker_threshold else max(1, s.webhook_per_receiver)


def blocked_until(conn: Connection, origin: str) -> datetime | None:
    return conn.execute(select(r.blocked_until).where(r.origin == origin)).scalar()


def count(conn: Connection, origin: str, result: AttemptResult, at: datetime, s: Settings) -> datetime | None:
    """Count an attempt's result into the receiver's health; when it is now blocked until."""
    receiver = lock(conn, [origin])[origin]
    values: dict[str, Any] = {
        "last_attempt_at": at,
        "last_status_code": result.status_code,
        "last_error": clip(result.error),
    }
    if result.kind == "retry":
        failures = receiver.failures + 1
        blocked = receiver.blocked_until
        wait = None
        if result.retry_after is not None:
            wait = result.retry_after
        elif failures >= s.webhook_breaker_threshold:
            wait = breaker_delay(failures, s)
        if wait is not None:
            until = at + timedelta(seconds=wait)
            blocked = until if blocked is None or blocked < until else blocked
        values.update(failures=failures, blocked_until=blocked, last_failure_at=at)
    else:
        # It answered (2xx, or a 4xx about this one event): it is up.
        values.update(failures=0, blocked_until=None)
        if result.kind == "delivered":
            values["last_success_at"] = at
    conn.execute(update(receivers_t).where(r.origin == origin).values(**values))
    return values["blocked_until"]


def unavailable(receiver: Any) -> str:
    """Why an event of a receiver that kept failing is given up without a POST."""
    last = (
        f"HTTP {receiver.last_status_code}"
        if receiver.last_status_code
        else receiver.last_error or "no answer"
    )
    return f"given up: the receiver kept failing until the retry period ended (last: {last})"[:ERROR_LENGTH]
