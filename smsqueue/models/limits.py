"""Tables of the 230-FZ limits (issue 4).

`fz_counters` holds, per legal entity and recipient number, how many messages were handed to a provider
in each local calendar day, week (Monday first) and month. The policy reads and increments these rows
under a per-(entity, number) lock instead of counting `messages`, so a decision costs the same whether
the history holds ten thousand messages or a billion. Which day a message was counted in is kept on
the message itself (`messages.fz_counted_on`), so that un-counting it is exact and happens once;
`fz_releases` holds the un-countings not yet taken off the counters.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from smsqueue.models.base import Base, BigPK


class FzCounter(Base):
    __tablename__ = "fz_counters"
    __table_args__ = (
        CheckConstraint("period IN ('day', 'week', 'month')", name="period"),
        # Old periods are purged by date (`limits.purge`): an index keeps that from scanning the table.
        Index(None, "period_start"),
    )

    legal_entity_id: Mapped[int] = mapped_column(
        ForeignKey("legal_entities.id", ondelete="CASCADE"), primary_key=True
    )
    recipient: Mapped[str] = mapped_column(String(16), primary_key=True)  # E.164, as messages.recipient
    period: Mapped[str] = mapped_column(String(5), primary_key=True)  # "day" | "week" | "month"
    # The local date naming the period: the day itself, the Monday of the week, the 1st of the month.
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class FzRelease(Base):
    """A message un-counted (it left `sending` before a provider took it), not yet taken off its
    counters. `release` only adds a row here, so the record transaction never waits for a counter row a
    claim holds (which, with the claim waiting for a row the record holds, would be a deadlock); the next
    claim of the same (entity, number) folds the rows into the counters under its lock, and every read
    subtracts the rows not folded yet."""

    __tablename__ = "fz_releases"
    __table_args__ = (Index(None, "legal_entity_id", "recipient"),)

    id: Mapped[int] = mapped_column(BigPK, primary_key=True, autoincrement=True)
    legal_entity_id: Mapped[int] = mapped_column(ForeignKey("legal_entities.id", ondelete="CASCADE"))
    recipient: Mapped[str] = mapped_column(String(16))
    counted_on: Mapped[date] = mapped_column(Date)  # the local day it had been counted on
