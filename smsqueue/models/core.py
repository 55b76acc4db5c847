"""The core tables: legal entities, providers and their links, API keys, messages and their events."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from smsqueue import law
from smsqueue.clock import now
from smsqueue.models.base import Base, BigPK, partial_index
from smsqueue.statuses import WebhookState


class LegalEntity(Base):
    __tablename__ = "legal_entities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    inn: Mapped[str | None] = mapped_column(String(12))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow")
    callback_url: Mapped[str | None] = mapped_column(Text)
    webhook_secret: Mapped[str] = mapped_column(Text)  # encrypted
    # After a rotation the replaced secret still signs webhooks (a second signature) until this time.
    webhook_secret_previous: Mapped[str | None] = mapped_column(Text)  # encrypted
    webhook_secret_previous_until: Mapped[datetime | None] = mapped_column()
    send_window_from: Mapped[str] = mapped_column(String(5), default="09:00")
    send_window_to: Mapped[str] = mapped_column(String(5), default="21:00")
    on_window: Mapped[str] = mapped_column(String(8), default="defer")
    fz_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    fz_per_day: Mapped[int] = mapped_column(Integer, default=law.PER_DAY)
    fz_per_week: Mapped[int] = mapped_column(Integer, default=law.PER_WEEK)
    fz_per_month: Mapped[int] = mapped_column(Integer, default=law.PER_MONTH)
    fz_weekday_from: Mapped[str] = mapped_column(String(5), default=law.WEEKDAY_HOURS[0])
    fz_weekday_to: Mapped[str] = mapped_column(String(5), default=law.WEEKDAY_HOURS[1])
    fz_weekend_from: Mapped[str] = mapped_column(String(5), default=law.WEEKEND_HOURS[0])
    fz_weekend_to: Mapped[str] = mapped_column(String(5), default=law.WEEKEND_HOURS[1])
    fz_holidays_as_weekends: Mapped[bool] = mapped_column(Boolean, default=True)
    fz_on_limit: Mapped[str] = mapped_column(String(8), default="reject")
    # 137-FZ: who the messages come from and a phone to reach them; `fz_identification` (off | require |
    # append) says whether a message must name them or gets them appended (rules.identification).
    creditor_name: Mapped[str | None] = mapped_column(String(300))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    fz_identification: Mapped[str] = mapped_column(String(8), default="off", server_default="off")
    # Entities with the same group share one set of 230-FZ counts (null: the entity counts alone).
    fz_limit_group: Mapped[str | None] = mapped_column(String(64))
    fz_rolling_windows: Mapped[bool] = mapped_column(
        Boolean, default=law.ROLLING_WINDOWS, server_default="true" if law.ROLLING_WINDOWS else "false"
    )
    fz_unknown_zone: Mapped[str] = mapped_column(
        String(10), default=law.UNKNOWN_ZONE, server_default=law.UNKNOWN_ZONE
    )
    # Final messages are purged this many days after their last change (137-FZ: about 1.5 years).
    retention_days: Mapped[int] = mapped_column(Integer, default=548, server_default="548")
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(300))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the non-secret settings
    secrets: Mapped[str | None] = mapped_column(Text)  # encrypted JSON of the secret settings
    rate_limit_per_second: Mapped[float | None] = mapped_column(Float)
    timeout_seconds: Mapped[float] = mapped_column(Float, default=10.0)
    callback_token: Mapped[str] = mapped_column(Text)  # encrypted
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)
    # A provider-wide refusal pauses the provider for every message (smsqueue.pauses); set and cleared
    # there only. Not part of `updated_at`: a pause is no edit of the provider (its client is kept).
    paused_until: Mapped[datetime | None] = mapped_column()
    pause_reason: Mapped[str | None] = mapped_column(String(64))


class EntityProvider(Base):
    """A provider an entity may send through, with its priority (1 first) and default sender."""

    __tablename__ = "entity_providers"
    __table_args__ = (Index(None, "legal_entity_id", "priority"),)

    legal_entity_id: Mapped[int] = mapped_column(
        ForeignKey("legal_entities.id", ondelete="CASCADE"), primary_key=True
    )
    provider_id: Mapped[int] = mapped_column(
        ForeignKey("providers.id", ondelete="RESTRICT"), primary_key=True, index=True
    )
    priority: Mapped[int] = mapped_column(Integer, default=1)
    sender: Mapped[str | None] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=now)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the key
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to tell keys apart
    role: Mapped[str] = mapped_column(String(16))  # "admin" | "entity"
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=now)
    revoked_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()  # written at most once a minute (auth)
    rate_limit_per_second: Mapped[float | None] = mapped_column(Float)  # null: no limit


class ApiKeyEntity(Base):
    __tablename__ = "api_key_entities"

    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    legal_entity_id: Mapped[int] = mapped_column(
        ForeignKey("legal_entities.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # Periodic sweeps read only due rows of one status: each has its own partial index.
        Index("ix_messages_queued_ring", "ring_at", **partial_index("status = 'queued'")),
        # The sender's claim: due queued messages, oldest due first (smsqueue.sending.lock_next_due).
        Index("ix_messages_queued_due", "next_attempt_at", **partial_index("status = 'queued'")),
        Index("ix_messages_scheduled_due", "next_attempt_at", **partial_index("status = 'scheduled'")),
        Index("ix_messages_sending_due", "next_attempt_at", **partial_index("status = 'sending'")),
        Index("ix_messages_sent_check", "next_status_check_at", **partial_index("status = 'sent'")),
        Index("ix_messages_entity_created", "legal_entity_id", "created_at", "pk"),
        Index("ix_messages_created", "created_at", "pk"),
        # updated_after polling reads changes in (change_seq, pk) order (see api/messages._list_changes).
        Index("ix_messages_change", "change_seq", "pk"),
        Index("ix_messages_entity_change", "legal_entity_id", "change_seq", "pk"),
        # ... whose first page starts at the lowest position changed after updated_after (index-only).
        Index("ix_messages_updated", "updated_at", "change_seq"),
        # Columns that are empty when a message is accepted are indexed only where set: accepting costs
        # no entry in them.
        Index(
            "ix_messages_entity_reference",
            "legal_entity_id",
            "reference",
            **partial_index("reference IS NOT NULL"),
        ),
        Index("ix_messages_entity_recipient", "legal_entity_id", "recipient"),
        Index(
            "ix_messages_entity_debtor", "legal_entity_id", "debtor", **partial_index("debtor IS NOT NULL")
        ),
        Index(
            "ix_messages_provider_message",
            "provider_id",
            "provider_message_id",
            **partial_index("provider_message_id IS NOT NULL"),
        ),
        Index(
            "ix_messages_requested_provider",
            "requested_provider_id",
            **partial_index("requested_provider_id IS NOT NULL"),
        ),
        # A job's row becomes one message at most, whatever happens to the worker (idempotency per
        # (job, row)); the same index serves the messages list's `job` filter.
        Index("uq_messages_job_row", "job_id", "job_row", unique=True, **partial_index("job_id IS NOT NULL")),
        Index(
            "uq_messages_entity_idempotency_key",
            "legal_entity_id",
            "idempotency_key",
            unique=True,
            **partial_index("idempotency_key IS NOT NULL"),
        ),
    )

    pk: Mapped[int] = mapped_column(BigPK, primary_key=True, autoincrement=True)
    id: Mapped[uuid.UUID] = mapped_column(unique=True)
    # No foreign key (migration 0015): its check locked the entity's row for every message stored, and
    # entities are never deleted (DELETE deactivates one).
    legal_entity_id: Mapped[int] = mapped_column(Integer)
    recipient: Mapped[str] = mapped_column(String(16))  # the API's "to" (an SQL keyword), E.164
    text: Mapped[str] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(String(64))
    requested_provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id", ondelete="RESTRICT"))
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id", ondelete="RESTRICT"))
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    segments: Mapped[int] = mapped_column(SmallInteger)
    encoding: Mapped[str] = mapped_column(String(8))
    send_at: Mapped[datetime | None] = mapped_column()
    valid_until: Mapped[datetime | None] = mapped_column()
    recipient_timezone: Mapped[str | None] = mapped_column(String(64))
    callback_url: Mapped[str | None] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(String(128))
    # The caller's id of the person the message is about (API.md "Debtors"): 230-FZ counts per person
    # (rules.subjects); the stop list and the evidence look messages up by it.
    debtor: Mapped[str | None] = mapped_column(String(128))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    template: Mapped[str | None] = mapped_column(String(64))  # the template code it was rendered from
    # The job and CSV row it came from. No foreign key: accepting stays one plain insert, and
    # SQLite adds the column without copying the table (which would drop its change triggers).
    job_id: Mapped[uuid.UUID | None] = mapped_column()  # the job's public id
    job_row: Mapped[int | None] = mapped_column(Integer)
    # The X-Request-Id of the request that made it, for the worker's log lines about it.
    request_id: Mapped[str | None] = mapped_column(String(128))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # Sending state: attempts on the current provider, providers given up on, when it is next due
    # (queued/scheduled: to be sent; sending: to be reconciled).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    excluded_providers: Mapped[list[int] | None] = mapped_column(JSON)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    # queued: when the sweep next rings its doorbell (the broker may have lost the last one); see sweeps.
    ring_at: Mapped[datetime | None] = mapped_column()
    claimed_at: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    next_status_check_at: Mapped[datetime | None] = mapped_column()
    status_checks: Mapped[int] = mapped_column(Integer, default=0)
    event_seq: Mapped[int] = mapped_column(Integer, default=0)  # how many events it has
    # The position of its last change for updated_after polling, set by the database whenever a message
    # is inserted or its event_seq moves (migrations 0003, 0015): on PostgreSQL the id of the writing
    # transaction (pg_current_xact_id; the column's default there, and a trigger for a row inserted with
    # 0 and for status changes), on SQLite a counter kept by triggers. See api/messages._list_changes.
    change_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The local day (in the recipient's zone) whose 230-FZ counters this message was added to while it is
    # handed to a provider; null when it is not counted. Kept so that un-counting is exact and happens once.
    fz_counted_on: Mapped[date | None] = mapped_column(Date)
    # ... and the UTC minute it was counted in (the rolling windows' fz_minutes row).
    fz_counted_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)


class MessageEvent(Base):
    """One status change. With a callback URL it is also the webhook outbox row (`webhook_state`)."""

    __tablename__ = "message_events"
    __table_args__ = (
        Index("uq_message_events_message_seq", "message_pk", "seq", unique=True),
        Index(
            "ix_message_events_webhook_due",
            "webhook_next_at",
            **partial_index(f"webhook_state = '{WebhookState.PENDING.value}'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigPK, primary_key=True, autoincrement=True)
    # No foreign key (migration 0014): events are written only with their message, in its transaction,
    # and deleted with it by retention; the key's check locked the new message's row for every event
    # (a row lock and a WAL record per message accepted, the largest cost a CSV row had after the
    # inserts themselves).
    message_pk: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column()
    detail: Mapped[dict[str, Any] | None] = mapped_column()
    webhook_state: Mapped[str | None] = mapped_column(String(12))  # a WebhookState
    webhook_next_at: Mapped[datetime | None] = mapped_column()
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0)


class MetricCounter(Base):
    """Counters and histogram buckets that worker processes add to, read by GET /metrics."""

    __tablename__ = "metric_counters"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    labels: Mapped[str] = mapped_column(String(300), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)
