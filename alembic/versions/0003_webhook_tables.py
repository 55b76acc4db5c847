"""webhook tables

Webhook delivery: `webhook_attempts` (every POST), `webhook_receivers` (health of each receiving origin),
the previous webhook secret of an entity (rotation grace), and `messages.change_seq`, the position of a
message's last change for updated_after polling, kept by a trigger (see api/messages._list_changes).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# PostgreSQL: a change's position is the id of the transaction that made it (64-bit, never wraps). A
# poller lists only positions below the oldest transaction still running, so a change committed late can
# never land behind a cursor (api/messages._list_changes). Only inserts and moves of event_seq (status
# changes: messages.transition) count; other updates of a row (sweeps, leases) do not move it.
PG_FUNCTION = """
CREATE FUNCTION smsqueue_message_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.event_seq IS DISTINCT FROM OLD.event_seq THEN
        NEW.change_seq := pg_current_xact_id()::text::bigint;
    END IF;
    RETURN NEW;
END
$$
"""
PG_TRIGGER = """
CREATE TRIGGER messages_change BEFORE INSERT OR UPDATE OF event_seq ON messages
FOR EACH ROW EXECUTE FUNCTION smsqueue_message_change()
"""

# SQLite serialises writers (BEGIN IMMEDIATE), so a counter taken inside the write transaction already
# follows commit order: the next change is one past the highest.
SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER messages_change_insert AFTER INSERT ON messages
    BEGIN
        UPDATE messages SET change_seq = (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM messages)
        WHERE pk = NEW.pk;
    END
    """,
    """
    CREATE TRIGGER messages_change_update AFTER UPDATE OF event_seq ON messages
    WHEN NEW.event_seq IS NOT OLD.event_seq
    BEGIN
        UPDATE messages SET change_seq = (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM messages)
        WHERE pk = NEW.pk;
    END
    """,
)


def upgrade() -> None:
    op.add_column("legal_entities", sa.Column("webhook_secret_previous", sa.Text(), nullable=True))
    op.add_column(
        "legal_entities",
        sa.Column("webhook_secret_previous_until", sa.DateTime(timezone=True), nullable=True),
    )
    # Existing rows take position 0: before every change made from now on.
    op.add_column("messages", sa.Column("change_seq", sa.BigInteger(), server_default="0", nullable=False))
    op.create_index("ix_messages_change", "messages", ["change_seq", "pk"], unique=False)
    op.create_index(
        "ix_messages_entity_change", "messages", ["legal_entity_id", "change_seq", "pk"], unique=False
    )

    op.create_table(
        "webhook_receivers",
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.SmallInteger(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("origin", name=op.f("pk_webhook_receivers")),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("message_pk", sa.BigInteger(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("receiver", sa.String(length=300), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["message_events.id"],
            name=op.f("fk_webhook_attempts_event_id_message_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.pk"],
            name=op.f("fk_webhook_attempts_message_pk_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index("ix_webhook_attempts_event", "webhook_attempts", ["event_id"], unique=False)
    op.create_index(
        "ix_webhook_attempts_inflight",
        "webhook_attempts",
        ["receiver"],
        unique=False,
        postgresql_where=sa.text("finished_at IS NULL"),
        sqlite_where=sa.text("finished_at IS NULL"),
    )
    op.create_index(
        "ix_webhook_attempts_message", "webhook_attempts", ["message_pk", "sequence", "attempt"], unique=False
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS messages_change ON messages")
        op.execute("DROP FUNCTION IF EXISTS smsqueue_message_change()")
    else:
        op.execute("DROP TRIGGER IF EXISTS messages_change_insert")
        op.execute("DROP TRIGGER IF EXISTS messages_change_update")

    op.drop_index("ix_webhook_attempts_message", table_name="webhook_attempts")
    op.drop_index(
        "ix_webhook_attempts_inflight",
        table_name="webhook_attempts",
        postgresql_where=sa.text("finished_at IS NULL"),
        sqlite_where=sa.text("finished_at IS NULL"),
    )
    op.drop_index("ix_webhook_attempts_event", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_receivers")
    op.drop_index("ix_messages_entity_change", table_name="messages")
    op.drop_index("ix_messages_change", table_name="messages")
    op.drop_column("messages", "change_seq")
    op.drop_column("legal_entities", "webhook_secret_previous_until")
    op.drop_column("legal_entities", "webhook_secret_previous")
