"""The beat's sweeps: each an indexed query for due rows, in batches, locked with SKIP LOCKED so that
several beats or overlapping runs never take the same row.

- dispatch_scheduled: `scheduled` messages whose time has come -> `queued` (or `expired`), and ring;
- republish_lost: `queued` messages whose `ring_at` has come: a doorbell that was lost (a publish that
  failed, a killed worker, a broker restarted empty) or a retry that is due (no Celery countdown is relied
  on: the database says when a message is due); every due one is rung at once when the
  broker is known to have lost what it held (`ring_again_when_due`);
- reconcile_sending: `sending` messages whose send never got recorded: ask the provider, never resend blindly.

Each sweep is a generator of its committed batches' `Followups`: the task that runs it (smsqueue.tasks.sweep)
rings them. This module publishes nothing itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from smsqueue.clock import now
from smsqueue.db import transaction
from smsqueue.links import Link, load_context
from smsqueue.messages import SHORT_WAIT, Followups, messages_t, ring_after_grace, transition_many
from smsqueue.models import Provider
from smsqueue.provider_calls import outgoing
from smsqueue.providers.base import LookupNotSupported, ProviderError, TransientProviderError
from smsqueue.recording import fail_unknown_outcome, record_failure, record_sent
from smsqueue.rules.provider_clients import client_of
from smsqueue.statuses import Status

log = logging.getLogger(__name__)
m = messages_t.c

BATCH = 1000
TIME_BUDGET = 20.0  # seconds one sweep run may keep taking batches
RECONCILE_BATCH = 200
LOOKUP_RETRY = 5.0


Step = Callable[[datetime], tuple[int, Followups]]


def _repeat(step: Step, batch: int) -> Iterator[Followups]:
    """Run a sweep step until it finds less than a full batch or its time budget is spent, yielding each
    batch's follow-ups (`count` says how many rows it took)."""
    started = time.monotonic()
    while time.monotonic() - started < TIME_BUDGET:
        done, followups = step(now())
        followups.count = done
        yield followups
        if done < batch:
            break


