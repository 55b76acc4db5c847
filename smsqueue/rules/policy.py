"""The policy the send task asks before every send: allow, defer (to an exact moment) or reject.

`decide_many` runs inside the claim transaction, so what it counts and what the claim changes commit
together (or not at all). The decision itself is `rules.check.decide`, the same code the check endpoint
answers with; this module adds the database: the per-number locks and the FZ counters (`rules.limits`).

Every message handed to a provider is counted, whether its entity has the FZ rules on or not, so that
the counts are right from the moment the rules are turned on (and the check endpoint shows them); only
an entity with `fz.enabled` is held to its limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection

from smsqueue.rules import limits
from smsqueue.rules.check import Allow, Decision, Defer, EntityRules, Reject, recipient_zone
from smsqueue.rules.check import decide as decide_rules

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

    A few statements per batch, whatever its size: one to take the locks of all its (entity, number)
    pairs (in one global order, so concurrent batches cannot deadlock), one to take their pending
    releases, one to read their counters, one upsert of what the batch counts (and one UPDATE when there
    were releases), and one UPDATE per distinct local day to mark the counted messages.
    Messages of one number in one batch are judged in order, each seeing those before it.

    `seen`, when given, gets the counts each message of an active entity was judged by (by pk): the
    evidence records them as they were, before this message counted."""
    if not items:
        return []
    prepared = []
    for message, entity in items:
        rules = EntityRules.of(entity)
        tz = recipient_zone(message.recipient, message.recipient_timezone, entity.timezone)
        prepared.append((message, entity.id, rules, tz))
    # An inactive entity's messages are rejected without looking at counts: no lock for them.
    recipients = {(eid, msg.recipient) for msg, eid, rules, _ in prepared if rules.active}
    limits.lock_recipients(conn, recipients)
    cache = limits.CounterCache(conn)
    cache.fold(recipients)  # the releases of these numbers come off their counters now, under the locks
    cache.load(
        key
        for msg, eid, rules, tz in prepared
        if rules.active
        for key in limits.keys_at(eid, msg.recipient, at, tz).values()
    )
    decisions: list[Decision] = []
    counted: dict[int, date] = {}
    for message, entity_id, rules, tz in prepared:
        if seen is not None and rules.active:
            seen[message.pk] = dict(cache.counts_at(entity_id, message.recipient, at, tz))
        decision = decide_rules(
            rules, at, tz, lambda t, e=entity_id, r=message.recipient, z=tz: cache.counts_at(e, r, t, z)
        )
        if isinstance(decision, Allow):
            day = at.astimezone(tz).date()
            cache.count(entity_id, message.recipient, day)
            counted[message.pk] = day
        decisions.append(decision)
    cache.flush()
    limits.mark_counted(conn, counted)
    return decisions


def release(conn: Connection, message: Any) -> None:
    """Un-count a message that leaves `sending` before a provider accepted it. Idempotent: a message is
    un-counted at most once, and one that was never counted is left alone."""
    limits.release(conn, message.pk)
