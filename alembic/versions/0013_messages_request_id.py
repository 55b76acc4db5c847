"""messages.request_id: the X-Request-Id of the request that made a message

The send task claims due messages by query, whichever request rang for them, so a message's request id
travels with its row, and the worker's log lines for it carry it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN on both backends (a batch copy would drop the SQLite triggers).
    op.add_column("messages", sa.Column("request_id", sa.String(length=128), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "request_id")
