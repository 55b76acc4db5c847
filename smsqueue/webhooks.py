"""Status webhooks: the body, its signature, the delivery attempt, the backoff schedule and the protection
of (and from) receivers.

The outbox is `message_events`: `messages.transition` writes every status change of a message that has a
`callback_url` with `webhook_state='pending'` and `webhook_next_at` = the change's time, in the same
transaction as the change, so no change is lost between the database and the broker.

Which URL: the message's `callback_url` column, fixed when the message was accepted: its own URL, else
the entity's URL at that moment. Changing the entity's URL later changes where new messages report, not
messages already accepted (their receiver is the one that knew about them).

Scheduling. `sweep()` (task `smsqueue.sweep_webhooks`, on the `periodic` queue, every
SMSQUEUE_WEBHOOK_SWEEP_INTERVAL seconds) claims due events in batches, locked FOR UPDATE SKIP LOCKED, and
publishes one `smsqueue.deliver_webhooks` task per receiver (origin = scheme://host:port) on the
`webhooks` queue, which its own workers consume: a slow or dead receiver never delays sending. A
delivery task POSTs its events concurrently, records each answer, then claims more due events of the
same receiver (the next status of the same messages included) until none is left or its time budget is
spent, so a busy receiver is not held to one batch per sweep.

A claim writes a `webhook_attempts` row (unfinished, with a lease) and moves the event's
`webhook_next_at` to the end of the lease: the event is not due while a worker holds it, and comes due
again by itself if that worker dies (its attempt is then recorded as lost: the POST may or may not have
gone out). A worker checks its claim is still its own before posting.

Ordering: an event is claimed only when no earlier event of its message is still pending, so a receiver
gets sequence N+1 only after N was delivered or given up. `sequence` lets it drop anything stale anyway.

Retries: a network error, a timeout, a 5xx or a 429 is retried after min(base * 2^(n-1), max) seconds,
times a random factor in [0.5, 1] (jitter), or after the receiver's Retry-After when that is longer; an
event is given up only when an attempt fails SMSQUEUE_WEBHOOK_RETRY_FOR seconds (default 24 h) or more
after its status change. A 2xx delivers it; any other answer (3xx, 4xx other than 429) gives it up at
once; redirects are not followed. A callback URL that resolves to a loopback, private or link-local
address is refused at send time too (unless SMSQUEUE_ALLOW_PRIVATE_CALLBACKS) and the event given up.

Receiver protection (`webhook_receivers`, shared by all workers): at most SMSQUEUE_WEBHOOK_PER_RECEIVER
POSTs in flight to one origin; a POST is cut at SMSQUEUE_WEBHOOK_TIMEOUT. After
SMSQUEUE_WEBHOOK_BREAKER_THRESHOLD consecutive failures (or a Retry-After) the origin is blocked for an
exponentially growing time (circuit open): its due events are moved to the end of the block instead of
being tried, and when it ends one event probes it (half-open) before the others follow. A receiver down
for hours so costs one POST per backoff period, not one per event, and holds no worker and no queue slot.

Signatures: `X-Smsqueue-Signature: sha256=<hex>`, the HMAC-SHA256 of `<timestamp>.<raw body>` with the
entity's webhook secret, `X-Smsqueue-Timestamp` the unix time of the attempt (each attempt is signed
anew). For SMSQUEUE_WEBHOOK_SECRET_GRACE seconds after a rotation the replaced secret signs too, in
`X-Smsqueue-Signature-Previous: sha256=<hex>`, so a receiver can switch secrets without rejecting events.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import http.cookiejar
import json
import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, Field
from sqlalchemy import Connection, bindparam, delete, exists, func, insert, select, update

from smsqueue.clock import iso, now
from smsqueue.config import Settings, settings
from smsqueue.crypto import decrypt
from smsqueue.db import is_postgres, transaction
from smsqueue.messages import events_t, messages_t
from smsqueue.models import LegalEntity
from smsqueue.models.webhooks import WebhookAttempt, WebhookReceiver
from smsqueue.statuses import Status
from smsqueue.urls import UrlError, check_callback_url

log = logging.getLogger(__name__)

attempts_t = WebhookAttempt.__table__
receivers_t = WebhookReceiver.__table__
entities_t = LegalEntity.__table__
e = events_t.c
m = messages_t.c
a = attempts_t.c
r = receivers_t.c

SIGNATURE_HEADER = "X-Smsqueue-Signature"
PREVIOUS_SIGNATURE_HEADER = "X-Smsqueue-Signature-Previous"
TIMESTAMP_HEADER = "X-Smsqueue-Timestamp"
USER_AGENT = "smsqueue-webhooks/1"

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
INVALID_ORIGIN = "invalid:"

BATCH = 500  # events one sweep claim looks at
SWEEP_BUDGET = 20.0  # seconds one sweep run may keep claiming
TASK_BUDGET = 30.0  # seconds a delivery task keeps pulling more events of its receiver
# How long a claimed event waits for its task to start (a backed-up or stopped webhooks worker): long,
# as it only matters when a task is lost, and a shorter one would publish the same claims again and again.
CLAIM_LEASE = timedelta(minutes=10)
LEASE_MARGIN = 30.0  # seconds beyond the POST's own timeout before a started claim is presumed lost
CONNECT_TIMEOUT = 5.0
MAX_ANSWER_BYTES = 64 * 1024  # of a receiver's answer body that is read (and dropped)
MAX_RETRY_AFTER = 24 * 3600.0
ERROR_LENGTH = 500
LOST = "no answer recorded: the delivery worker was lost (the POST may or may not have been sent)"


# --- the body and its signature -----------------------------------------------------------------------


class WebhookEvent(BaseModel):
    """The body of a status webhook: one POST per status a message takes."""

    event: Literal["message.status"] = "message.status"
    id: str = Field(description="The message's id (UUID).")
    legal_entity: str = Field(description="The entity's code.")
    reference: str | None = Field(description="The caller's own id of the message, if it gave one.")
    status: Status
    reason: str | None = Field(description="Why it took this status (see the reason codes), or null.")
    at: datetime = Field(description="When it took this status (UTC).")
    sequence: int = Field(
        ge=1,
        description="1 for the first status, one more for each change: the event's place in the message's "
        "events. Keep the highest seen per message id and drop anything not above it.",
    )


def body_of(
    message_id: Any, entity_code: str, reference: str | None, status: str, reason: str | None,
    at: datetime, sequence: int,
) -> bytes:  # fmt: skip
    """The raw body, exactly as signed and sent (field order as in the contract)."""
    body = {
        "event": "message.status",
        "id": str(message_id),
        "legal_entity": entity_code,
        "reference": reference,
        "status": status,
        "reason": reason,
        "at": iso(at),
        "sequence": sequence,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 of `<timestamp>.<raw body>`, hex."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, previous: str | None, body: bytes, timestamp: int) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"sha256={sign(secret, timestamp, body)}",
    }
    if previous is not None:
        headers[PREVIOUS_SIGNATURE_HEADER] = f"sha256={sign(previous, timestamp, body)}"
    return headers


def secrets_of(entity: Any, at: datetime) -> tuple[str, str | None]:
    """The entity's current webhook secret and, during the grace period after a rotation, the previous one."""
    previous = None
    until = entity.webhook_secret_previous_until
    if entity.webhook_secret_previous and until is not None and until > at:
        previous = decrypt(entity.webhook_secret_previous)
    return decrypt(entity.webhook_secret), previous


