"""Delivery reports pushed by providers: matching them to messages and applying them.

A report names its message by the provider's id, and, where the provider echoes our id (SMSC: its `id`
is our ref, messages.pk), by our ref too. A report is matched:

1. by (provider, provider's message id): the message was recorded `sent` (or later) with that id;
2. else by our ref among that provider's messages: an SMSC report finds its message even while the send
   task is still waiting for SMSC's answer (the message is `sending`, and SMSC was given our ref);
3. else, when the report carries no ref of ours (SMS.ru, SMS Aero, generic JSON), the provider may have
   reported delivery before the send task recorded the id its answer gave: the report is kept in
   `early_reports`, and `recording.record_sent` applies it when it stores that id (`apply_early`).
   Kept reports nobody claims within EARLY_REPORT_TTL are purged: those were unknown ids, acknowledged
   and ignored.

Every change goes through `messages.apply_status`, the lifecycle's one rule for providers' statuses: a
report never moves a message out of a final status, and one that says "in progress" changes nothing.

The race between 3 and `record_sent` (the report finds no message because the send task has not
committed the id yet; the send task finds no kept report because the report has not committed it yet)
is closed on PostgreSQL by a transaction-scoped advisory lock on (provider, provider's id) that both
take before they look: whichever comes second sees what the first committed. A report transaction
holds at most one such lock and takes it before touching any row, so it cannot deadlock with a send
task. SQLite serialises writers and needs no lock.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, text, tuple_, update

from smsqueue import metrics
from smsqueue.clock import now
from smsqueue.db import transaction
from smsqueue.messages import ProviderStatus, apply_status, messages_t
from smsqueue.models.reports import EarlyReport
from smsqueue.providers.base import Report
from smsqueue.statuses import PROVIDER_FINAL, Status

log = logging.getLogger(__name__)
m = messages_t.c
early_t = EarlyReport.__table__
e = early_t.c

# Kinds whose reports carry our ref (SMSC's `id`, IQSMS's `clientId` are ours): their messages are found
# by ref from the moment they are claimed, so their reports never need to wait and their sends never look
# for one (an IQSMS send that timed out is settled by the status its queue gives).
REPORTS_CARRY_REF = frozenset({"smsc", "iqsms"})
EARLY_REPORT_TTL = timedelta(hours=1)  # far beyond the longest send call; a kept report older is unknown
MAX_ID = 128  # messages.provider_message_id: a longer id can match nothing
MAX_SHORT = 64  # reason and provider_status columns

_LOCK_SQL = text("SELECT pg_advisory_xact_lock(:key)")


# --- what travels in the task -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportItem:
    """One report as the task carries it: plain JSON, nothing secret."""

    provider_message_id: str | None
    ref: int | None
    status: Status | None
    reason: str | None = None
    provider_status: str | None = None

    @classmethod
    def of(cls, report: Report) -> ReportItem:
        update_ = report.update
        return cls(
            report.provider_message_id,
            report.ref,
            update_.status,
            _short(update_.reason),
            _short(update_.provider_status),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.provider_message_id,
            "ref": self.ref,
            "status": self.status.value if self.status else None,
            "reason": self.reason,
            "provider_status": self.provider_status,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReportItem:
        status = data.get("status")
        return cls(
            data.get("id"),
            data.get("ref"),
            Status(status) if status else None,
            data.get("reason"),
            data.get("provider_status"),
        )

    @property
    def findable_id(self) -> str | None:
        pmid = self.provider_message_id
        return pmid if pmid and len(pmid) <= MAX_ID else None


@dataclass(slots=True)
class ReportCounts:
    """What a batch of reports did: `applied` moved a message, `unchanged` found one that did not move
    (final already, or a status it cannot take), `kept` wait for their send, `ignored` are in progress or
    name no message of ours."""

    applied: int = 0
    unchanged: int = 0
    kept: int = 0
    ignored: int = 0
    kept_ids: list[str] = field(default_factory=list)


# --- applying a batch of reports ----------------------------------------------------------------------


def apply_reports(provider_id: int, kind: str, items: Sequence[ReportItem]) -> ReportCounts:
    """Apply one callback's reports of one provider. Idempotent: a repeated report changes nothing."""
    counts = ReportCounts()
    final = [item for item in items if item.status in PROVIDER_FINAL]
    counts.ignored += len(items) - len(final)
    if not final:
        return counts
    waiting: list[ReportItem] = []
    with transaction() as conn:
        at = now()
        matches = _match(conn, provider_id, final)
        for index, item in enumerate(final):
            pks = matches.get(index)
            if pks:
                _apply(conn, pks, item, at, counts)
            elif item.ref is None and item.findable_id and kind not in REPORTS_CARRY_REF:
                waiting.append(item)
            else:
                counts.ignored += 1
    for item in waiting:
        _apply_or_keep(provider_id, item, counts)
    with transaction() as conn:
        purge_early(conn, now())
    for outcome in ("applied", "unchanged", "kept", "ignored"):
        if value := getattr(counts, outcome):
            metrics.inc("smsqueue_delivery_reports_total", {"kind": kind, "outcome": outcome}, value)
    return counts


