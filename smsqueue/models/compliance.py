"""Tables of the interaction rules' records (issue 10): the stop list and the rule decisions.

`stop_list_entries` holds the numbers and debtors an entity (or its limit group) may not write to; the
sender looks each claimed message up in it by the unique (scope, kind, value) index, so the check costs
the same with no entries or a million. `rule_decisions` keeps, per message, every decision the sender's
rules step made and the counts it saw at that moment: the evidence is what was decided, never recomputed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from smsqueue.clock import now
from smsqueue.models.base import Base, BigPK

STOP_KINDS = ("number", "debtor")
STOP_REASONS = ("refused", "representative_only", "protected", "wrong_number", "other")
OUTCOMES = ("allowed", "deferred", "rejected")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class StopListEntry(Base):
    __tablename__ = "stop_list_entries"
    __table_args__ = (
        CheckConstraint(_in("kind", STOP_KINDS), name="kind"),
        CheckConstraint(_in("reason", STOP_REASONS), name="reason"),
        # The send-time lookup and the PUT/DELETE of one entry; also the list's to/debtor filters.
        Index("uq_stop_list_entries_scope_kind_value", "scope", "kind", "value", unique=True),
        # The list of one scope in id order (its cursor).
        Index(None, "scope", "id"),
    )

    id: Mapped[int] = mapped_column(BigPK, primary_key=True, autoincrement=True)
    # Whose list it is: "g:<limit group>" or "e:<entity id>" (rules.stop_list.scopes_of).
    scope: Mapped[str] = mapped_column(String(140))
    kind: Mapped[str] = mapped_column(String(6))  # "number" | "debtor"
    value: Mapped[str] = mapped_column(String(128))  # E.164 for a number, the caller's id for a debtor
    reason: Mapped[str] = mapped_column(String(24))
    note: Mapped[str | None] = mapped_column(Text)
    document: Mapped[str | None] = mapped_column(Text)
    until: Mapped[datetime | None] = mapped_column()  # null: for good
    # The entity through whose endpoint it was last written (the record of who said so).
    legal_entity_id: Mapped[int | None] = mapped_column(
        ForeignKey("legal_entities.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)


class RuleDecision(Base):
    """One decision of the sender's rules step about a message, as it was made."""

    __tablename__ = "rule_decisions"
    __table_args__ = (
        CheckConstraint(_in("outcome", OUTCOMES), name="outcome"),
        Index(None, "message_pk", "id"),
    )

    id: Mapped[int] = mapped_column(BigPK, primary_key=True, autoincrement=True)
    message_pk: Mapped[int] = mapped_column(BigInteger, ForeignKey("messages.pk", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(8))  # allowed | deferred | rejected
    reasons: Mapped[list[str]] = mapped_column(JSON)
    counts: Mapped[dict[str, Any] | None] = mapped_column()  # {"day": 1, "week": 3, "month": 9}
    until: Mapped[datetime | None] = mapped_column()  # a deferred message's new time
