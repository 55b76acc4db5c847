"""Tables of webhook delivery. The outbox itself is `message_events` (webhook_state, webhook_next_at,
webhook_attempts); these record each delivery attempt and the health of each receiver."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from smsqueue.models.base import Base, BigPK, partial_index


class WebhookAttempt(Base):
    """One POST of one event (or the record of why it was given up without one).

    A row is written when the event is claimed (a reservation: `started_at` and `finished_at` null,
    `lease_until` set), marked started when a worker takes it, and completed with the answer. Unfinished
    rows with a live lease are the POSTs in flight (or about to be), counted per receiver to cap the
    concurrency towards it. A reservation whose lease ran out was never sent and is dropped; a started
    attempt whose lease ran out is recorded as lost."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_message", "message_pk", "sequence", "attempt"),
        Index("ix_webhook_attempts_event", "event_id"),
        Index("ix_webhook_attempts_inflight", "receiver", **partial_index("finished_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigPK, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("message_events.id", ondelete="CASCADE"))
    message_pk: Mapped[int] = mapped_column(BigInteger, ForeignKey("messages.pk", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    receiver: Mapped[str] = mapped_column(String(300))  # the callback URL's origin
    at: Mapped[datetime] = mapped_column()  # claimed; then when the POST went out
    lease_until: Mapped[datetime] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int | None] = mapped_column(Integer)


class WebhookReceiver(Base):
    """The health of one receiving origin (scheme://host:port): its consecutive failures and, while it is
    failing, when it may be tried again (a circuit breaker shared by every worker)."""

    __tablename__ = "webhook_receivers"

    origin: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[datetime | None] = mapped_column()
    last_attempt_at: Mapped[datetime | None] = mapped_column()
    last_success_at: Mapped[datetime | None] = mapped_column()
    last_failure_at: Mapped[datetime | None] = mapped_column()
    last_status_code: Mapped[int | None] = mapped_column(SmallInteger)
    last_error: Mapped[str | None] = mapped_column(String(500))