def _match(conn: Connection, provider_id: int, items: Sequence[ReportItem]) -> dict[int, list[int]]:
    """Message pks of each item (by its index): by the provider's id, else by our ref."""
    ids = {item.findable_id for item in items} - {None}
    by_id: dict[str, list[int]] = defaultdict(list)
    if ids:
        rows = conn.execute(
            select(m.pk, m.provider_message_id).where(
                m.provider_id == provider_id, m.provider_message_id.in_(sorted(ids))
            )
        )
        for row in rows:
            by_id[row.provider_message_id].append(row.pk)
    matches: dict[int, list[int]] = {}
    refs: dict[int, list[int]] = defaultdict(list)  # ref -> indexes of items looking for it
    for index, item in enumerate(items):
        found = by_id.get(item.findable_id or "")
        if found:
            matches[index] = found
        elif item.ref is not None:
            refs[item.ref].append(index)
    if refs:
        rows = conn.execute(select(m.pk).where(m.provider_id == provider_id, m.pk.in_(sorted(refs))))
        for pk in rows.scalars():
            for index in refs[pk]:
                matches[index] = [pk]
    return matches


def _apply(
    conn: Connection, pks: Iterable[int], item: ReportItem, at: datetime, counts: ReportCounts
) -> None:
    assert item.status is not None
    for pk in pks:
        moved = apply_status(
            conn, ProviderStatus(pk, item.status, item.reason, item.provider_status), at, "report"
        )
        if moved:
            counts.applied += 1
        else:
            counts.unchanged += 1
        if item.findable_id:
            # Found by ref while `sending`: the report tells us the provider's id before the answer does.
            conn.execute(
                update(messages_t)
                .where(m.pk == pk, m.provider_message_id.is_(None))
                .values(provider_message_id=item.findable_id)
            )


def _apply_or_keep(provider_id: int, item: ReportItem, counts: ReportCounts) -> None:
    """A report whose message is not known by that id yet: look again under the lock, else keep it."""
    assert item.findable_id is not None
    with transaction() as conn:
        lock(conn, provider_id, item.findable_id)
        at = now()
        pks = list(
            conn.execute(
                select(m.pk).where(m.provider_id == provider_id, m.provider_message_id == item.findable_id)
            ).scalars()
        )
        if pks:
            _apply(conn, pks, item, at, counts)
            return
        conn.execute(
            insert(early_t).values(
                provider_id=provider_id,
                provider_message_id=item.findable_id,
                status=item.status.value if item.status else None,
                reason=item.reason,
                provider_status=item.provider_status,
                received_at=at,
            )
        )
        counts.kept += 1
        counts.kept_ids.append(item.findable_id)


# --- kept reports, applied by the send task -----------------------------------------------------------


def apply_early(
    conn: Connection, pk: int, provider_id: int, kind: str, provider_message_id: str, at: datetime
) -> bool:
    """Apply the reports kept for a message whose provider id the send task has just stored (in the
    send task's transaction, after that store). True when one moved the message."""
    if kind in REPORTS_CARRY_REF or len(provider_message_id) > MAX_ID:
        return False
    lock(conn, provider_id, provider_message_id)
    rows = conn.execute(
        delete(early_t)
        .where(e.provider_id == provider_id, e.provider_message_id == provider_message_id)
        .returning(e.id, e.status, e.reason, e.provider_status)
    ).all()
    moved = False
    for row in sorted(rows, key=lambda r: r.id):  # in the order they came: the first final one wins
        moved |= apply_status(conn, _kept(pk, row), at, "report")
    return moved


def apply_early_many(conn: Connection, sent: Sequence[tuple[int, Any, str]], at: datetime) -> None:
    """`apply_early` for many messages just recorded `sent`: (pk, provider row, provider's id). The
    locks are taken in one sorted statement and the kept reports taken in one delete."""
    wanted = [
        (pk, provider.id, pmid)
        for pk, provider, pmid in sent
        if provider.kind not in REPORTS_CARRY_REF and len(pmid) <= MAX_ID
    ]
    if not wanted:
        return
    if len(wanted) == 1:
        pk, provider_id, pmid = wanted[0]
        apply_early(conn, pk, provider_id, "", pmid, at)
        return
    if conn.dialect.name == "postgresql":
        keys = sorted({lock_key(provider_id, pmid) for _, provider_id, pmid in wanted})
        conn.execute(_LOCK_MANY_SQL, {"keys": keys})
    by_key = {(provider_id, pmid): pk for pk, provider_id, pmid in wanted}
    rows = conn.execute(
        delete(early_t)
        .where(tuple_(e.provider_id, e.provider_message_id).in_(sorted(by_key)))
        .returning(e.id, e.provider_id, e.provider_message_id, e.status, e.reason, e.provider_status)
    ).all()
    for row in sorted(rows, key=lambda r: r.id):  # in the order they came: the first final one wins
        pk = by_key[(row.provider_id, row.provider_message_id)]
        apply_status(conn, _kept(pk, row), at, "report")


_LOCK_MANY_SQL = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k")


def purge_early(conn: Connection, at: datetime) -> int:
    """Forget kept reports nobody claimed in time (unknown ids)."""
    return conn.execute(delete(early_t).where(e.received_at < at - EARLY_REPORT_TTL)).rowcount or 0


def lock(conn: Connection, provider_id: int, provider_message_id: str) -> None:
    """Serialise "is this id known yet?" between a report and the send task recording that id."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_SQL, {"key": lock_key(provider_id, provider_message_id)})


def lock_key(provider_id: int, provider_message_id: str) -> int:
    """A signed 64-bit advisory lock key. A collision only makes two reports wait for each other."""
    digest = hashlib.blake2b(
        f"smsqueue.report:{provider_id}:{provider_message_id}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def _kept(pk: int, row: Any) -> ProviderStatus:
    """A kept report (an `early_reports` row) as a status of message `pk`."""
    return ProviderStatus(pk, Status(row.status), row.reason, row.provider_status)


def _short(value: str | None) -> str | None:
    return value[:MAX_SHORT] if value else value
