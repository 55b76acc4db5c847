"""The outbox (`message_events` with a `webhook_state`): which events are due, claiming them, and their
state after each attempt.

The sweep (task `smsqueue.sweep_webhooks`, every SMSQUEUE_WEBHOOK_SWEEP_INTERVAL seconds) claims due
events in batches, locked FOR UPDATE SKIP LOCKED, and hands each receiver's claims to one delivery task
on the `webhooks` queue, which its own workers consume: a slow or dead receiver never delays sending.

A claim writes a `webhook_attempts` row (unfinished, with a lease) and moves the event's
`webhook_next_at` to the end of the lease: the event is not due while a worker holds it, and comes due
again by itself if that worker dies (its attempt is then recorded as lost: the POST may or may not have
gone out). A worker checks its claim is still its own before posting.

Ordering: an event is claimed only when no earlier event of its message is still pending, so a receiver
gets sequence N+1 only after N was delivered or given up. `sequence` lets it drop anything stale anyway.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, exists, func, insert, select, update

from smsqueue.clock import now
from smsqueue.config import settings
from smsqueue.db import transaction
from smsqueue.messages import events_t, messages_t
from smsqueue.statuses import WebhookState
from smsqueue.webhooks import receivers
from smsqueue.webhooks.attempts import LOST, attempts_t, clip
from smsqueue.webhooks.backoff import deadline_passed
from smsqueue.webhooks.transport import INVALID_ORIGIN, REFUSED, origin_of

e = events_t.c
m = messages_t.c
a = attempts_t.c
PENDING = WebhookState.PENDING.value

BATCH = 500  # events one sweep claim looks at
SWEEP_BUDGET = 20.0  # seconds one sweep run may keep claiming
# How long a claimed event waits for its task to start (a backed-up or stopped webhooks worker): long,
# as it only matters when a task is lost, and a shorter one would publish the same claims again and again.
CLAIM_LEASE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Claim:
    attempt_id: int
    origin: str


@dataclass(slots=True)
class ClaimResult:
    claims: list[Claim] = field(default_factory=list)
    scanned: int = 0


def deliveries_due() -> Iterator[tuple[str, list[int]]]:
    """The sweep: claim every due event (in batches, within a time budget), yielding each receiver's
    claims (origin, attempt ids) for one delivery task as soon as their batch is claimed. Whoever cannot
    hand them on gives them back with `release_claims`."""
    started = time.monotonic()
    while time.monotonic() - started < SWEEP_BUDGET:
        result = claim(defer_busy=True)
        groups: dict[str, list[int]] = defaultdict(list)
        for c in result.claims:
            groups[c.origin].append(c.attempt_id)
        yield from groups.items()
        if result.scanned < BATCH:
            break


def _candidates(conn: Connection, at: datetime, origin: str | None) -> list[Any]:
    """Due pending events that are the earliest pending one of their message, locked (SKIP LOCKED)."""
    earlier = events_t.alias("earlier")
    stmt = (
        select(e.id, e.message_pk, e.seq, e.at, e.webhook_attempts, m.callback_url)
        .join_from(events_t, messages_t, m.pk == e.message_pk)
        .where(
            e.webhook_state == PENDING,
            e.webhook_next_at <= at,
            ~exists().where(
                earlier.c.message_pk == e.message_pk,
                earlier.c.webhook_state == PENDING,
                earlier.c.seq < e.seq,
            ),
        )
        .order_by(e.webhook_next_at)
        .limit(BATCH)
        .with_for_update(of=events_t, skip_locked=True)
    )
    if origin is not None:
        # A cheap prefilter on scheme://host (the exact origin is checked below).
        scheme, _, rest = origin.partition("://")
        host = rest.rsplit(":", 1)[0]
        escaped = (f"{scheme}://{host}").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(func.lower(m.callback_url).like(escaped + "%", escape="\\"))
    rows = conn.execute(stmt).all()
    if origin is not None:
        rows = [row for row in rows if origin_of(row.callback_url) == origin]
    return rows


def claim(*, origin: str | None = None, defer_busy: bool = False) -> ClaimResult:
    """Claim due events for delivery, in one transaction; at most BATCH looked at, only `origin`'s if
    given. Events of a blocked receiver are moved to the end of its block (or given up past their
    deadline); with `defer_busy`, those of a receiver already at its concurrency limit wait a moment, so
    that they do not fill every batch while other receivers' events wait behind them."""
    s = settings()
    at = now()
    result = ClaimResult()
    with transaction() as conn:
        rows = _candidates(conn, at, origin)
        result.scanned = len(rows)
        if not rows:
            return result
        by_origin: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            by_origin[origin_of(row.callback_url)].append(row)
        unsent = _expire_leases(conn, [row.id for row in rows], at)
        attempts_done = {row.id: row.webhook_attempts - (1 if row.id in unsent else 0) for row in rows}
        locked = receivers.lock(conn, (o for o in by_origin if o != INVALID_ORIGIN))
        in_flight = receivers.in_flight(conn, locked, at)
        take: list[tuple[Any, str]] = []
        give_up: list[tuple[Any, str, str]] = []
        later: list[tuple[int, datetime]] = []
        for name, events in by_origin.items():
            if name == INVALID_ORIGIN:
                give_up += [(row, name, f"{REFUSED}: not a valid http(s) URL") for row in events]
                continue
            receiver = locked[name]
            if receiver.blocked_until is not None and receiver.blocked_until > at:
                wait = (receiver.blocked_until - at).total_seconds()
                for row in events:
                    if deadline_passed(row.at, at, s):
                        give_up.append((row, name, receivers.unavailable(receiver)))
                    else:
                        spread = random.uniform(0, min(60.0, wait * 0.1))
                        later.append((row.id, receiver.blocked_until + timedelta(seconds=spread)))
                continue
            free = max(0, receivers.cap(receiver, s) - in_flight.get(name, 0))
            take += [(row, name) for row in events[:free]]
            if defer_busy:
                pause = max(s.webhook_sweep_interval, 1.0)
                later += [
                    (row.id, at + timedelta(seconds=random.uniform(pause, 2 * pause)))
                    for row in events[free:]
                ]
        if later:
            conn.execute(
                update(events_t)
                .where(e.id == bindparam("event_id"))
                .values(webhook_next_at=bindparam("next_at")),
                [{"event_id": event_id, "next_at": when} for event_id, when in later],
            )
        if give_up:
            _give_up_unsent(conn, give_up, at, attempts_done)
        if take:
            lease = at + CLAIM_LEASE
            ids = conn.execute(
                insert(attempts_t).returning(a.id, sort_by_parameter_order=True),
                [
                    _attempt_row(row, name, attempts_done[row.id] + 1, at, lease_until=lease)
                    for row, name in take
                ],
            ).scalars()
            conn.execute(
                update(events_t)
                .where(e.id.in_([row.id for row, _ in take]))
                .values(webhook_attempts=e.webhook_attempts + 1, webhook_next_at=lease)
            )
            result.claims = [Claim(attempt_id, name) for attempt_id, (_, name) in zip(ids, take, strict=True)]
    return result


