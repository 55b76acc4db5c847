"""The policy the send task asks before every send: allow, defer (to an exact moment) or reject.

`decide_many` runs inside the claim transaction, so what it counts and what the claim changes commit
together (or not at all). The decision itself is `rules.check.decide`, the same code the check endpoint
answers with; this module adds the database: the per-person and per-number locks and the FZ counters
(`rules.limits`), per limit scope (`rules.subjects`).

Every message handed to a provider is counted, whether its entity has the FZ rules on or not, so that
the counts are right from the moment the rules are turned on (and the check endpoint shows them); only
an entity with `fz.enabled` is held to its limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection

from smsqueue.rules import limits, rolling
from smsqueue.rules.check import Allow, Decision, Defer, EntityRules, Reject, recipient_zone, window_zones
from smsqueue.rules.check import decide as decide_rules
from smsqueue.rules.subjects import scope_of, subjects_of

__all__ = ["Allow", "Decision", "Defer", "Reject", "decide_many", "release"]


def decide_many(
    conn: Connection,
    items: Sequence[tuple[Any, Any]],
    at: datetime,
    seen: dict[int, dict[str, int]] | None = None,
) -> list[Decision]:
    """The rules' answers for the messages a send task is about to claim, in order: each item is a
    (`messages` row, `legal_entities` row) pair. Runs in the claim transaction: whatever it counts and
    locks commits (or rolls back) with the claim itself.

    A few statements per batch, whatever its size: one to take the locks of all its (scope, subject)
    pairs (a message's debtor and its number; in one global order, so concurrent batches cannot
    deadlock), one to take their pending releases, one to read their counters, one to read the minutes
    of those under rolling windows, one upsert each of what the batch counts in counters and minutes
    (and one UPDATE when there were releases), and one UPDATE per distinct counting moment to mark the
    counted messages. Messages of one person or number in one batch are judged in order, each seeing
    those before it.

    `seen`, when given, gets the counts each message of an active entity was judged by (by pk): the
    evidence records them as they were, before this message counted."""
    if not items:
        return []
    prepared = []
    for message, entity in items:
        rules = EntityRules.of(entity)
        tz = recipient_zone(message.recipient, message.recipient_timezone, entity.timezone)
        zones = window_zones(message.recipient, message.recipient_timezone, rules.unknown_zone, tz)
        subjects = subjects_of(message.recipient, message.debtor)
        prepared.append((message, scope_of(entity), subjects, rules, tz, zones))
    # An inactive entity's messages are rejected without looking at counts: no lock for them.
    pairs = {(scope, s) for _, scope, subjects, rules, _, _ in prepared if rules.active for s in subjects}
    limits.lock_subjects(conn, pairs)
    cache = limits.CounterCache(conn)
    cache.fold(pairs)  # the releases of these subjects come off their counters now, under the locks
    cache.load(
        key
        for _, scope, subjects, rules, tz, _ in prepared
        if rules.active
        for s in subjects
        for key in limits.keys_at(scope, s, at, tz).values()
    )
    cache.load_minutes(
        {
            (scope, s)
            for _, scope, subjects, rules, _, _ in prepared
            if rules.active and rules.fz_enabled and rules.rolling_windows
            for s in subjects
        },
        at - rolling.LONGEST,
    )
    decisions: list[Decision] = []
    counted: dict[int, tuple[date, datetime]] = {}
    minute = rolling.minute_of(at)
    for message, scope, subjects, rules, tz, zones in prepared:
        with_rolling = rules.fz_enabled and rules.rolling_windows
        if seen is not None and rules.active:
            seen[message.pk] = cache.counts_at(scope, subjects, at, tz, with_rolling)
        decision = decide_rules(
            rules,
            at,
            tz,
            lambda t, sc=scope, su=subjects, z=tz, w=with_rolling: cache.counts_at(sc, su, t, z, w),
            room_from=lambda kind, t, limit, sc=scope, su=subjects: cache.room_from(sc, su, kind, t, limit),
            zones=zones,
        )
        if isinstance(decision, Allow):
            day = at.astimezone(tz).date()
            cache.count(scope, subjects, day, minute)
            counted[message.pk] = (day, minute)
        decisions.append(decision)
    cache.flush()
    limits.mark_counted(conn, counted)
    return decisions


def release(conn: Connection, message: Any) -> None:
    """Un-count a message that leaves `sending` before a provider accepted it. Idempotent: a message is
    un-counted at most once, and one that was never counted is left alone."""
    limits.release(conn, message.pk)
