"""The sender: claim due messages, ask the rules, call the provider, record what happened.

Three steps, in flow order, and no database connection is held across the provider's HTTP call:
1. claim (here, one transaction): lock the due rows, pick each one's provider (smsqueue.links), ask the
   rules, take rate-limit tokens, and move the admitted ones to `sending`; the others to `scheduled`,
   `rejected`, `failed` or `expired`, or leave them `queued` for their token;
2. call each provider (smsqueue.provider_calls);
3. record (smsqueue.recording, one transaction): `sent`, or a retry, a failover, or `failed`.
A crash between 1 and 3 leaves the message `sending` with a due `next_attempt_at`: the reconcile sweep
asks the provider whether it has it, and never blindly sends again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from smsqueue import evidence, logs, pauses, ratelimit
from smsqueue.clock import now
from smsqueue.config import settings
from smsqueue.db import transaction
from smsqueue.links import Claimed, Link, NoProvider, Paused, choose_link, load_context, sender_for
from smsqueue.messages import (
    DUE_TOLERANCE,
    SHORT_WAIT,
    Followups,
    messages_t,
    ring_after_grace,
    set_each,
    transition,
    transition_many,
)
from smsqueue.provider_calls import CALL_THREADS, call_all
from smsqueue.recording import record
from smsqueue.rules import policy, stop_list
from smsqueue.statuses import Reason, Status

log = logging.getLogger(__name__)
m = messages_t.c


# --- step 1: claim ------------------------------------------------------------------------------------


def lock_due(conn: Connection, pks: Sequence[int], at: datetime) -> list[Any]:
    stmt = (
        select(messages_t)
        .where(m.pk.in_(list(pks)), m.status == Status.QUEUED.value, m.next_attempt_at <= at + DUE_TOLERANCE)
        .order_by(m.pk)
        .with_for_update(skip_locked=True)
    )
    return list(conn.execute(stmt))


def lock_next_due(conn: Connection, at: datetime, limit: int) -> list[Any]:
    """The due queued messages, oldest due first, at most `limit`, locked; rows another claim holds are
    skipped, so concurrent workers take disjoint batches (index ix_messages_queued_due). Due by `at`
    itself: a message waiting for a rate-limit token is not taken before its token is there (it would
    only be put back, and rung again); a doorbell rung for given ids keeps DUE_TOLERANCE (`lock_due`)."""
    stmt = (
        select(messages_t)
        .where(m.status == Status.QUEUED.value, m.next_attempt_at <= at)
        .order_by(m.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(conn.execute(stmt))


def claim(conn: Connection, pks: Sequence[int], at: datetime, followups: Followups) -> list[Claimed]:
    """Step 1 for these messages (the due ones among them), in the caller's transaction."""
    return claim_rows(conn, lock_due(conn, pks, at), at, followups)


def claim_rows(conn: Connection, rows: list[Any], at: datetime, followups: Followups) -> list[Claimed]:
    """Step 1 for locked `queued` rows, in the caller's transaction. Returns the messages now `sending`."""
    if not rows:
        return []
    ctx = load_context(conn, (r.legal_entity_id for r in rows))
    probes: dict[int, int] = {}  # provider id -> the pk of the message sent as its probe
    paused: list[tuple[int, dict[str, Any]]] = []  # rows waiting for a pause to end: their due times
    on_stop_list = _stop_listed(conn, ctx, rows, at)
    decided: list[evidence.Decided] = []
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
        if row.pk in on_stop_list:
            # Before any provider, count or token: a stopped message is never sent and never counted.
            _reject(conn, row, Reason.STOP_LIST, at)
            decided.append(evidence.Decided(row.pk, evidence.REJECTED, [Reason.STOP_LIST.value]))
            continue
        choice = choose_link(ctx, row, at=at, probe=_probe_claim(conn, at, row.pk, probes))
        if isinstance(choice, Paused):
            # No event: waiting for a pause to end is not a change of status (as waiting for a token).
            # Due again by its expiry at the latest, so that `expired` is not held back by the pause.
            due = (
                choice.until
                if row.valid_until is None
                else min(choice.until, row.valid_until + DUE_TOLERANCE)
            )
            paused.append((row.pk, {"next_attempt_at": due, "ring_at": due}))
            continue
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
            if choice.status is Status.REJECTED:
                decided.append(evidence.Decided(row.pk, evidence.REJECTED, [str(choice.reason)]))
            continue
        candidates.append((row, choice))
    set_each(conn, paused, Status.QUEUED)  # one statement for the batch's paused ones
    admitted = _take_tokens(conn, candidates, at, followups)
    seen: dict[int, dict[str, int]] = {}
    decisions = policy.decide_many(
        conn, [(row, ctx.entities[row.legal_entity_id]) for row, _ in admitted], at, seen
    )
    claimed: list[Claimed] = []
    for (row, link), decision in zip(admitted, decisions, strict=True):
        counts = seen.get(row.pk)
        if isinstance(decision, policy.Reject):
            _reject(conn, row, decision.reason, at)
            decided.append(evidence.Decided(row.pk, evidence.REJECTED, [decision.reason], counts))
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
            decided.append(
                evidence.Decided(row.pk, evidence.DEFERRED, [decision.reason], counts, decision.until)
            )
            continue
        decided.append(evidence.Decided(row.pk, evidence.ALLOWED, [], counts))
        probe = probes.get(link.provider.id) == row.pk
        claimed.append(Claimed(row, link, sender_for(row, link), row.attempts + 1, probe=probe))
    evidence.record_decisions(conn, decided, at)
    _mark_sending(conn, claimed, at)
    return claimed


