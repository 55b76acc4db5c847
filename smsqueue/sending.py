"""The sender: claim due messages, ask the rules, call the provider, record what happened.

Three steps, and no database connection is held across the provider's HTTP call:
1. claim (one transaction): lock the due rows, pick each one's provider, ask the rules, take rate-limit
   tokens, and move the admitted ones to `sending`; the others to `scheduled`, `rejected`, `failed` or
   `expired`, or leave them `queued` for their token;
2. call each provider;
3. record (one transaction): `sent`, or a retry, a failover, or `failed`.
A crash between 1 and 3 leaves the message `sending` with a due `next_attempt_at`: the reconcile sweep
asks the provider whether it has it, and never blindly sends again.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, select, update

from smsqueue import metrics, ratelimit
from smsqueue.clock import now
from smsqueue.config import settings
from smsqueue.db import transaction
from smsqueue.messages import Moved, messages_t, transition, transition_each, transition_many
from smsqueue.models import EntityProvider, LegalEntity, Provider
from smsqueue.providers.base import (
    OutgoingSMS,
    PermanentProviderError,
    ProviderError,
    SendResult,
    TransientProviderError,
)
from smsqueue.rules import policy
from smsqueue.rules.provider_clients import callback_token_of, client_of
from smsqueue.statuses import Reason, Status

log = logging.getLogger(__name__)
m = messages_t.c

# A doorbell that comes a little early (clock skew between processes) still finds its message due.
DUE_TOLERANCE = timedelta(milliseconds=500)


# --- context: entities, their providers ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Link:
    provider: Any  # a `providers` row
    priority: int
    sender: str | None
    usable: bool  # the link and the provider are both enabled


@dataclass(slots=True)
class Context:
    entities: dict[int, Any]
    links: dict[int, list[Link]]  # by entity id, in priority order

    def link(self, entity_id: int, provider_id: int) -> Link | None:
        return next((x for x in self.links.get(entity_id, []) if x.provider.id == provider_id), None)


def load_context(conn: Connection, entity_ids: Iterable[int]) -> Context:
    ids = sorted(set(entity_ids))
    if not ids:
        return Context({}, {})
    e, ep, p = LegalEntity.__table__, EntityProvider.__table__, Provider.__table__
    entities = {row.id: row for row in conn.execute(select(e).where(e.c.id.in_(ids)))}
    links: dict[int, list[Link]] = defaultdict(list)
    rows = conn.execute(
        select(ep.c.legal_entity_id, ep.c.priority, ep.c.sender, ep.c.enabled.label("link_enabled"), p)
        .join(p, p.c.id == ep.c.provider_id)
        .where(ep.c.legal_entity_id.in_(ids))
        .order_by(ep.c.legal_entity_id, ep.c.priority, p.c.id)
    )
    for row in rows:
        usable = bool(row.link_enabled and row.enabled)
        links[row.legal_entity_id].append(Link(row, row.priority, row.sender, usable))
    return Context(entities, dict(links))


@dataclass(frozen=True, slots=True)
class NoProvider:
    status: Status
    reason: str


def choose_link(ctx: Context, message: Any, excluded: Iterable[int] | None = None) -> Link | NoProvider:
    """The provider a message goes through now: the one it asked for, else the entity's first usable
    one by priority that it has not given up on (`excluded`, by default the message's own list)."""
    links = ctx.links.get(message.legal_entity_id, [])
    excluded = set((message.excluded_providers or ()) if excluded is None else excluded)
    if message.requested_provider_id is not None:
        link = ctx.link(message.legal_entity_id, message.requested_provider_id)
        if link is None or not link.usable:
            return NoProvider(Status.REJECTED, Reason.PROVIDER_NOT_ALLOWED)
        if link.provider.id in excluded:
            return NoProvider(Status.FAILED, Reason.RETRIES_EXHAUSTED)
        return link
    usable = [x for x in links if x.usable]
    if not usable:
        return NoProvider(Status.FAILED, Reason.NO_PROVIDER_AVAILABLE)
    for link in usable:
        if link.provider.id not in excluded:
            return link
    return NoProvider(Status.FAILED, Reason.RETRIES_EXHAUSTED)


# --- step 1: claim ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Claimed:
    message: Any  # the `messages` row as it was claimed
    link: Link
    sender: str | None
    attempt: int
    start_by: datetime | None = None  # the call is not started after this (see reconcile_window)


@dataclass(slots=True)
class Followups:
    """Doorbells to ring once the transaction has committed: (message pk, seconds from now)."""

    later: list[tuple[int, float]] = field(default_factory=list)

    def add(self, pk: int, delay: float) -> None:
        self.later.append((pk, max(0.0, delay)))


def lock_due(conn: Connection, pks: Sequence[int], at: datetime) -> list[Any]:
    stmt = (
        select(messages_t)
        .where(m.pk.in_(list(pks)), m.status == Status.QUEUED.value, m.next_attempt_at <= at + DUE_TOLERANCE)
        .order_by(m.pk)
        .with_for_update(skip_locked=True)
    )
    return list(conn.execute(stmt))


def claim(conn: Connection, pks: Sequence[int], at: datetime, followups: Followups) -> list[Claimed]:
    """Step 1, in the caller's transaction. Returns the messages now `sending`."""
    rows = lock_due(conn, pks, at)
    if not rows:
        return []
    ctx = load_context(conn, (r.legal_entity_id for r in rows))
    candidates: list[tuple[Any, Link]] = []
    for row in rows:
        if row.valid_until is not None and row.valid_until <= at:
            transition(
                conn,
                row.pk,
                Status.EXPIRED,
                expected={Status.QUEUED},
                at=at,
                values={"next_attempt_at": None},
            )
            continue
        choice = choose_link(ctx, row)
        if isinstance(choice, NoProvider):
            transition(
                conn,
                row.pk,
                choice.status,
                reason=choice.reason,
                expected={Status.QUEUED},
                at=at,
                values={"next_attempt_at": None},
            )
            continue
        candidates.append((row, choice))
    admitted = _take_tokens(conn, candidates, at, followups)
    decisions = policy.decide_many(
        conn, [(row, ctx.entities[row.legal_entity_id]) for row, _ in admitted], at
    )
    claimed: list[Claimed] = []
    for (row, link), decision in zip(admitted, decisions, strict=True):
        if isinstance(decision, policy.Reject):
            transition(
                conn,
                row.pk,
                Status.REJECTED,
                reason=decision.reason,
                expected={Status.QUEUED},
                at=at,
                values={"next_attempt_at": None},
            )
            continue
        if isinstance(decision, policy.Defer):
            until = decision.until if row.valid_until is None else min(decision.until, row.valid_until)
            transition(
                conn,
                row.pk,
                Status.SCHEDULED,
                reason=decision.reason,
                expected={Status.QUEUED},
                at=at,
                values={"send_at": decision.until, "next_attempt_at": until},
            )
            continue
        claimed.append(Claimed(row, link, sender_for(row, link), row.attempts + 1))
    _mark_sending(conn, claimed, at)
    return claimed


def sender_for(message: Any, link: Link) -> str | None:
    """The sender name this provider gets: the caller's own (`messages.sender`, which holds nothing
    else until the message is sent), else this provider's link's, else the provider's setting. Chosen
    anew at every claim, so a provider taking over never gets the name registered with the one before."""
    return message.sender or link.sender or (link.provider.settings or {}).get("sender")


def _take_tokens(
    conn: Connection, candidates: list[tuple[Any, Link]], at: datetime, followups: Followups
) -> list[tuple[Any, Link]]:
    """Rate limits: the messages that got a token go on; the others stay `queued`, due when their
    token will be there (no event: waiting for a token is not a change of status)."""
    by_provider: dict[int, list[tuple[Any, Link]]] = defaultdict(list)
    for row, link in candidates:
        by_provider[link.provider.id].append((row, link))
    admitted: list[tuple[Any, Link]] = []
    for group in by_provider.values():
        provider = group[0][1].provider
        rate = provider.rate_limit_per_second
        try:
            grant = ratelimit.take(provider.code, rate, len(group))
        except Exception:
            log.warning("rate limiter unreachable for provider %s; holding its messages", provider.code)
            grant = ratelimit.Grant(0, 5.0)
        admitted += group[: grant.granted]
        waiting = group[grant.granted :]
        for i, (row, _) in enumerate(waiting):
            # Spread the waiting ones over the time their tokens take to come back.
            delay = grant.wait + (i / rate if rate else 0.0)
            conn.execute(
                update(messages_t)
                .where(m.pk == row.pk, m.status == Status.QUEUED.value)
                .values(next_attempt_at=at + timedelta(seconds=delay))
            )
            followups.add(row.pk, delay)
    return admitted


def _mark_sending(conn: Connection, claimed: list[Claimed], at: datetime) -> None:
    """Move the admitted messages to `sending`, due for reconciliation if nothing is recorded in time."""
    reconcile_at = at + timedelta(seconds=reconcile_window(claimed))
    for c in claimed:
        c.start_by = reconcile_at - timedelta(seconds=call_bound(c.link.provider) + RECORD_MARGIN)
    groups: dict[int, list[Claimed]] = defaultdict(list)
    for c in claimed:
        groups[c.link.provider.id].append(c)
    moved_pks: set[int] = set()
    for provider_id, group in groups.items():
        moved = transition_many(
            conn,
            [c.message.pk for c in group],
            Status.SENDING,
            expected={Status.QUEUED},
            at=at,
            detail={"provider": group[0].link.provider.code},
            values={
                "provider_id": provider_id,
                "attempts": m.attempts + 1,
                "claimed_at": at,
                "next_attempt_at": reconcile_at,
            },
        )
        moved_pks.update(x.pk for x in moved)
    claimed[:] = [c for c in claimed if c.message.pk in moved_pks]


def reconcile_window(claimed: Sequence[Claimed]) -> float:
    """Seconds after the claim when a message still `sending` is taken for stalled.

    The reconcile sweep must never look at a message whose call may still be going on: asked too early,
    a provider that has not got the request yet says "no such message" and the message would be sent
    twice; one that cannot be asked would be `failed` though its answer is still coming. So the window
    holds one whole call of the batch's slowest provider (connect plus read timeout) after a short wait
    for a free call thread, and a call that could no longer end inside it is not started at all
    (`start_by`, checked in `call`: a transient `not_started`, retried like any other)."""
    if not claimed:
        return settings().stalled_sending_after
    slowest = max(call_bound(c.link.provider) for c in claimed)
    return max(settings().stalled_sending_after, slowest + START_SLACK + RECORD_MARGIN)


def call_bound(provider: Any) -> float:
    """The longest one send call to this provider can take (base.ProviderClient.http: a connect timeout
    of min(timeout, 5 s), then the read timeout)."""
    timeout = float(provider.timeout_seconds)
    return timeout + min(timeout, CONNECT_TIMEOUT_MAX)


CONNECT_TIMEOUT_MAX = 5.0
START_SLACK = 5.0  # how long a call may wait for a free call thread, at least
RECORD_MARGIN = 2.0  # recording the answer after the call


# --- step 2: call -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    claimed: Claimed
    result: SendResult | None = None
    error: ProviderError | None = None
    seconds: float = 0.0


def outgoing(message: Any, sender: str | None, provider: Any, at: datetime) -> OutgoingSMS:
    ttl = None
    if message.valid_until is not None:
        ttl = max(60, int((message.valid_until - at).total_seconds()))
    report_url = None
    client = client_of(provider)
    if client.pushes_reports:
        token = callback_token_of(provider)
        report_url = f"{settings().public_url}/api/v1/providers/{provider.code}/dlr?token={token}"
    return OutgoingSMS(
        message_id=str(message.id),
        ref=message.pk,
        to=message.recipient,
        text=message.text,
        sender=sender,
        report_url=report_url,
        ttl_seconds=ttl,
    )


def call(claimed: Claimed, at: datetime) -> Outcome:
    provider = claimed.link.provider
    started = time.monotonic()
    outcome = Outcome(claimed)
    if claimed.start_by is not None and at > claimed.start_by:
        # The batch's earlier calls took so long that this one might still be going on when the
        # reconcile sweep takes the message for stalled: do not start it; it is retried.
        outcome.error = TransientProviderError("no time left to call the provider", code="not_started")
        return outcome
    try:
        client = client_of(provider)
        outcome.result = client.send(outgoing(claimed.message, claimed.sender, provider, at))
    except ProviderError as exc:
        outcome.error = exc
    except Exception as exc:  # a bug or an unexpected answer: treat as ambiguous, never resend blindly
        log.exception("provider %s client failed unexpectedly", provider.code)
        outcome.error = TransientProviderError(f"client error: {type(exc).__name__}", may_have_sent=True)
    outcome.seconds = time.monotonic() - started
    labels = {"provider": provider.code}
    metrics.observe("smsqueue_provider_send_seconds", labels, outcome.seconds, metrics.SEND_SECONDS_BUCKETS)
    if outcome.error is not None:
        code = outcome.error.code or outcome.error.default_code
        metrics.inc("smsqueue_provider_errors_total", {**labels, "code": code})
    return outcome


_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None


def call_all(claimed: Sequence[Claimed]) -> list[Outcome]:
    """Provider calls are network waits: a batch's calls overlap on a small thread pool."""
    global _pool, _pool_pid
    if len(claimed) == 1:
        return [call(claimed[0], now())]
    if _pool is None or _pool_pid != os.getpid():
        _pool, _pool_pid = (
            ThreadPoolExecutor(max_workers=CALL_THREADS, thread_name_prefix="send"),
            os.getpid(),
        )
    return list(_pool.map(lambda c: call(c, now()), claimed))


CALL_THREADS = 8


# --- step 3: record -----------------------------------------------------------------------------------


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, +-20 %."""
    s = settings()
    delay = min(s.retry_base_seconds * (2 ** max(0, attempt - 1)), s.retry_max_seconds)
    delay *= random.uniform(0.8, 1.2)
    return max(delay, retry_after or 0.0)


def record(
    conn: Connection, outcomes: Sequence[Outcome], ctx: Context, at: datetime, followups: Followups
) -> None:
    sent = [o for o in outcomes if o.result is not None]
    record_sent_many(
        conn,
        [(o.claimed.message, o.claimed.link.provider, o.result) for o in sent],
        at,
        senders={o.claimed.message.pk: o.claimed.sender for o in sent},
    )
    for outcome in outcomes:
        if outcome.result is not None:
            continue
        if isinstance(outcome.error, TransientProviderError) and outcome.error.may_have_sent:
            record_ambiguous(conn, outcome, at)
        else:
            assert outcome.error is not None
            record_failure(
                conn,
                outcome.claimed.message,
                outcome.claimed.link,
                outcome.claimed.attempt,
                outcome.error,
                ctx,
                at,
                followups,
            )


def record_sent(conn: Connection, message: Any, provider: Any, result: SendResult, at: datetime) -> None:
    record_sent_many(conn, [(message, provider, result)], at)


def record_sent_many(
    conn: Connection,
    sent: Sequence[tuple[Any, Any, SendResult]],
    at: datetime,
    senders: Mapping[int, str | None] | None = None,
) -> None:
    """Messages the providers accepted: `sent`, with the provider's id and the sender it was sent with
    (`senders` by message pk, as claimed; chosen again from the links when not given), in one statement
    for them all."""
    if not sent:
        return
    s = settings()
    if senders is None:
        senders = _senders_of(conn, [(message, provider) for message, provider, _ in sent])
    moved = transition_each(
        conn,
        [
            (
                message.pk,
                {
                    "provider_id": provider.id,
                    "provider_message_id": result.provider_message_id,
                    "sender": senders[message.pk],
                },
                {"provider": provider.code, "provider_message_id": result.provider_message_id},
            )
            for message, provider, result in sent
        ],
        Status.SENT,
        expected={Status.SENDING},
        at=at,
        values={
            "sent_at": at,
            "next_attempt_at": None,
            "next_status_check_at": at + timedelta(seconds=s.status_check_first),
            "status_checks": 0,
        },
    )
    moved_pks = {mv.pk for mv in moved}
    for message, provider, result in sent:
        if message.pk not in moved_pks:
            # A delivery report overtook us and already moved it on: keep the provider's id all the same.
            conn.execute(
                update(messages_t)
                .where(m.pk == message.pk, m.provider_message_id.is_(None))
                .values(
                    provider_id=provider.id,
                    provider_message_id=result.provider_message_id,
                    sent_at=at,
                    # Never onto a message waiting to be sent again: there it is the caller's own.
                    sender=case((m.status.in_(WAITING), m.sender), else_=senders[message.pk]),
                )
            )
        else:
            metrics.inc("smsqueue_messages_sent_total", {"provider": provider.code})
            latency = (at - message.created_at).total_seconds()
            metrics.observe("smsqueue_send_latency_seconds", {}, latency, metrics.SEND_SECONDS_BUCKETS)
        if result.update is not None and result.update.status is not None:
            apply_status(
                conn,
                message.pk,
                result.update.status,
                result.update.reason,
                at,
                provider_status=result.update.provider_status,
            )
    # Delivery reports that came before these answers, kept until the provider's ids were known.
    from smsqueue.reports import apply_early_many  # reports applies statuses through this module

    apply_early_many(
        conn, [(message.pk, provider, result.provider_message_id) for message, provider, result in sent], at
    )


def _senders_of(conn: Connection, sent: Sequence[tuple[Any, Any]]) -> dict[int, str | None]:
    """The sender each (message, provider) gets, from the links as they are now."""
    ctx = load_context(conn, (message.legal_entity_id for message, _ in sent))
    senders: dict[int, str | None] = {}
    for message, provider in sent:
        link = ctx.link(message.legal_entity_id, provider.id) or Link(provider, 0, None, False)
        senders[message.pk] = sender_for(message, link)
    return senders


WAITING = (Status.QUEUED.value, Status.SCHEDULED.value)


def record_ambiguous(conn: Connection, outcome: Outcome, at: datetime) -> None:
    """The request went out and no answer came: the provider may have the message. Where it can be
    asked, the reconcile sweep asks it soon; where it cannot, end it `failed` rather than risk a
    second SMS."""
    message, provider = outcome.claimed.message, outcome.claimed.link.provider
    if client_of(provider).can_lookup:
        conn.execute(
            update(messages_t)
            .where(m.pk == message.pk, m.status == Status.SENDING.value)
            .values(next_attempt_at=at + timedelta(seconds=RECONCILE_AMBIGUOUS_AFTER))
        )
        return
    error = outcome.error.reason if outcome.error else None
    leave_sending(
        conn,
        message,
        Status.FAILED,
        reason=Reason.UNKNOWN_OUTCOME,
        at=at,
        values={"next_attempt_at": None},
        detail={"provider": provider.code, "error": error},
    )


RECONCILE_AMBIGUOUS_AFTER = 5.0


def record_failure(
    conn: Connection,
    message: Any,
    link: Link,
    attempt: int,
    error: ProviderError,
    ctx: Context,
    at: datetime,
    followups: Followups,
) -> None:
    """A provider call that did not hand the message over: retry, fail over, or fail.

    A number problem ends it `failed` (no provider can reach a bad number). Another permanent refusal
    gives this provider up at once: the account's (bad login, no funds) or this message's here (a text
    too long for it, no route, a sender it does not know), which the next provider may well take. A
    transient error is retried here up to `max_attempts_per_provider`, then the next provider takes it."""
    provider = link.provider
    detail = {"provider": provider.code, "attempt": attempt, "error": error.message[:200]}
    if isinstance(error, PermanentProviderError) and error.number_problem:
        leave_sending(
            conn,
            message,
            Status.FAILED,
            reason=error.reason,
            at=at,
            # The reason may be ours (`invalid_number`): the provider's own code stays on record.
            detail={**detail, "number_problem": error.number_problem, "error_code": error.code},
            values={"next_attempt_at": None},
        )
        return
    retry_here = isinstance(error, TransientProviderError) and attempt < settings().max_attempts_per_provider
    if retry_here:
        assert isinstance(error, TransientProviderError)
        delay = backoff(attempt, error.retry_after)
        if message.valid_until is not None:
            # Due again no later than just after its expiry (a doorbell may come a little early), so a
            # retry after it never holds the `expired` back.
            expires_in = (message.valid_until + DUE_TOLERANCE - at).total_seconds()
            delay = min(delay, max(0.0, expires_in))
        moved = leave_sending(
            conn,
            message,
            Status.QUEUED,
            reason=error.reason,
            at=at,
            detail=detail,
            values={"next_attempt_at": at + timedelta(seconds=delay)},
        )
        if moved:
            followups.add(message.pk, delay)
        return
    # Give this provider up: the next one by priority takes it, if there is one.
    excluded = sorted({*(message.excluded_providers or ()), provider.id})
    nxt = choose_link(ctx, message, excluded)
    if isinstance(nxt, NoProvider):
        final_reason = Reason.RETRIES_EXHAUSTED if isinstance(error, TransientProviderError) else error.reason
        leave_sending(
            conn,
            message,
            Status.FAILED,
            reason=final_reason,
            at=at,
            detail={**detail, "last_error": error.reason},
            values={"next_attempt_at": None, "excluded_providers": excluded},
        )
        return
    moved = leave_sending(
        conn,
        message,
        Status.QUEUED,
        reason=error.reason,
        at=at,
        detail={**detail, "failover_to": nxt.provider.code},
        values={"next_attempt_at": at, "excluded_providers": excluded, "attempts": 0},
    )
    if moved:
        followups.add(message.pk, 0.0)


def leave_sending(conn: Connection, message: Any, to: Status, **kwargs: Any) -> Moved | None:
    """Move a message that no provider took out of `sending`, and un-count it from the 230-FZ limits,
    only if it is still `sending`: a delivery report may have moved it on meanwhile (an SMSC report
    finds its message by our ref while the call is out), and a delivered SMS stays counted.

    A message ending `unknown_outcome` stays counted: it may well have reached the person, and the law
    counts what was sent; counting one SMS too many is the safe side of a 230-FZ limit."""
    moved = transition(conn, message.pk, to, expected={Status.SENDING}, **kwargs)
    if moved is not None and kwargs.get("reason") != Reason.UNKNOWN_OUTCOME:
        policy.release(conn, message)
    return moved


def apply_status(
    conn: Connection,
    pk: int,
    status: Status,
    reason: str | None,
    at: datetime,
    *,
    provider_status: str | None = None,
    source: str = "send",
) -> bool:
    """Record a provider's status (from an answer, a poll or a report). Never leaves a final status."""
    if status in (Status.SENT, Status.SENDING, Status.QUEUED, Status.SCHEDULED):
        return False
    detail = {"source": source, **({"provider_status": provider_status} if provider_status else {})}
    moved = transition(
        conn,
        pk,
        status,
        reason=reason,
        expected={Status.SENT, Status.SENDING},
        at=at,
        detail=detail,
        values={"next_status_check_at": None, "next_attempt_at": None},
    )
    return moved is not None


# --- the whole send -----------------------------------------------------------------------------------


def process(pks: Sequence[int]) -> Followups:
    """Send the due ones among these messages. Returns the doorbells to ring after it (already committed)."""
    followups = Followups()
    at = now()
    with transaction() as conn:
        claimed = claim(conn, pks, at, followups)
    if not claimed:
        return followups
    outcomes = call_all(claimed)
    at = now()
    with transaction() as conn:
        ctx = load_context(conn, (o.claimed.message.legal_entity_id for o in outcomes))
        record(conn, outcomes, ctx, at, followups)
    return followups
