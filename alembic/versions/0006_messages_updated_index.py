"""messages: ix_messages_updated (updated_at, change_seq)

The first page of an `updated_after` listing (no cursor) starts at the lowest change position of the
messages changed after that time; this index finds it with an index-only range scan, where the listing
used to walk the (change_seq, pk) index from the first position of the whole history.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_messages_updated", "messages", ["updated_at", "change_seq"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_messages_updated", table_name="messages")
