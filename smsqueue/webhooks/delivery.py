"""Running a delivery task's claims: sign and POST each event, record each answer and what follows
(delivered, given up, or the time of the next try), and pull more due events of the same receiver.

A task POSTs its events concurrently (up to the per-receiver limit), then claims more due events of the
same receiver (the next status of the same messages included) until none is left or its time budget is
spent, so a busy receiver is not held to one batch per sweep. It stops sending to a receiver that fails
often enough to open its breaker, and gives the rest of its claims back unposted.

A 2xx delivers an event; a network error, a timeout, a 5xx or a 429 is retried (see backoff); any other
answer (3xx, 4xx other than 429) gives it up at once, as does a callback URL refused at send time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import requests
from sqlalchemy import select, update

from smsqueue import metrics
from smsqueue.clock import now
from smsqueue.config import settings
from smsqueue.db import transaction
from smsqueue.messages import events_t, messages_t
from smsqueue.models import LegalEntity
from smsqueue.statuses import WebhookState
from smsqueue.webhooks import attempts, outbox, receivers
from smsqueue.webhooks.backoff import deadline_passed, next_try_at
from smsqueue.webhooks.payload import body_of
from smsqueue.webhooks.signing import secrets_of, signed_headers
from smsqueue.webhooks.transport import CONNECT_TIMEOUT, AttemptResult, new_session, send

log = logging.getLogger(__name__)

e = events_t.c
m = messages_t.c
a = attempts.attempts_t.c
entities_t = LegalEntity.__table__

TASK_BUDGET = 30.0  # seconds a delivery task keeps pulling more events of its receiver
LEASE_MARGIN = 30.0  # seconds beyond the POST's own timeout before a started claim is presumed lost
RELEASED = "released"  # what `run` says of a claim it gave back unposted


@dataclass(slots=True)
class Job:
    """One claimed event, ready to post."""

    attempt_id: int
    attempt: int
    event_id: int
    event_at: datetime
    origin: str
    url: str
    body: bytes
    secret: str | None  # None: it could not be read (decryption failed)
    previous_secret: str | None


def start(attempt_ids: Sequence[int]) -> list[Job]:
    """The claims that are still ours, with their lease extended to cover the POST, ready to send."""
    s = settings()
    at = now()
    with transaction() as conn:
        rows = conn.execute(
            select(
                a.id.label("attempt_id"),
                a.attempt,
                a.finished_at,
                a.receiver,
                a.event_id,
                e.seq,
                e.status,
                e.reason,
                e.at.label("event_at"),
                e.webhook_state,
                e.webhook_attempts,
                m.id.label("message_id"),
                m.reference,
                m.callback_url,
                entities_t.c.code,
                entities_t.c.webhook_secret,
                entities_t.c.webhook_secret_previous,
                entities_t.c.webhook_secret_previous_until,
            )
            .join_from(attempts.attempts_t, events_t, e.id == a.event_id)
            .join(messages_t, m.pk == e.message_pk)
            .join(entities_t, entities_t.c.id == m.legal_entity_id)
            .where(a.id.in_(list(attempt_ids)))
            .order_by(e.id)
            .with_for_update(of=events_t)
        ).all()
        mine = [row for row in rows if row.finished_at is None and outbox.holds(row, row.attempt)]
        if not mine:
            return []
        lease = at + timedelta(seconds=CONNECT_TIMEOUT + s.webhook_timeout + LEASE_MARGIN)
        ids = [row.attempt_id for row in mine]
        conn.execute(
            update(attempts.attempts_t).where(a.id.in_(ids)).values(at=at, started_at=at, lease_until=lease)
        )
        conn.execute(
            update(events_t).where(e.id.in_([row.event_id for row in mine])).values(webhook_next_at=lease)
        )
    jobs = []
    for row in mine:
        try:
            secret, previous = secrets_of(row, at)
        except Exception:
            log.exception("the webhook secret of entity %s cannot be read", row.code)
            secret, previous = None, None
        body = body_of(row.message_id, row.code, row.reference, row.status, row.reason, row.event_at, row.seq)
        jobs.append(
            Job(
                row.attempt_id,
                row.attempt,
                row.event_id,
                row.event_at,
                row.receiver,
                row.callback_url,
                body,
                secret,
                previous,
            )
        )
    return jobs


def attempt(job: Job, session: requests.Session) -> AttemptResult:
    """Sign anew and POST (the URL checked again on the way)."""
    if job.secret is None:
        return AttemptResult(
            error="internal error: the entity's webhook secret cannot be read", counts_for_receiver=False
        )
    headers = signed_headers(job.secret, job.previous_secret, job.body, int(time.time()))
    return send(session, job.url, job.body, headers)


def record(job: Job, result: AttemptResult) -> str:
    """Store an attempt's answer and what follows: delivered, given up, or the time of the next try.
    Returns the event's webhook state."""
    state = _record(job, result)
    metrics.inc("smsqueue_webhook_attempts_total", {"outcome": result.kind})
    if result.kind != "delivered":
        metrics.inc("smsqueue_webhook_failures_total", {"state": str(state)})
    if state == WebhookState.DELIVERED:  # lag: from the status change to the receiver's 2xx
        lag = (now() - job.event_at).total_seconds()
        metrics.observe("smsqueue_webhook_lag_seconds", {}, lag, metrics.LAG_SECONDS_BUCKETS)
    return state


