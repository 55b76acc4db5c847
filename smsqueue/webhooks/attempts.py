"""The rows of `webhook_attempts` (see models.webhooks for their life): an answer written into one, and
the list of a message's attempts for the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from smsqueue.clock import iso, now
from smsqueue.models.webhooks import WebhookAttempt
from smsqueue.webhooks.transport import AttemptResult

attempts_t = WebhookAttempt.__table__
a = attempts_t.c

ERROR_LENGTH: int = a.error.type.length  # of an error text kept (the receivers' last_error is as long)
LOST = "no answer recorded: the delivery worker was lost (the POST may or may not have been sent)"


def clip(error: str | None) -> str | None:
    return error[:ERROR_LENGTH] if error else None


def finish(conn: Connection, attempt_id: int, result: AttemptResult, at: datetime) -> None:
    """Write an attempt's answer. Also when its claim was presumed lost meanwhile: the answer is the truth."""
    conn.execute(
        update(attempts_t)
        .where(a.id == attempt_id)
        .values(
            finished_at=func.coalesce(a.finished_at, at),
            status_code=result.status_code,
            error=clip(result.error),
            duration_ms=result.duration_ms,
        )
    )


def discard_unfinished(conn: Connection, attempt_id: int) -> bool:
    """Drop an attempt that was not posted; False if it was finished (or is gone) meanwhile."""
    return bool(conn.execute(delete(attempts_t).where(a.id == attempt_id, a.finished_at.is_(None))).rowcount)


def attempts_of(conn: Connection, message_pk: int) -> list[dict[str, Any]]:
    """Delivery attempts of a message for the admin API, in order; those in flight are left out."""
    at = now()
    rows = conn.execute(
        select(
            a.sequence, a.attempt, a.at, a.status_code, a.error, a.finished_at, a.lease_until, a.started_at
        )
        .where(a.message_pk == message_pk)
        .order_by(a.sequence, a.attempt, a.id)
    )
    out = []
    for row in rows:
        error = row.error
        if row.finished_at is None:
            if row.started_at is None or row.lease_until > at:
                continue  # not sent yet, or waiting for its answer
            error = LOST
        out.append(
            {
                "sequence": row.sequence,
                "attempt": row.attempt,
                "at": iso(row.at),
                "status_code": row.status_code,
                "error": error,
            }
        )
    return out
