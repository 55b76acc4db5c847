"""messages.ring_at: when the sweep rings for a queued message

A queued message's doorbell (a send task in the broker) may be lost: a failed publish, a broker restarted
empty. The database says when each one is next rung: `ring_at`, set on insert (a grace period after the
web's own ring), on a retry (its due time: no Celery countdown is relied on) and by the sweep itself.
The sweep reads it through `ix_messages_queued_ring`, which replaces `ix_messages_queued_due` (the claim
looks queued rows up by key, and nothing else scanned queued rows by `next_attempt_at`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED = sa.text("status = 'queued'")


def upgrade() -> None:
    # Plain ALTER TABLE on both backends: a batch (table copy) on SQLite would drop the change triggers.
    op.add_column("messages", sa.Column("ring_at", sa.DateTime(timezone=True), nullable=True))
    # Queued rows from before: rung when they are due, as the old sweep would have after its grace.
    op.execute("UPDATE messages SET ring_at = next_attempt_at WHERE status = 'queued'")
    op.drop_index("ix_messages_queued_due", table_name="messages")
    op.create_index(
        "ix_messages_queued_ring", "messages", ["ring_at"], postgresql_where=QUEUED, sqlite_where=QUEUED
    )


def downgrade() -> None:
    op.drop_index("ix_messages_queued_ring", table_name="messages")
    op.create_index(
        "ix_messages_queued_due",
        "messages",
        ["next_attempt_at"],
        postgresql_where=QUEUED,
        sqlite_where=QUEUED,
    )
    op.drop_column("messages", "ring_at")
