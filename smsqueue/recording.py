"""Step 3 of a send: what a provider's answer does to the message (see smsqueue.sending): `sent`, a
retry, a failover, or `failed`. The reconcile sweep records what a lookup found through the same code.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, update

from smsqueue import metrics, pauses
from smsqueue.config import settings
from smsqueue.links import Context, Link, NoProvider, choose_link, load_context, sender_for
from smsqueue.messages import (
    DUE_TOLERANCE,
    Followups,
    Moved,
    ProviderStatus,
    apply_status,
    messages_t,
    ring_after_grace,
    transition,
    transition_each,
)
from smsqueue.provider_calls import CallResult
from smsqueue.providers.base import PermanentProviderError, ProviderError, SendResult, TransientProviderError
from smsqueue.reports import apply_early_many
from smsqueue.rules import policy
from smsqueue.rules.provider_clients import client_of
from smsqueue.statuses import Reason, Status

m = messages_t.c


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, +-20 %."""
    s = settings()
    delay = min(s.retry_base_seconds * (2 ** max(0, attempt - 1)), s.retry_max_seconds)
    delay *= random.uniform(0.8, 1.2)
    return max(delay, retry_after or 0.0)


def record(conn: Connection, calls: Sequence[CallResult], at: datetime, followups: Followups) -> None:
    """Step 3: what the calls came to, in the caller's transaction."""
    sent = [o for o in calls if o.result is not None]
    record_sent_many(
        conn,
        [(o.claimed.message, o.claimed.link.provider, o.result) for o in sent],
        at,
        senders={o.claimed.message.pk: o.claimed.sender for o in sent},
    )
    _pause_or_resume(conn, calls, at)
    ctx: Context | None = None  # read only when a failure needs the next provider: most batches have none
    for call in calls:
        if call.result is not None:
            continue
        if isinstance(call.error, TransientProviderError) and call.error.may_have_sent:
            record_ambiguous(conn, call, at)
        else:
            assert call.error is not None
            if ctx is None:
                ctx = load_context(
                    conn, (c.claimed.message.legal_entity_id for c in calls if c.result is None)
                )
            record_failure(
                conn,
                call.claimed.message,
                call.claimed.link,
                call.claimed.attempt,
                call.error,
                ctx,
                at,
                followups,
            )


def _pause_or_resume(conn: Connection, calls: Sequence[CallResult], at: datetime) -> None:
    """A provider-wide refusal pauses its provider (smsqueue.pauses); a probe that got through, or was
    refused for a reason of its own message, lifts the pause. A probe with no answer leaves its hold to
    run out: the next claim probes again."""
    for call in calls:
        provider = call.claimed.link.provider
        error = call.error
        if error is not None and error.provider_wide:
            pauses.pause(conn, provider, error.reason, at, probe=call.claimed.probe)
        elif call.claimed.probe and not (isinstance(error, TransientProviderError) and error.may_have_sent):
            pauses.resume(conn, provider)


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
            update_ = result.update
            apply_status(
                conn,
                ProviderStatus(message.pk, update_.status, update_.reason, update_.provider_status),
                at,
                "send",
            )
    # Delivery reports that came before these answers, kept until the provider's ids were known.
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


def record_ambiguous(conn: Connection, call: CallResult, at: datetime) -> None:
    """The request went out and no answer came: the provider may have the message. Where it can be
    asked, the reconcile sweep asks it soon; where it cannot, end it `failed` rather than risk a
    second SMS."""
    message, provider = call.claimed.message, call.claimed.link.provider
    if client_of(provider).can_lookup:
        conn.execute(
            update(messages_t)
            .where(m.pk == message.pk, m.status == Status.SENDING.value)
            .values(next_attempt_at=at + timedelta(seconds=RECONCILE_AMBIGUOUS_AFTER))
        )
        return
    error = call.error.reason if call.error else None
    fail_unknown_outcome(conn, message, at, {"provider": provider.code, "error": error})


def fail_unknown_outcome(conn: Connection, message: Any, at: datetime, detail: dict[str, Any]) -> None:
    """End a `sending` message whose fate at the provider cannot be known: `failed`, `unknown_outcome`."""
    leave_sending(
        conn,
        message,
        Status.FAILED,
        reason=Reason.UNKNOWN_OUTCOME,
        at=at,
        values={"next_attempt_at": None},
        detail=detail,
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
    transient error is retried here up to `max_attempts_per_provider`, then the next provider takes it;
    a provider-wide one (SMSC's blocked address) gives the provider up at once, like a permanent one."""
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
    # A provider-wide error (the provider is paused for it, smsqueue.pauses) is no reason to retry here.
    retry_here = (
        isinstance(error, TransientProviderError)
        and not error.provider_wide
        and attempt < settings().max_attempts_per_provider
    )
    if retry_here:
        assert isinstance(error, TransientProviderError)
        due = at + timedelta(seconds=backoff(attempt, error.retry_after))
        if message.valid_until is not None:
            # Due again no later than just after its expiry (a doorbell may come a little early), so a
            # retry after it never holds the `expired` back.
            due = max(at, min(due, message.valid_until + DUE_TOLERANCE))
        leave_sending(
            conn,
            message,
            Status.QUEUED,
            reason=error.reason,
            at=at,
            detail=detail,
            # Due then, and rung by the sweep then: no countdown in the broker, which may lose it.
            values={"next_attempt_at": due, "ring_at": due},
        )
        return
    # Give this provider up: the next one by priority takes it, if there is one.
    excluded = sorted({*(message.excluded_providers or ()), provider.id})
    nxt = choose_link(ctx, message, excluded)
    if isinstance(nxt, NoProvider):
        exhausted = isinstance(error, TransientProviderError) and not error.provider_wide
        final_reason = Reason.RETRIES_EXHAUSTED if exhausted else error.reason
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
        values={
            "next_attempt_at": at,
            "ring_at": ring_after_grace(at),
            "excluded_providers": excluded,
            "attempts": 0,
        },
    )
    if moved:
        followups.now.append(message.pk)


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