def origin_of(url: str | None) -> str:
    """scheme://host:port of a URL: the unit of receiver health and concurrency."""
    try:
        parts = urlsplit(url or "")
        host, port = parts.hostname, parts.port
    except ValueError:
        return INVALID_ORIGIN
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        return INVALID_ORIGIN
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or (443 if scheme == 'https' else 80)}"


# --- backoff ------------------------------------------------------------------------------------------


def _jitter(delay: float) -> float:
    return delay * random.uniform(0.5, 1.0)


def retry_delay(attempt: int, s: Settings | None = None) -> float:
    """Seconds before retrying an event whose attempt number `attempt` (1 first) failed."""
    s = s or settings()
    return _jitter(min(s.webhook_retry_max, s.webhook_retry_base * 2 ** min(attempt - 1, 40)))


def breaker_delay(failures: int, s: Settings | None = None) -> float:
    """Seconds a receiver is left alone after `failures` consecutive failures (at least the threshold)."""
    s = s or settings()
    over = max(0, failures - s.webhook_breaker_threshold)
    return _jitter(min(s.webhook_retry_max, s.webhook_retry_base * 2 ** min(over, 40)))


def retry_after_seconds(value: str | None, at: datetime | None = None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds from `at`, or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return min(max(0.0, (when - (at or now())).total_seconds()), MAX_RETRY_AFTER)


# --- one POST -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None
    duration_ms: int | None = None
    counts_for_receiver: bool = True  # whether it says anything about the receiver's health

    @property
    def kind(self) -> Literal["delivered", "retry", "give_up"]:
        code = self.status_code
        if code is None:
            return "retry"  # no answer: network error, timeout, or our own trouble
        if 200 <= code < 300:
            return "delivered"
        if code == 429 or code >= 500:
            return "retry"
        return "give_up"


def _network_error(exc: requests.RequestException, timeout: float) -> str:
    """A short description of why no answer came. Never the URL: its query may hold the caller's token."""
    text = repr(exc)
    if isinstance(exc, requests.ConnectTimeout):
        return f"timeout: no connection within {CONNECT_TIMEOUT:g}s"
    if isinstance(exc, requests.Timeout):
        return f"timeout: no answer within {timeout:g}s"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if "Name or service not known" in text or "nodename nor servname" in text or "NameResolution" in text:
        return "connection error: the host name does not resolve"
    if "Connection refused" in text:
        return "connection error: connection refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text or "reset by peer" in text:
        return "connection error: closed without an answer"
    if isinstance(exc, requests.ConnectionError):
        return "connection error"
    return f"request error: {type(exc).__name__}"


def post(
    session: requests.Session, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> Outcome:
    """POST once; the answer's status (and Retry-After), or why none came. Reads at most a small part of
    the answer's body, and no longer than the timeout."""
    started = time.monotonic()
    try:
        with session.post(
            url,
            data=body,
            headers=headers,
            timeout=(min(CONNECT_TIMEOUT, timeout), timeout),
            stream=True,
            allow_redirects=False,
        ) as answer:
            deadline = started + timeout
            read = 0
            for chunk in answer.iter_content(8192):
                read += len(chunk)
                if read >= MAX_ANSWER_BYTES or time.monotonic() > deadline:
                    break
            return Outcome(
                status_code=answer.status_code,
                retry_after=retry_after_seconds(answer.headers.get("Retry-After"))
                if answer.status_code in (429, 503)
                else None,
                duration_ms=_ms(started),
            )
    except requests.RequestException as exc:
        return Outcome(error=_network_error(exc, timeout), duration_ms=_ms(started))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


# --- claiming due events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    attempt_id: int
    origin: str


@dataclass(slots=True)
class ClaimResult:
    claims: list[Claim] = field(default_factory=list)
    scanned: int = 0


def _candidates(conn: Connection, at: datetime, limit: int, origin: str | None) -> list[Any]:
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
        .limit(limit)
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


def _dialect_insert(table: Any) -> Any:
    if is_postgres():
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _lock_receivers(conn: Connection, origins: Iterable[str]) -> dict[str, Any]:
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


def _in_flight(conn: Connection, origins: Iterable[str], at: datetime) -> dict[str, int]:
    rows = conn.execute(
        select(a.receiver, func.count())
        .where(a.receiver.in_(sorted(set(origins))), a.finished_at.is_(None), a.lease_until > at)
        .group_by(a.receiver)
    )
    return {row[0]: int(row[1]) for row in rows}


def _deadline_passed(event_at: datetime, at: datetime, s: Settings) -> bool:
    return at >= event_at + timedelta(seconds=s.webhook_retry_for)


def claim(
    at: datetime | None = None, *, limit: int = BATCH, origin: str | None = None, defer_busy: bool = False
) -> ClaimResult:
    """Claim due events for delivery, in one transaction; at most `limit` looked at, only `origin`'s if
    given. Events of a blocked receiver are moved to the end of its block (or given up past their
    deadline); with `defer_busy`, those of a receiver already at its concurrency limit wait a moment, so
    that they do not fill every batch while other receivers' events wait behind them."""
    s = settings()
    at = at or now()
    result = ClaimResult()
    with transaction() as conn:
        rows = _candidates(conn, at, limit, origin)
        result.scanned = len(rows)
        if not rows:
            return result
        by_origin: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            by_origin[origin_of(row.callback_url)].append(row)
        unsent = _expire_leases(conn, [row.id for row in rows], at)
        attempts_done = {row.id: row.webhook_attempts - (1 if row.id in unsent else 0) for row in rows}
        receivers = _lock_receivers(conn, (o for o in by_origin if o != INVALID_ORIGIN))
        in_flight = _in_flight(conn, receivers, at)
        take: list[tuple[Any, str]] = []
        give_up: list[tuple[Any, str, str]] = []
        later: list[tuple[int, datetime]] = []
        for name, events in by_origin.items():
            if name == INVALID_ORIGIN:
                give_up += [(row, name, "callback_url refused: not a valid http(s) URL") for row in events]
                continue
            receiver = receivers[name]
            if receiver.blocked_until is not None and receiver.blocked_until > at:
                wait = (receiver.blocked_until - at).total_seconds()
                for row in events:
                    if _deadline_passed(row.at, at, s):
                        give_up.append((row, name, _unavailable(receiver)))
                    else:
                        spread = random.uniform(0, min(60.0, wait * 0.1))
                        later.append((row.id, receiver.blocked_until + timedelta(seconds=spread)))
                continue
            cap = 1 if receiver.failures >= s.webhook_breaker_threshold else max(1, s.webhook_per_receiver)
            free = max(0, cap - in_flight.get(name, 0))
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
                    {
                        "event_id": row.id,
                        "message_pk": row.message_pk,
                        "sequence": row.seq,
                        "attempt": attempts_done[row.id] + 1,
                        "receiver": name,
                        "at": at,
                        "lease_until": lease,
                    }
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


def _unavailable(receiver: Any) -> str:
    last = (
        f"HTTP {receiver.last_status_code}"
        if receiver.last_status_code
        else receiver.last_error or "no answer"
    )
    return f"given up: the receiver kept failing until the retry period ended (last: {last})"[:ERROR_LENGTH]


def _give_up_unsent(
    conn: Connection, items: Sequence[tuple[Any, str, str]], at: datetime, attempts_done: dict[int, int]
) -> None:
    """Give up events without posting them, each with an attempt row that says why."""
    conn.execute(
        insert(attempts_t),
        [
            {
                "event_id": row.id,
                "message_pk": row.message_pk,
                "sequence": row.seq,
                "attempt": attempts_done[row.id] + 1,
                "receiver": name,
                "at": at,
                "lease_until": at,
                "finished_at": at,
                "error": error[:ERROR_LENGTH],
            }
            for row, name, error in items
        ],
    )
    conn.execute(
        update(events_t)
        .where(e.id.in_([row.id for row, _, _ in items]))
        .values(webhook_state=FAILED, webhook_next_at=None, webhook_attempts=e.webhook_attempts + 1)
    )


# --- delivering claimed events ------------------------------------------------------------------------


@dataclass(slots=True)
class Job:
    attempt_id: int
    attempt: int
    event_id: int
    event_at: datetime
    origin: str
    url: str
    body: bytes
    secret: str | None  # None: it could not be read (decryption failed)
    previous_secret: str | None


def start(attempt_ids: Sequence[int], at: datetime | None = None) -> list[Job]:
    """The claims that are still ours, with their lease extended to cover the POST, ready to send."""
    s = settings()
    at = at or now()
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
            .join_from(attempts_t, events_t, e.id == a.event_id)
            .join(messages_t, m.pk == e.message_pk)
            .join(entities_t, entities_t.c.id == m.legal_entity_id)
            .where(a.id.in_(list(attempt_ids)))
            .order_by(e.id)
            .with_for_update(of=events_t)
        ).all()
        mine = [
            row
            for row in rows
            if row.finished_at is None
            and row.webhook_state == PENDING
            and row.webhook_attempts == row.attempt
        ]
        if not mine:
            return []
        lease = at + timedelta(seconds=CONNECT_TIMEOUT + s.webhook_timeout + LEASE_MARGIN)
        ids = [row.attempt_id for row in mine]
        conn.execute(update(attempts_t).where(a.id.in_(ids)).values(at=at, started_at=at, lease_until=lease))
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


def attempt(job: Job, session: requests.Session) -> Outcome:
    """Check the URL again (its name may resolve elsewhere now), sign, POST."""
    if job.secret is None:
        return Outcome(
            error="internal error: the entity's webhook secret cannot be read", counts_for_receiver=False
        )
    try:
        check_callback_url(job.url)
    except UrlError as exc:
        return Outcome(status_code=None, error=f"callback_url refused: {exc}", counts_for_receiver=False)
    headers = signed_headers(job.secret, job.previous_secret, job.body, int(time.time()))
    return post(session, job.url, job.body, headers, settings().webhook_timeout)


def _refused(outcome: Outcome) -> bool:
    return outcome.error is not None and outcome.error.startswith("callback_url refused")


def record(job: Job, outcome: Outcome, at: datetime | None = None) -> str:
    """Store an attempt's answer and what follows: delivered, given up, or the time of the next try.
    Returns the event's webhook state."""
    s = settings()
    at = at or now()
    with transaction() as conn:
        event = conn.execute(
            select(e.webhook_state, e.webhook_attempts).where(e.id == job.event_id).with_for_update()
        ).first()
        # The answer is written even when the claim was presumed lost meanwhile: it is the truth.
        conn.execute(
            update(attempts_t)
            .where(a.id == job.attempt_id)
            .values(
                finished_at=func.coalesce(a.finished_at, at),
                status_code=outcome.status_code,
                error=outcome.error[:ERROR_LENGTH] if outcome.error else None,
                duration_ms=outcome.duration_ms,
            )
        )
        blocked = _update_receiver(conn, job.origin, outcome, at, s) if outcome.counts_for_receiver else None
        if event is None or event.webhook_state != PENDING or event.webhook_attempts != job.attempt:
            return event.webhook_state if event is not None else FAILED
        kind = outcome.kind
        if kind == "retry" and (_refused(outcome) or _deadline_passed(job.event_at, at, s)):
            kind = "give_up"
        if kind == "delivered":
            values: dict[str, Any] = {"webhook_state": DELIVERED, "webhook_next_at": None}
        elif kind == "give_up":
            values = {"webhook_state": FAILED, "webhook_next_at": None}
        else:
            delay = retry_delay(job.attempt, s)
            if outcome.retry_after is not None:
                delay = max(delay, outcome.retry_after)
            next_at = at + timedelta(seconds=delay)
            if blocked is not None:
                next_at = max(next_at, blocked)
            values = {"webhook_next_at": next_at}
        conn.execute(update(events_t).where(e.id == job.event_id).values(**values))
        return values.get("webhook_state", PENDING)


def _update_receiver(
    conn: Connection, origin: str, outcome: Outcome, at: datetime, s: Settings
) -> datetime | None:
    """Count the outcome into the receiver's health; when it is now blocked until."""
    receiver = _lock_receivers(conn, [origin])[origin]
    values: dict[str, Any] = {
        "last_attempt_at": at,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error[:ERROR_LENGTH] if outcome.error else None,
    }
    if outcome.kind == "retry":
        failures = receiver.failures + 1
        blocked = receiver.blocked_until
        wait = None
        if outcome.retry_after is not None:
            wait = outcome.retry_after
        elif failures >= s.webhook_breaker_threshold:
            wait = breaker_delay(failures, s)
        if wait is not None:
            until = at + timedelta(seconds=wait)
            blocked = until if blocked is None or blocked < until else blocked
        values.update(failures=failures, blocked_until=blocked, last_failure_at=at)
    else:
        # It answered (2xx, or a 4xx about this one event): it is up.
        values.update(failures=0, blocked_until=None)
        if outcome.kind == "delivered":
            values["last_success_at"] = at
    conn.execute(update(receivers_t).where(r.origin == origin).values(**values))
    return values["blocked_until"]


def release(job: Job, at: datetime | None = None) -> None:
    """Give back a claim that was not posted: no attempt is recorded, the event waits for its receiver."""
    at = at or now()
    with transaction() as conn:
        event = conn.execute(
            select(e.webhook_state, e.webhook_attempts).where(e.id == job.event_id).with_for_update()
        ).first()
        blocked = conn.execute(select(r.blocked_until).where(r.origin == job.origin)).scalar()
        deleted = conn.execute(
            delete(attempts_t).where(a.id == job.attempt_id, a.finished_at.is_(None))
        ).rowcount
        if (
            deleted
            and event is not None
            and event.webhook_state == PENDING
            and event.webhook_attempts == job.attempt
        ):
            next_at = blocked if blocked is not None and blocked > at else at
            conn.execute(
                update(events_t)
                .where(e.id == job.event_id)
                .values(webhook_attempts=e.webhook_attempts - 1, webhook_next_at=next_at)
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
            conn.execute(
                update(events_t)
                .where(e.id == row.event_id, e.webhook_state == PENDING, e.webhook_attempts == row.attempt)
                .values(webhook_attempts=e.webhook_attempts - 1, webhook_next_at=at)
            )


@dataclass
class _Round:
    """What one task knows of its receiver while its POSTs run: whether to stop sending to it."""

    threshold: int
    failures: int = 0
    stop: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, outcome: Outcome) -> None:
        if not outcome.counts_for_receiver:
            return
        with self.lock:
            if outcome.kind == "retry":
                self.failures += 1
                if self.failures >= self.threshold or outcome.retry_after is not None:
                    self.stop = True
            else:
                self.failures = 0


def _run_one(job: Job, session: requests.Session, state: _Round) -> str:
    if state.stop:
        release(job)
        return "released"
    outcome = attempt(job, session)
    state.note(outcome)
    if outcome.kind != "delivered":
        log.info(
            "webhook to %s: attempt %d %s",
            job.origin,
            job.attempt,
            f"HTTP {outcome.status_code}" if outcome.status_code else outcome.error,
        )
    return record(job, outcome)


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


def new_session() -> requests.Session:
    session = requests.Session()
    # A receiver's cookies are not sent back to it (nor to another receiver): each POST stands alone.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=max(1, settings().webhook_per_receiver)
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def deliver(attempt_ids: Sequence[int], budget: float = TASK_BUDGET) -> int:
    """The delivery task: post the claimed events, then keep pulling due events of the same receiver
    (the next status of the same messages included) while it answers and the budget lasts. Returns the
    number of POSTs made."""
    started = time.monotonic()
    posted = 0
    with new_session() as session:
        jobs = start(attempt_ids)
        while jobs:
            states = run(jobs, session)
            posted += sum(1 for st in states if st != "released")
            origin = jobs[0].origin
            # Pull more only from a receiver that just answered every POST; a failing one waits.
            if any(st in ("released", PENDING) for st in states) or time.monotonic() - started > budget:
                break
            more = claim(origin=origin).claims
            jobs = start([c.attempt_id for c in more]) if more else []
    return posted


# --- the sweep ----------------------------------------------------------------------------------------


def sweep(publish: Any = None) -> int:
    """Claim every due event (in batches, within a time budget) and hand each receiver's claims to a
    delivery task. Returns the number of events claimed."""
    publish = publish or publish_deliveries
    total, started = 0, time.monotonic()
    while time.monotonic() - started < SWEEP_BUDGET:
        result = claim(defer_busy=True)
        if result.claims:
            publish(result.claims)
            total += len(result.claims)
        if result.scanned < BATCH:
            break
    return total


def publish_deliveries(claims: Sequence[Claim]) -> None:
    from smsqueue.queues import Queues
    from smsqueue.tasks.webhooks import deliver_webhooks

    groups: dict[str, list[int]] = defaultdict(list)
    for c in claims:
        groups[c.origin].append(c.attempt_id)
    for origin, ids in groups.items():
        try:
            deliver_webhooks.apply_async(
                (ids,), queue=Queues.WEBHOOKS, routing_key=Queues.WEBHOOKS, retry=False
            )
        except Exception as exc:
            log.warning("could not publish %d webhook(s) for %s: %s", len(ids), origin, type(exc).__name__)
            try:
                release_claims(ids)
            except Exception:
                log.exception("could not release webhook claims; their lease will expire")


def attempts_of(conn: Connection, message_pk: int, at: datetime | None = None) -> list[dict[str, Any]]:
    """Delivery attempts of a message for the admin API, in order; those in flight are left out."""
    at = at or now()
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
