"""Evidence of the interaction rules: what the sender's rules step decided about each message and the
counts it saw, recorded in the claim transaction as it decides (`record_decisions`), and one person's or
number's history read back from those records (`history`). Nothing here recomputes a decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from smsqueue.messages import events_of, messages_t
from smsqueue.models.compliance import RuleDecision

decisions_t = RuleDecision.__table__
m = messages_t.c
d = decisions_t.c

ALLOWED = "allowed"
DEFERRED = "deferred"
REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Decided:
    """One decision of the rules step about one message."""

    pk: int
    outcome: str  # ALLOWED | DEFERRED | REJECTED
    reasons: Sequence[str] = ()
    counts: Mapping[str, int] | None = None  # the FZ counts it judged by (None: it did not look)
    until: datetime | None = None  # a deferred message's new time


def record_decisions(conn: Connection, decided: Sequence[Decided], at: datetime) -> None:
    """Keep the decisions, in the caller's (the claim's) transaction: one INSERT for the batch."""
    if not decided:
        return
    conn.execute(
        insert(decisions_t),
        [
            {
                "message_pk": x.pk,
                "at": at,
                "outcome": x.outcome,
                "reasons": list(x.reasons),
                "counts": dict(x.counts) if x.counts is not None else None,
                "until": x.until,
            }
            for x in decided
        ],
    )


def decisions_of(conn: Connection, pks: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """The recorded decisions of these messages, oldest first, by pk."""
    out: dict[int, list[dict[str, Any]]] = {pk: [] for pk in pks}
    if not pks:
        return out
    rows = conn.execute(
        select(d.message_pk, d.at, d.outcome, d.reasons, d.counts, d.until)
        .where(d.message_pk.in_(list(pks)))
        .order_by(d.message_pk, d.id)
    )
    for r in rows:
        out[r.message_pk].append(
            {"at": r.at, "outcome": r.outcome, "reasons": r.reasons, "counts": r.counts, "until": r.until}
        )
    return out


# --- one debtor's or one number's history ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    message: Any  # the `messages` row
    events: list[dict[str, Any]]
    decisions: list[dict[str, Any]]


def history(
    conn: Connection, entity_id: int, *, debtor: str | None = None, recipient: str | None = None
) -> list[Item]:
    """Every message of the entity for this debtor or to this number, oldest first, with its events and
    decisions (three queries; the (entity, debtor) and (entity, recipient) indexes find the messages)."""
    where = [m.legal_entity_id == entity_id]
    if debtor is not None:
        where.append(m.debtor == debtor)
    if recipient is not None:
        where.append(m.recipient == recipient)
    rows = conn.execute(select(messages_t).where(*where).order_by(m.created_at, m.pk)).all()
    pks = [r.pk for r in rows]
    events = events_of(conn, pks)
    decisions = decisions_of(conn, pks)
    return [Item(r, events[r.pk], decisions[r.pk]) for r in rows]


def interactions(
    conn: Connection, entity_id: int, *, debtor: str | None = None, recipient: str | None = None
) -> list[dict[str, Any]]:
    """Interactions made elsewhere (POST .../interactions) for this debtor or number, oldest first.

    Seam: the interactions table belongs to the counting half of issue 10 and has not landed here yet;
    until it does there are none to show. Plug its query in here (same filters, `at` order); the history
    endpoints already list what this returns under `interactions`."""
    return []