def _probe_claim(conn: Connection, at: datetime, pk: int, probes: dict[int, int]) -> Any:
    """The claim of a paused provider's probe for message `pk`, held for as long as the call may take."""

    def take(provider: Any) -> datetime | None:
        hold = call_bound(provider) + START_SLACK + RECORD_MARGIN
        until = pauses.claim_probe(conn, provider, at, hold)
        if until is not None:
            probes[provider.id] = pk
        return until

    return take


def _stop_listed(conn: Connection, ctx: Any, rows: Sequence[Any], at: datetime) -> set[int]:
    """The claimed rows whose number or debtor is on their entity's stop list: one query for the batch."""
    return stop_list.stopped(
        conn,
        [
            stop_list.Candidate(
                r.pk, stop_list.scopes_of(ctx.entities[r.legal_entity_id]), r.recipient, r.debtor
            )
            for r in rows
        ],
        at,
    )


def _reject(conn: Connection, row: Any, reason: str, at: datetime) -> None:
    transition(
        conn,
        row.pk,
        Status.REJECTED,
        reason=reason,
        expected={Status.QUEUED},
        at=at,
        values={"next_attempt_at": None},
    )


def _take_tokens(
    conn: Connection, candidates: list[tuple[Any, Link]], at: datetime, followups: Followups
) -> list[tuple[Any, Link]]:
    """Rate limits: the messages that got a token go on; the others stay `queued`, due when their token
    will be there (no event: waiting for a token is not a change of status). A short wait is rung with a
    countdown, and by the sweep a grace period later if that was lost; a long one by the sweep."""
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
        held: list[tuple[int, dict[str, Any]]] = []
        for i, (row, _) in enumerate(waiting):
            # Spread the waiting ones over the time their tokens take to come back.
            delay = grant.wait + (i / rate if rate else 0.0)
            due = at + timedelta(seconds=delay)
            short = delay <= SHORT_WAIT
            ring_at = ring_after_grace(due) if short else due
            held.append((row.pk, {"next_attempt_at": due, "ring_at": ring_at}))
            if short:
                followups.later.append((row.pk, delay))
        set_each(conn, held, Status.QUEUED)  # one statement for the batch's waiting ones
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


# --- the whole send -----------------------------------------------------------------------------------


def process(pks: Sequence[int]) -> Followups:
    """Send the due ones among these messages. Returns the doorbells to ring after it (already committed)."""
    return _send(lambda conn, at: lock_due(conn, pks, at))


def process_due(limit: int | None = None) -> Followups:
    """Claim up to `limit` (default: `claim_size()`) due messages, oldest due first, and send them.
    `count` of the result says how many were claimed: a full batch means more may be due."""
    limit = limit or claim_size()
    return _send(lambda conn, at: lock_next_due(conn, at, limit))


def _send(lock: Any) -> Followups:
    followups = Followups()
    at = now()
    with transaction() as conn:
        rows = lock(conn, at)
        followups.count = len(rows)
        claimed = claim_rows(conn, rows, at, followups)
    if not claimed:
        return followups
    for c in claimed:
        with logs.request_id_bound(c.message.request_id):
            log.info("sending message %s via %s (attempt %d)", c.message.id, c.link.provider.code, c.attempt)
    results = call_all(claimed)
    _learn_call_seconds(results)
    at = now()
    with transaction() as conn:
        record(conn, results, at, followups)
    return followups


# --- how much one claim takes ---------------------------------------------------------------------------

# A claim holds what its calls can send well inside the reconcile window (see `reconcile_window`): with
# a provider answering in 1 ms, MAX_CLAIM; with one taking seconds, a few, so that no call of the batch
# must be left `not_started`. Learnt from the calls this process made (a moving mean), starting small.
MIN_CLAIM = 8
MAX_CLAIM = 500
CLAIM_CALL_BUDGET = 2.0  # seconds the calls of one claim should take, at most
_call_seconds: float | None = None


def claim_size() -> int:
    if _call_seconds is None:
        return max(MIN_CLAIM, min(MAX_CLAIM, settings().send_batch_size))
    fits = int(CALL_THREADS * CLAIM_CALL_BUDGET / max(_call_seconds, 1e-4))
    return max(MIN_CLAIM, min(MAX_CLAIM, fits))


def _learn_call_seconds(results: Sequence[Any]) -> None:
    global _call_seconds
    if not results:
        return
    mean = sum(r.seconds for r in results) / len(results)
    _call_seconds = mean if _call_seconds is None else 0.5 * _call_seconds + 0.5 * mean
