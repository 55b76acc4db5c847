"""API keys' expiry, last use and rate limit; the audit log; entities' retention_days

- api_keys: `expires_at`, `last_used_at` (written at most once a minute per key), `rate_limit_per_second`
  (null: no limit).
- audit_log: one row per change made through the admin API (who, what, the masked diff). Read newest
  first (by id), by object or by action.
- legal_entities.retention_days (default 548): the purge deletes a final message this long after its
  last change, with its events and webhook attempts (their foreign keys cascade).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ALTER TABLE on both backends (a batch copy on SQLite would drop the tables' triggers).
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_keys", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_keys", sa.Column("rate_limit_per_second", sa.Float(), nullable=True))
    op.add_column(
        "legal_entities",
        sa.Column("retention_days", sa.Integer(), nullable=False, server_default="548"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BIG_PK, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("key_name", sa.String(200), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object", sa.String(200), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_object_id", "audit_log", ["object", "id"])
    op.create_index("ix_audit_log_action_id", "audit_log", ["action", "id"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_index("ix_audit_log_action_id", table_name="audit_log")
    op.drop_index("ix_audit_log_object_id", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_column("legal_entities", "retention_days")
    op.drop_column("api_keys", "rate_limit_per_second")
    op.drop_column("api_keys", "last_used_at")
    op.drop_column("api_keys", "expires_at")
