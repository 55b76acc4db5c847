"""Tables of provider delivery reports (issue 3).

`early_reports` holds final delivery reports that came before the send task recorded the provider's id
of their message. SMS.ru, SMS Aero and generic JSON providers name a message only by the id their send
answer gives us, and a fast handset can report delivery while that answer is still on its way. The
report waits here, keyed by (provider, provider's message id), until `sending.record_sent` stores that
id and applies it (`smsqueue.reports.apply_early`). Rows nobody claims (reports of messages we never
learnt the id of, or of another system's messages on a shared account) are purged after an hour.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from smsqueue.models.base import Base, BigPK


class EarlyReport(Base):
    __tablename__ = "early_reports"
    __table_args__ = (
        Index("ix_early_reports_provider_message", "provider_id", "provider_message_id"),
        # The purge reads old rows by time.
        Index("ix_early_reports_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigPK, primary_key=True, autoincrement=True)
    provider_id: Mapped[int] = mapped_column(Integer, ForeignKey("providers.id", ondelete="CASCADE"))
    provider_message_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # a final status: delivered, undelivered, failed
    reason: Mapped[str | None] = mapped_column(String(64))
    provider_status: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column()
