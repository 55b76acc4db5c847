"""Tables of the 230-FZ limits (issues 4 and 10).

The counts are kept per *limit scope* (an entity alone, or a `fz.limit_group` of entities sharing one
allowance) and *subject* (a recipient number, or a debtor: the person, across all of their numbers), as
two strings (see `rules.subjects`). `fz_counters` holds how many messages were handed to a provider in
each local calendar day, week (Monday first) and month; `fz_minutes` the same per UTC minute, for the
rolling 24 h / 7 d / 30 d windows (a window is summed from at most its minutes that had a message, and
rows older than 31 days are purged). The policy reads and increments these rows under a per-(scope,
subject) lock instead of counting `messages`, so a decision costs the same whether the history holds ten
thousand messages or a billion. What a message was counted in is kept on the message itself
(`messages.fz_counted_on`, `fz_counted_at`), so that un-counting it is exact and happens once;
`fz_releases` holds the un-countings not yet taken off the counters.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from smsqueue.clock import now
from smsqueue.models.base import Base, BigPK

SCOPE_LENGTH = 80  # "e:<entity id>" or "g:<limit group>"
SUBJECT_LENGTH = 140  # an E.164 number, or "d:<debtor>" (a debtor id is at most 128 characters)


class FzCounter(Base):
    __tablename__ = "fz_counters"
    __table_args__ = (
        CheckConstraint("period IN ('day', 'week', 'month')", name="period"),
        # Old periods are purged by date (`limits.purge`): an index keeps that from scanning the table.
        Index(None, "period_start"),
    )

    scope: Mapped[str] = mapped_column(String(SCOPE_LENGTH), primary_key=True)
    subject: Mapped[str] = mapped_column(String(SUBJECT_LENGTH), primary_key=True)
    period: Mapped[str] = mapped_column(String(5), primary_key=True)  # "day" | "week" | "month"
    # The local date naming the period: the day itself, the Monday of the week, the 1st of the month.
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class FzMinute(Base):
    """Messages (and reported interactions) per (scope, subject) and UTC minute: the rolling windows are
    sums of these rows over the primary key's range, never a scan of messages."""

    __tablename__ = "fz_minutes"
    __table_args__ = (Index(None, "minute"),)  # the purge of minutes older than the longest window

    scope: Mapped[str] = mapped_column(String(SCOPE_LENGTH), primary_key=True)
    subject: Mapped[str] = mapped_column(String(SUBJECT_LENGTH), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)  # the start of the minute, UTC
    count: Mapped[int] = mapped_column(Integer, default=0)


class FzRelease(Base):
    """A message un-counted (it left `sending` before a provider took it), not yet taken off its
    counters. `release` only adds rows here, so the record transaction never waits for a counter row a
    claim holds (which, with the claim waiting for a row the record holds, would be a deadlock); the next
    claim of the same (scope, subject) folds the rows into the counters under its lock, and every read
    subtracts the rows not folded yet."""

    __tablename__ = "fz_releases"
    __table_args__ = (Index(None, "scope", "subject"),)

    id: Mapped[int] = mapped_column(BigPK, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(SCOPE_LENGTH))
    subject: Mapped[str] = mapped_column(String(SUBJECT_LENGTH))
    counted_on: Mapped[date] = mapped_column(Date)  # the local day it had been counted on
    counted_minute: Mapped[datetime | None] = mapped_column()  # its fz_minutes row (null: from before)


class FzInteraction(Base):
    """An interaction made elsewhere (another system's SMS, a voice message, ...) reported through
    POST .../interactions: counted against the same limits as a sent message, in the periods of `at`."""

    __tablename__ = "fz_interactions"
    __table_args__ = (
        Index(None, "legal_entity_id", "debtor", "at"),
        Index(None, "legal_entity_id", "recipient", "at"),
    )

    id: Mapped[int] = mapped_column(BigPK, primary_key=True, autoincrement=True)
    legal_entity_id: Mapped[int] = mapped_column(ForeignKey("legal_entities.id", ondelete="RESTRICT"))
    recipient: Mapped[str | None] = mapped_column(String(16))  # E.164
    debtor: Mapped[str | None] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column()
    channel: Mapped[str] = mapped_column(String(16))  # "sms" | "voice_message" | "other"
    created_at: Mapped[datetime] = mapped_column(default=now)
