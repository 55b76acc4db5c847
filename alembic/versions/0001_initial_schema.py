"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "legal_entities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("inn", sa.String(length=12), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("webhook_secret", sa.Text(), nullable=False),
        sa.Column("send_window_from", sa.String(length=5), nullable=False),
        sa.Column("send_window_to", sa.String(length=5), nullable=False),
        sa.Column("on_window", sa.String(length=8), nullable=False),
        sa.Column("fz_enabled", sa.Boolean(), nullable=False),
        sa.Column("fz_per_day", sa.Integer(), nullable=False),
        sa.Column("fz_per_week", sa.Integer(), nullable=False),
        sa.Column("fz_per_month", sa.Integer(), nullable=False),
        sa.Column("fz_weekday_from", sa.String(length=5), nullable=False),
        sa.Column("fz_weekday_to", sa.String(length=5), nullable=False),
        sa.Column("fz_weekend_from", sa.String(length=5), nullable=False),
        sa.Column("fz_weekend_to", sa.String(length=5), nullable=False),
        sa.Column("fz_holidays_as_weekends", sa.Boolean(), nullable=False),
        sa.Column("fz_on_limit", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_entities")),
        sa.UniqueConstraint("code", name=op.f("uq_legal_entities_code")),
    )
    op.create_table(
        "metric_counters",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("labels", sa.String(length=300), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", "labels", name=op.f("pk_metric_counters")),
    )
    op.create_table(
        "providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("rate_limit_per_second", sa.Float(), nullable=True),
        sa.Column("timeout_seconds", sa.Float(), nullable=False),
        sa.Column("callback_token", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
        sa.UniqueConstraint("code", name=op.f("uq_providers_code")),
    )
    op.create_table(
        "api_key_entities",
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("legal_entity_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_entities_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["legal_entity_id"],
            ["legal_entities.id"],
            name=op.f("fk_api_key_entities_legal_entity_id_legal_entities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("api_key_id", "legal_entity_id", name=op.f("pk_api_key_entities")),
    )
    op.create_index(
        op.f("ix_api_key_entities_legal_entity_id"), "api_key_entities", ["legal_entity_id"], unique=False
    )
    op.create_table(
        "entity_providers",
        sa.Column("legal_entity_id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["legal_entity_id"],
            ["legal_entities.id"],
            name=op.f("fk_entity_providers_legal_entity_id_legal_entities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_entity_providers_provider_id_providers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("legal_entity_id", "provider_id", name=op.f("pk_entity_providers")),
    )
    op.create_index(
        op.f("ix_entity_providers_legal_entity_id_priority"),
        "entity_providers",
        ["legal_entity_id", "priority"],
        unique=False,
    )
    op.create_index(
        op.f("ix_entity_providers_provider_id"), "entity_providers", ["provider_id"], unique=False
    )
    op.create_table(
        "messages",
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("legal_entity_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=True),
        sa.Column("requested_provider_id", sa.Integer(), nullable=True),
        sa.Column("provider_id", sa.Integer(), nullable=True),
        sa.Column("provider_message_id", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("segments", sa.SmallInteger(), nullable=False),
        sa.Column("encoding", sa.String(length=8), nullable=False),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recipient_timezone", sa.String(length=64), nullable=True),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("excluded_providers", sa.JSON(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_status_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_checks", sa.Integer(), nullable=False),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["legal_entity_id"],
            ["legal_entities.id"],
            name=op.f("fk_messages_legal_entity_id_legal_entities"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_messages_provider_id_providers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["requested_provider_id"],
            ["providers.id"],
            name=op.f("fk_messages_requested_provider_id_providers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_messages")),
        sa.UniqueConstraint("id", name=op.f("uq_messages_id")),
    )
    op.create_index("ix_messages_created", "messages", ["created_at", "pk"], unique=False)
    op.create_index(
        "ix_messages_entity_created", "messages", ["legal_entity_id", "created_at", "pk"], unique=False
    )
    op.create_index(
        "ix_messages_entity_recipient", "messages", ["legal_entity_id", "recipient"], unique=False
    )
    op.create_index(
        "ix_messages_entity_reference",
        "messages",
        ["legal_entity_id", "reference"],
        unique=False,
        postgresql_where=sa.text("reference IS NOT NULL"),
        sqlite_where=sa.text("reference IS NOT NULL"),
    )
    op.create_index(
        "ix_messages_provider_message",
        "messages",
        ["provider_id", "provider_message_id"],
        unique=False,
        postgresql_where=sa.text("provider_message_id IS NOT NULL"),
        sqlite_where=sa.text("provider_message_id IS NOT NULL"),
    )
    op.create_index(
        "ix_messages_queued_due",
        "messages",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
        sqlite_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "ix_messages_requested_provider",
        "messages",
        ["requested_provider_id"],
        unique=False,
        postgresql_where=sa.text("requested_provider_id IS NOT NULL"),
        sqlite_where=sa.text("requested_provider_id IS NOT NULL"),
    )
    op.create_index(
        "ix_messages_scheduled_due",
        "messages",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'scheduled'"),
        sqlite_where=sa.text("status = 'scheduled'"),
    )
    op.create_index(
        "ix_messages_sending_due",
        "messages",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'sending'"),
        sqlite_where=sa.text("status = 'sending'"),
    )
    op.create_index(
        "ix_messages_sent_check",
        "messages",
        ["next_status_check_at"],
        unique=False,
        postgresql_where=sa.text("status = 'sent'"),
        sqlite_where=sa.text("status = 'sent'"),
    )
    op.create_index(
        "uq_messages_entity_idempotency_key",
        "messages",
        ["legal_entity_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "message_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("message_pk", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("webhook_state", sa.String(length=12), nullable=True),
        sa.Column("webhook_next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("webhook_attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.pk"],
            name=op.f("fk_message_events_message_pk_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_events")),
    )
    op.create_index(
        "ix_message_events_webhook_due",
        "message_events",
        ["webhook_next_at"],
        unique=False,
        postgresql_where=sa.text("webhook_state = 'pending'"),
        sqlite_where=sa.text("webhook_state = 'pending'"),
    )
    op.create_index("uq_message_events_message_seq", "message_events", ["message_pk", "seq"], unique=True)


def downgrade() -> None:

    op.drop_index("uq_message_events_message_seq", table_name="message_events")
    op.drop_index(
        "ix_message_events_webhook_due",
        table_name="message_events",
        postgresql_where=sa.text("webhook_state = 'pending'"),
        sqlite_where=sa.text("webhook_state = 'pending'"),
    )
    op.drop_table("message_events")
    op.drop_index(
        "uq_messages_entity_idempotency_key",
        table_name="messages",
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.drop_index(
        "ix_messages_sent_check",
        table_name="messages",
        postgresql_where=sa.text("status = 'sent'"),
        sqlite_where=sa.text("status = 'sent'"),
    )
    op.drop_index(
        "ix_messages_sending_due",
        table_name="messages",
        postgresql_where=sa.text("status = 'sending'"),
        sqlite_where=sa.text("status = 'sending'"),
    )
    op.drop_index(
        "ix_messages_scheduled_due",
        table_name="messages",
        postgresql_where=sa.text("status = 'scheduled'"),
        sqlite_where=sa.text("status = 'scheduled'"),
    )
    op.drop_index("ix_messages_requested_provider", table_name="messages")
    op.drop_index(
        "ix_messages_queued_due",
        table_name="messages",
        postgresql_where=sa.text("status = 'queued'"),
        sqlite_where=sa.text("status = 'queued'"),
    )
    op.drop_index("ix_messages_provider_message", table_name="messages")
    op.drop_index("ix_messages_entity_reference", table_name="messages")
    op.drop_index("ix_messages_entity_recipient", table_name="messages")
    op.drop_index("ix_messages_entity_created", table_name="messages")
    op.drop_index("ix_messages_created", table_name="messages")
    op.drop_table("messages")
    op.drop_index(op.f("ix_entity_providers_provider_id"), table_name="entity_providers")
    op.drop_index(op.f("ix_entity_providers_legal_entity_id_priority"), table_name="entity_providers")
    op.drop_table("entity_providers")
    op.drop_index(op.f("ix_api_key_entities_legal_entity_id"), table_name="api_key_entities")
    op.drop_table("api_key_entities")
    op.drop_table("providers")
    op.drop_table("metric_counters")
    op.drop_table("legal_entities")
    op.drop_table("api_keys")