def _attempt_row(event: Any, receiver: str, attempt: int, at: datetime, **values: Any) -> dict[str, Any]:
    """A new `webhook_attempts` row for a due event (a candidate row)."""
    return {
        "event_id": event.id,
        "message_pk": event.message_pk,
        "sequence": event.seq,
        "attempt": attempt,
        "receiver": receiver,
        "at": at,
        **values,
    }


def _expire_leases(conn: Connection, event_ids: list[int], at: datetime) -> set[int]:
    """Unfinished attempts of due events, whose lease ran out: a reservation no worker started is
    dropped (nothing was sent; its attempt number is given back); a started one is recorded as lost (the
    POST may or may not have gone out). Returns the events whose reservation was dropped."""
    stale = conn.execute(
        select(a.id, a.event_id, a.started_at).where(a.event_id.in_(event_ids), a.finished_at.is_(None))
    ).all()
    unsent = [row for row in stale if row.started_at is None]
    if unsent:
        conn.execute(delete(attempts_t).where(a.id.in_([row.id for row in unsent])))
        conn.execute(
            update(events_t)
            .where(e.id.in_([row.event_id for row in unsent]))
            .values(webhook_attempts=e.webhook_attempts - 1)
        )
    lost = [row.id for row in stale if row.started_at is not None]
    if lost:
        conn.execute(update(attempts_t).where(a.id.in_(lost)).values(finished_at=at, error=LOST))
    return {row.event_id for row in unsent}


def _give_up_unsent(
    conn: Connection, items: Sequence[tuple[Any, str, str]], at: datetime, attempts_done: dict[int, int]
) -> None:
    """Give up events without posting them, each with an attempt row that says why."""
    conn.execute(
        insert(attempts_t),
        [
            _attempt_row(
                row, name, attempts_done[row.id] + 1, at, lease_until=at, finished_at=at, error=clip(error)
            )
            for row, name, error in items
        ],
    )
    conn.execute(
        update(events_t)
        .where(e.id.in_([row.id for row, _, _ in items]))
        .values(
            webhook_state=WebhookState.FAILED.value,
            webhook_next_at=None,
            webhook_attempts=e.webhook_attempts + 1,
        )
    )


# --- an event's state after a claim -------------------------------------------------------------------


def lock_event(conn: Connection, event_id: int) -> Any:
    """The event's webhook state and attempt count, locked; None if it is gone."""
    return conn.execute(
        select(e.webhook_state, e.webhook_attempts).where(e.id == event_id).with_for_update()
    ).first()


def holds(event: Any, attempt: int) -> bool:
    """Whether the claim of attempt number `attempt` is still the event's current one."""
    return event is not None and event.webhook_state == PENDING and event.webhook_attempts == attempt


def settle(conn: Connection, event_id: int, state: WebhookState) -> None:
    """The event is delivered or given up: it is due no more."""
    conn.execute(
        update(events_t).where(e.id == event_id).values(webhook_state=state.value, webhook_next_at=None)
    )


def retry_at(conn: Connection, event_id: int, when: datetime) -> None:
    conn.execute(update(events_t).where(e.id == event_id).values(webhook_next_at=when))


def give_back(conn: Connection, event_id: int, attempt: int, due_at: datetime) -> None:
    """Undo the claim of attempt number `attempt` (if still the current one): due again at `due_at`."""
    conn.execute(
        update(events_t)
        .where(e.id == event_id, e.webhook_state == PENDING, e.webhook_attempts == attempt)
        .values(webhook_attempts=e.webhook_attempts - 1, webhook_next_at=due_at)
    )


def release_claims(attempt_ids: Sequence[int]) -> None:
    """Give back claims whose task could not be published (the broker is down): they come due at once."""
    at = now()
    with transaction() as conn:
        rows = conn.execute(
            select(a.id, a.event_id, a.attempt).where(a.id.in_(list(attempt_ids)), a.finished_at.is_(None))
        ).all()
        for row in rows:
            conn.execute(delete(attempts_t).where(a.id == row.id))
            give_back(conn, row.event_id, row.attempt, at)
