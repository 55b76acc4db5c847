"""messages: ix_messages_queued_due (next_attempt_at) over queued rows

The sender claims the due queued messages by query, oldest due first, in batches (`FOR UPDATE SKIP
LOCKED`): this partial index finds them without reading the queued rows that wait for later.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHERE = "status = 'queued'"


def upgrade() -> None:
    op.create_index(
        "ix_messages_queued_due",
        "messages",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text(WHERE),
        sqlite_where=sa.text(WHERE),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_messages_queued_due",
        table_name="messages",
        postgresql_where=sa.text(WHERE),
        sqlite_where=sa.text(WHERE),
    )
