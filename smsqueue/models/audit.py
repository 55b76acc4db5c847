"""The audit log: one row per change made through the admin API (see `smsqueue.rules.audit`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from smsqueue.clock import now
from smsqueue.models.base import Base, BigPK


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_object_id", "object", "id"),
        Index("ix_audit_log_action_id", "action", "id"),
        Index("ix_audit_log_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=now)
    # The key that made the change: no foreign key, so the entry outlives anything done to the key.
    key_id: Mapped[int | None] = mapped_column(Integer)
    key_name: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))  # "legal_entity.update"
    object: Mapped[str] = mapped_column(String(200))  # the object's code or id
    changes: Mapped[dict[str, Any]] = mapped_column()  # field -> [before, after], secrets as "***"
