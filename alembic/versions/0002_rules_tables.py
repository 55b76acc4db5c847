"""rules tables

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fz_counters",
        sa.Column("legal_entity_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=5), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.CheckConstraint("period IN ('day', 'week', 'month')", name=op.f("ck_fz_counters_period")),
        sa.ForeignKeyConstraint(
            ["legal_entity_id"],
            ["legal_entities.id"],
            name=op.f("fk_fz_counters_legal_entity_id_legal_entities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "legal_entity_id", "recipient", "period", "period_start", name=op.f("pk_fz_counters")
        ),
    )
    op.create_index(op.f("ix_fz_counters_period_start"), "fz_counters", ["period_start"], unique=False)
    op.create_table(
        "fz_releases",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("legal_entity_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=16), nullable=False),
        sa.Column("counted_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["legal_entity_id"],
            ["legal_entities.id"],
            name=op.f("fk_fz_releases_legal_entity_id_legal_entities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fz_releases")),
    )
    op.create_index(
        op.f("ix_fz_releases_legal_entity_id_recipient"),
        "fz_releases",
        ["legal_entity_id", "recipient"],
        unique=False,
    )
    # Nullable, no default: adding it rewrites nothing, on PostgreSQL or SQLite.
    op.add_column("messages", sa.Column("fz_counted_on", sa.Date(), nullable=True))


def downgrade() -> None:
    # SQLite (3.35+) drops a column in place; a plain column without index or constraint qualifies.
    op.drop_column("messages", "fz_counted_on")
    op.drop_index(op.f("ix_fz_releases_legal_entity_id_recipient"), table_name="fz_releases")
    op.drop_table("fz_releases")
    op.drop_index(op.f("ix_fz_counters_period_start"), table_name="fz_counters")
    op.drop_table("fz_counters")