def _record(job: Job, result: AttemptResult) -> str:
    s = settings()
    at = now()
    with transaction() as conn:
        event = outbox.lock_event(conn, job.event_id)
        attempts.finish(conn, job.attempt_id, result, at)
        blocked = receivers.count(conn, job.origin, result, at, s) if result.counts_for_receiver else None
        if not outbox.holds(event, job.attempt):
            return event.webhook_state if event is not None else WebhookState.FAILED
        kind = result.kind
        if kind == "retry" and (result.refused or deadline_passed(job.event_at, at, s)):
            kind = "give_up"
        if kind == "retry":
            outbox.retry_at(conn, job.event_id, next_try_at(job.attempt, result, at, blocked, s))
            return WebhookState.PENDING
        state = WebhookState.DELIVERED if kind == "delivered" else WebhookState.FAILED
        outbox.settle(conn, job.event_id, state)
        return state


def release(job: Job) -> None:
    """Give back a claim that was not posted: no attempt is recorded, the event waits for its receiver."""
    at = now()
    with transaction() as conn:
        outbox.lock_event(conn, job.event_id)
        blocked = receivers.blocked_until(conn, job.origin)
        if attempts.discard_unfinished(conn, job.attempt_id):
            outbox.give_back(
                conn, job.event_id, job.attempt, blocked if blocked is not None and blocked > at else at
            )


@dataclass
class _Round:
    """What one task knows of its receiver while its POSTs run: whether to stop sending to it."""

    threshold: int
    failures: int = 0
    stop: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, result: AttemptResult) -> None:
        if not result.counts_for_receiver:
            return
        with self.lock:
            if result.kind == "retry":
                self.failures += 1
                if self.failures >= self.threshold or result.retry_after is not None:
                    self.stop = True
            else:
                self.failures = 0


def _run_one(job: Job, session: requests.Session, state: _Round) -> str:
    if state.stop:
        release(job)
        return RELEASED
    result = attempt(job, session)
    state.note(result)
    if result.kind != "delivered":
        log.info(
            "webhook to %s: attempt %d %s",
            job.origin,
            job.attempt,
            f"HTTP {result.status_code}" if result.status_code else result.error,
        )
    return record(job, result)


def run(jobs: Sequence[Job], session: requests.Session) -> list[str]:
    """POST the jobs (one receiver's) concurrently, up to the per-receiver limit; their resulting states."""
    if not jobs:
        return []
    s = settings()
    state = _Round(max(1, s.webhook_breaker_threshold))
    workers = max(1, min(len(jobs), s.webhook_per_receiver))
    if workers == 1:
        return [_run_one(job, session, state) for job in jobs]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook") as pool:
        return list(pool.map(lambda job: _run_one(job, session, state), jobs))


def deliver(attempt_ids: Sequence[int]) -> int:
    """The delivery task: post the claimed events, then keep pulling due events of the same receiver
    (the next status of the same messages included) while it answers and the budget lasts. Returns the
    number of POSTs made."""
    started = time.monotonic()
    posted = 0
    with new_session() as session:
        jobs = start(attempt_ids)
        while jobs:
            states = run(jobs, session)
            posted += sum(1 for st in states if st != RELEASED)
            origin = jobs[0].origin
            # Pull more only from a receiver that just answered every POST; a failing one waits.
            if (
                any(st in (RELEASED, WebhookState.PENDING) for st in states)
                or time.monotonic() - started > TASK_BUDGET
            ):
                break
            more = outbox.claim(origin=origin).claims
            jobs = start([c.attempt_id for c in more]) if more else []
    return posted