def _due(status: Status, before: datetime, limit: int, *columns: Any) -> Any:
    return (
        select(*columns)
        .where(m.status == status.value, m.next_attempt_at <= before)
        .order_by(m.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def dispatch_scheduled() -> Iterator[Followups]:
    return _repeat(_dispatch_scheduled_batch, BATCH)


def _dispatch_scheduled_batch(at: datetime) -> tuple[int, Followups]:
    with transaction() as conn:
        rows = conn.execute(_due(Status.SCHEDULED, at, BATCH, m.pk, m.valid_until)).all()
        expired = [r.pk for r in rows if r.valid_until is not None and r.valid_until <= at]
        due = [r.pk for r in rows if r.valid_until is None or r.valid_until > at]
        transition_many(
            conn,
            expired,
            Status.EXPIRED,
            expected={Status.SCHEDULED},
            at=at,
            values={"next_attempt_at": None},
        )
        moved = transition_many(
            conn,
            due,
            Status.QUEUED,
            expected={Status.SCHEDULED},
            at=at,
            values={"next_attempt_at": at, "ring_at": ring_after_grace(at)},
        )
    return len(rows), Followups(now=[x.pk for x in moved])


def republish_lost() -> Iterator[Followups]:
    return _repeat(_republish_lost_batch, BATCH)


def _republish_lost_batch(at: datetime) -> tuple[int, Followups]:
    with transaction() as conn:
        pks = list(
            conn.execute(
                select(m.pk)
                .where(m.status == Status.QUEUED.value, m.ring_at <= at)
                .order_by(m.ring_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            ).scalars()
        )
        _rang(conn, pks, at)
    if pks:
        log.info("ringing for %d queued message(s): due, or their doorbell was lost", len(pks))
    return len(pks), Followups(now=pks)


def ring_again_when_due(at: datetime) -> int:
    """For when the broker is known to have lost doorbells (restarted empty): every queued message rung
    within the last grace period, or waiting on a countdown, is made due for the ring sweep at its own
    due time, so that what was rung before is rung again at once (and a lost countdown on time), not
    after the grace period. One statement, over the `ring_at` index's near future only."""
    window = ring_after_grace(at) + timedelta(seconds=SHORT_WAIT)
    with transaction() as conn:
        done = conn.execute(
            update(messages_t)
            .where(m.status == Status.QUEUED.value, m.ring_at > at, m.ring_at <= window)
            .values(ring_at=m.next_attempt_at)
        ).rowcount
    if done:
        log.info("the broker lost its doorbells: %d queued message(s) to be rung again when due", done)
    return done or 0


def _rang(conn: Any, pks: list[int], at: datetime) -> None:
    """Rung now: rung again only if no worker has taken them within the grace period."""
    if pks:
        conn.execute(update(messages_t).where(m.pk.in_(pks)).values(ring_at=ring_after_grace(at)))


def reconcile_sending() -> Iterator[Followups]:
    return _repeat(_reconcile_batch, RECONCILE_BATCH)


def _reconcile_batch(at: datetime) -> tuple[int, Followups]:
    """Messages left `sending`: the provider call may or may not have reached the provider."""
    with transaction() as conn:
        rows = conn.execute(_due(Status.SENDING, at, RECONCILE_BATCH, messages_t)).all()
        if not rows:
            return 0, Followups()
        lease = at + timedelta(seconds=LOOKUP_RETRY)
        conn.execute(update(messages_t).where(m.pk.in_([r.pk for r in rows])).values(next_attempt_at=lease))
        providers = _providers(conn, {r.provider_id for r in rows if r.provider_id is not None})
    followups = Followups()
    answers = [(row, _look_up(row, providers.get(row.provider_id), at)) for row in rows]
    at = now()
    with transaction() as conn:
        ctx = load_context(conn, (r.legal_entity_id for r in rows))
        for row, answer in answers:
            _settle(conn, row, providers.get(row.provider_id), answer, ctx, at, followups)
    return len(rows), followups


def _providers(conn: Any, ids: set[int]) -> dict[int, Any]:
    if not ids:
        return {}
    p = Provider.__table__
    return {r.id: r for r in conn.execute(select(p).where(p.c.id.in_(sorted(ids))))}


def _look_up(row: Any, provider: Any, at: datetime) -> Any:
    """The provider's answer to "do you have this message?": a SendResult, None (it does not), or the
    exception that stopped us from knowing."""
    if provider is None:
        return LookupNotSupported("no provider recorded")
    try:
        client = client_of(provider)
        return client.lookup(outgoing(row, row.sender, provider, at))
    except ProviderError as exc:
        return exc
    except Exception as exc:
        log.exception("lookup of message %s at %s failed", row.id, provider.code)
        return exc


def _settle(
    conn: Any, row: Any, provider: Any, answer: Any, ctx: Any, at: datetime, followups: Followups
) -> None:
    if isinstance(answer, LookupNotSupported) or provider is None:
        fail_unknown_outcome(conn, row, at, {"provider": provider.code if provider else None})
        return
    if isinstance(answer, Exception):
        deadline = (row.claimed_at or at) + timedelta(seconds=float(provider.timeout_seconds) + 50)
        if at >= deadline:
            fail_unknown_outcome(
                conn, row, at, {"provider": provider.code, "lookup_error": str(answer)[:200]}
            )
        return  # asked again when the lease runs out
    if answer is not None:
        record_sent(conn, row, provider, answer, at)
        return
    # The provider never got it: a failed attempt like any other (retry, fail over, or fail).
    link = ctx.link(row.legal_entity_id, provider.id)
    if link is None:
        link = Link(provider, 0, None, False)
    error = TransientProviderError("the provider has no such message", code="not_received")
    record_failure(conn, row, link, row.attempts, error, ctx, at, followups)
