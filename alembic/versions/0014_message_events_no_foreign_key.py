"""message_events.message_pk: no foreign key to messages

Its check locked the new message's row for every event written (a row lock and a WAL record per
message accepted). Events are written only with their message, in its transaction, and retention
deletes them with it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels = None
depends_on = None

NAME = "fk_message_events_message_pk_messages"


def upgrade() -> None:
    # SQLite alters a constraint by copying the table (message_events has no triggers to lose).
    with op.batch_alter_table("message_events") as batch:
        batch.drop_constraint(NAME, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("message_events") as batch:
        batch.create_foreign_key(NAME, "messages", ["message_pk"], ["pk"], ondelete="CASCADE")
