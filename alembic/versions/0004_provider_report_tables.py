"""provider report tables

`early_reports`: final delivery reports that came before the send task recorded the provider's id of
their message (see smsqueue/models/reports.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "early_reports",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("provider_message_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("provider_status", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_early_reports_provider_id_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_early_reports")),
    )
    op.create_index(
        "ix_early_reports_provider_message",
        "early_reports",
        ["provider_id", "provider_message_id"],
        unique=False,
    )
    op.create_index("ix_early_reports_received_at", "early_reports", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_early_reports_received_at", table_name="early_reports")
    op.drop_index("ix_early_reports_provider_message", table_name="early_reports")
    op.drop_table("early_reports")
